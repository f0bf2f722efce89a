"""Shared parts of the benchmarks: generated feeds, a throwaway Redis, a webhook receiver process, the
machine report and tables.

Nothing here is product code. Feed text comes from ``../shared/corpus/headlines.jsonl`` when that file
exists (read at run time, never copied into the repository), else from invented words, so every
benchmark runs on a user's clone too.
"""

from __future__ import annotations

import asyncio
import atexit
import http.client
import json
import os
import platform
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from livebrief.config import Config, parse_config  # noqa: E402
from livebrief.log import configure_logging  # noqa: E402
from livebrief.redis_server import EmbeddedRedis, find_redis_server  # noqa: E402

_NUMBER = re.compile(r"[-+]?[\d,]*\.?\d+ ?(?:x|%|s|ms|MiB|KiB|B)?")
CORPUS = ROOT.parent / "shared" / "corpus" / "headlines.jsonl"
PACKAGES = ("feedparser", "rq", "redis", "pydantic", "aiohttp", "httpx", "structlog", "reader")
_WORDS = (
    "minister parliament strike flood election court ruling missile talks vote protest bank rates city "
    "council shelling ceasefire refugees aid convoy grain port harbour energy grid outage negotiators "
    "summit sanctions embassy troops border villages evacuation hospital power station drones officials "
    "said on Tuesday after overnight attacks regional governor reported according to statement"
).split()


def quiet_logs() -> None:
    """Warnings only: the per-batch info lines would otherwise be measured as much as the work."""
    configure_logging(level="WARNING", json=True)


def headlines(limit: int | None = None) -> tuple[list[str], str]:
    """Headline strings and where they came from (the shared corpus, or invented when it is absent)."""
    if CORPUS.exists():
        titles = []
        with CORPUS.open(encoding="utf-8") as handle:
            for line in handle:
                title = json.loads(line).get("title") or ""
                if title.strip():
                    titles.append(title.split(" | ")[0].strip())
                if limit and len(titles) >= limit:
                    break
        return titles, f"{CORPUS} ({len(titles)} titles)"
    rng = random.Random(7)
    n = limit or 5000
    return [" ".join(rng.choices(_WORDS, k=rng.randint(7, 14))).capitalize() for _ in range(n)], "invented words"


class FeedFactory:
    """Realistic RSS 2.0 documents: ``entries`` items, each with a corpus headline as title and an HTML
    description of about ``desc_chars`` characters made of other headlines, a link, a guid and a date."""

    def __init__(self, titles: list[str], entries: int = 50, desc_chars: int = 600, seed: int = 1) -> None:
        self.titles = titles
        self.entries = entries
        self.desc_chars = desc_chars
        self.rng = random.Random(seed)
        self._next = 0
        self.start = datetime(2024, 5, 1, tzinfo=UTC)

    def _title(self) -> str:
        title = self.titles[self._next % len(self.titles)]
        self._next += 1
        return title

    def _description(self, title: str) -> str:
        parts = [f"<p><strong>{escape(title)}</strong></p>"]
        size = len(parts[0])
        while size < self.desc_chars:
            sentence = escape(self.rng.choice(self.titles))
            part = f'<p>{sentence}. <a href="https://example.org/r/{self.rng.randrange(10**6)}">More</a></p>'
            parts.append(part)
            size += len(part)
        return "".join(parts)[: self.desc_chars].rsplit("<", 1)[0]

    def feed(self, index: int, edition: int = 0) -> bytes:
        """Feed number ``index``; a new ``edition`` has new items (new guids) on top."""
        items = []
        for n in range(self.entries):
            title = self._title()
            slug = f"f{index}-e{edition}-n{n}"
            when = self.start + timedelta(minutes=index + edition * 60 - n)
            items.append(
                f"<item><title>{escape(title)}</title><link>https://news{index % 97}.example.org/{slug}</link>"
                f'<guid isPermaLink="false">{slug}</guid><pubDate>{format_datetime(when)}</pubDate>'
                f"<description>{escape(self._description(title))}</description></item>"
            )
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>'
            f"<title>Outlet {index}</title><link>https://news{index % 97}.example.org/</link>"
            f"<description>Bench feed {index}</description>{''.join(items)}</channel></rss>"
        ).encode()


_TOPICS_SNAPSHOT: Path | None = None


def topics_snapshot() -> Path:
    """A copy of config/topics.yaml taken once per run, so every stage of a run classifies with the same
    topics even while someone edits the file."""
    global _TOPICS_SNAPSHOT
    if _TOPICS_SNAPSHOT is None:
        folder = Path(tempfile.mkdtemp(prefix="livebrief-bench-"))
        atexit.register(shutil.rmtree, folder, True)
        _TOPICS_SNAPSHOT = folder / "topics.yaml"
        shutil.copyfile(ROOT / "config" / "topics.yaml", _TOPICS_SNAPSHOT)
    return _TOPICS_SNAPSHOT


def make_config(redis_url: str, feeds: Sequence[dict[str, Any]] = (), **extra: Any) -> Config:
    """A config as a user would write it, pointing at local servers (private addresses allowed)."""
    data: dict[str, Any] = {
        "redis_url": redis_url,
        "prefix": "bench",
        "topics_file": str(topics_snapshot()),
        "feeds": list(feeds),
        "polling": {"allow_private": True, "timeout": 30, **extra.pop("polling", {})},
        "worker": {"stream_maxlen": 10_000_000, **extra.pop("worker", {})},
    }
    data.update(extra)
    return parse_config(data, str(ROOT / "benchmarks" / "bench-config.yaml"))


WEBHOOK_SECRET = "whsec_" + "YmVuY2gtc2VjcmV0LWZvci1saXZlYnJpZWYtYmVuY2hlcw=="


def webhook_config(redis_url: str, hook_url: str, feeds: int) -> Config:
    """``feeds`` feed entries (never fetched: the benchmarks parse generated bytes) and one ``standard``
    webhook for every entry, pointing at ``hook_url``."""
    rows = [{"id": f"feed{i}", "name": f"Outlet {i}", "url": f"http://127.0.0.1:9/{i}.xml"} for i in range(feeds)]
    return make_config(redis_url, rows, webhooks=[
        {"id": "bench-hook", "url": hook_url, "format": "standard", "secret": WEBHOOK_SECRET, "timeout": 10},
    ])


def wait_for_port(port: int, seconds: float = 10.0) -> None:
    """Return once 127.0.0.1:``port`` accepts connections; OSError after ``seconds``."""
    deadline = time.time() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.05)


def start_receiver(script: str, port: int) -> subprocess.Popen[bytes]:
    """Run ``script --receiver PORT`` (a benchmark's webhook receiver) in its own process, so that its CPU
    is not charged to the process measured; returns once the port accepts connections."""
    proc = subprocess.Popen([sys.executable, script, "--receiver", str(port)])
    try:
        wait_for_port(port)
    except OSError:
        proc.kill()
        raise
    return proc


def serve_receiver(port: int, record: Callable[[bytes, float], None], report: Callable[[str], object]) -> int:
    """A benchmark's webhook receiver, run in its own process (``start_receiver``) until killed: each POST body
    goes to ``record`` with its arrival time and is answered 200; ``GET path`` is answered ``report(path)``
    as JSON. Keep-alive, as real receivers (Slack, a web framework behind nginx) answer: with HTTP/1.0 every
    POST would cost a new connection, and the benchmark would measure that.

    Why asyncio and a minimal HTTP/1.1 reader, not http.server: a real receiver runs on another machine,
    but this one shares the benchmark's cores with the workers it measures. http.server's handler spent
    ~220 us of CPU per POST (its header parsing), ~0.2 of the 2 cores at 1,000 deliveries/s; this reads
    the request line, Content-Length and the body, nothing else. It serves what ``webhook_client`` sends
    (a Content-Length body, no chunked encoding, no ``Expect``); anything else closes the connection."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, _, header_block = head.partition(b"\r\n")
                method, path, _ = request_line.decode("latin-1").split(" ", 2)
                length = 0
                for line in header_block.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                if method == "POST":
                    record(body, time.time())
                    answer = b""
                else:
                    answer = json.dumps(report(path)).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))
                await writer.drain()  # a GET's answer (all arrival times) can be megabytes
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
            pass  # the client closed the connection (or sent what this receiver does not serve)
        finally:
            writer.close()

    async def serve() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())
    return 0


def ask_receiver(port: int, path: str) -> Any:
    """The JSON answer of the receiver on ``port`` to ``GET path``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


@contextmanager
def throwaway_redis() -> Iterator[tuple[EmbeddedRedis, redis.Redis]]:
    """A private redis-server on a free port (never the machine's own Redis on 6379)."""
    with EmbeddedRedis() as server:
        client = redis.Redis.from_url(server.url)
        try:
            yield server, client
        finally:
            client.close()


def machine(client: redis.Redis | None = None) -> list[tuple[str, str]]:
    """What the figures were measured on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    rows = [
        ("cpu", f"{usable} usable cores of {os.cpu_count()}" + (f", {model}" if model else "")),
        ("python", f"{platform.python_implementation()} {platform.python_version()} on {platform.platform()}"),
    ]
    if client is not None:
        rows.append(("redis-server", str(client.info("server").get("redis_version"))))
    else:
        try:
            out = subprocess.run([find_redis_server(), "--version"], capture_output=True, text=True).stdout
            rows.append(("redis-server", out.split("v=")[1].split()[0] if "v=" in out else out.strip()))
        except Exception as exc:  # noqa: BLE001 - the report is informative only
            rows.append(("redis-server", f"unknown ({exc})"))
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    rows.append(("packages", ", ".join(versions)))
    return rows


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain-text table, right-aligned numbers, as pasted into benchmarks/README.md."""
    cells = [[str(c) for c in header]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}")
    for n, row in enumerate(cells):
        padded = (
            c.rjust(w) if i and _numeric(c) else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        print("| " + " | ".join(padded) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def print_machine(client: redis.Redis | None = None) -> None:
    print_table("machine", ["what", "value"], machine(client))


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if value >= 100:
            return f"{value:,.0f}"
        if value >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _numeric(text: str) -> bool:
    return bool(_NUMBER.fullmatch(text))
