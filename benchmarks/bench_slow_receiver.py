"""How late a fast webhook receiver gets its entries when a slow one shares the delivery workers.

    .venv/bin/python benchmarks/bench_slow_receiver.py             # 2 delivery workers, receiver 1 s an answer
    .venv/bin/python benchmarks/bench_slow_receiver.py --workers 1 --slow-seconds 2

Set-up: a throwaway redis-server; two receivers on 127.0.0.1 in this process, "fast" (answers at once) and
"slow" (answers after ``--slow-seconds``); ``--workers`` delivery workers, each ``livebrief work --queues
deliveries`` in its own process, as the ``Procfile`` runs them. This process publishes ``--batches`` batches
of ``--entries`` generated entries, one every ``--every`` seconds, through ``worker.jobs.run_batch`` (as an
ingest worker does: entries and their delivery jobs, one per webhook and batch, in one atomic step).

Lateness: a fast-receiver arrival time minus the time its entry was published (its stream id). Run twice
in the same run:

(a) livebrief as configured by default: each webhook's jobs run in one lane at a time (``concurrency`` 1),
    the others parked out of the queue, and a job hands the rest of its messages to the back of the queue
    after ``worker.delivery_slice`` (1 s) (``worker/lanes.py``);
(b) the baseline, the design before lanes: ``concurrency`` 64 and a slice of an hour, so every worker takes
    whichever delivery job is next and posts all its messages.

A run waits at most ``--give-up`` seconds for the fast receiver's entries; the ones still missing then are
counted, and the lateness figures are over those that arrived (so for (b) they understate it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import cast

import yaml
from _support import (
    ROOT,
    WEBHOOK_SECRET,
    FeedFactory,
    headlines,
    make_config,
    print_machine,
    print_table,
    quiet_logs,
    throwaway_redis,
    topics_snapshot,
)

from feeds.parse import parse_feed
from livebrief.keys import Keys
from livebrief.redis_server import free_port
from worker.jobs import run_batch
from worker.runtime import configure


class _Receiver:
    """Answers every POST 200 after ``delay`` seconds, recording (webhook-id, arrival time)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.port = free_port()
        self.arrivals: list[tuple[str, float]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                arrived = time.time()
                time.sleep(receiver.delay)
                receiver.arrivals.append((self.headers.get("webhook-id", ""), arrived))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass(frozen=True)
class _Result:
    label: str
    published: int
    arrived: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    slow_arrived: int

    def row(self) -> list[object]:
        return [self.label, self.published, self.arrived, self.p50_ms, self.p99_ms, self.max_ms, self.slow_arrived]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _run(args: argparse.Namespace, label: str, hook_extra: dict[str, object], worker_extra: dict[str, object],
         factory: FeedFactory, tmp: Path) -> _Result:
    fast, slow = _Receiver(0.0), _Receiver(args.slow_seconds)
    try:
        with throwaway_redis() as (server, client):
            hooks = [{"id": name, "url": r.url, "secret": WEBHOOK_SECRET, "timeout": args.slow_seconds + 5,
                      **hook_extra} for name, r in (("slow", slow), ("fast", fast))]
            config = make_config(server.url, [{"id": "feed0", "name": "Outlet 0", "url": "http://127.0.0.1:9/0.xml"}],
                                 webhooks=hooks, worker=worker_extra)
            path = tmp / f"{label[:1]}.yaml"
            path.write_text(yaml.safe_dump({
                "prefix": config.prefix, "topics_file": str(topics_snapshot()), "feeds": [],
                "worker": config.worker.model_dump(mode="json"),
                "webhooks": [w.model_dump(mode="json") for w in config.webhooks]}))
            runtime = configure(config)
            env = {**os.environ, "REDIS_URL": server.url, "LIVEBRIEF_CONFIG": str(path),
                   "LIVEBRIEF_LOG_LEVEL": "WARNING"}
            workers = [subprocess.Popen([sys.executable, "-m", "livebrief.cli", "work", "--queues", "deliveries"],
                                        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                       for _ in range(args.workers)]
            try:
                time.sleep(2.0)  # the workers' start-up
                for n in range(args.batches):
                    started = time.monotonic()
                    parsed = parse_feed(factory.feed(n), feed_id="feed0", outlet="Outlet 0",
                                        fetched=datetime.now(UTC))
                    run_batch(client, runtime, parsed.items[: args.entries])
                    time.sleep(max(0.0, args.every - (time.monotonic() - started)))
                published = {}
                stream = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(Keys(config.prefix).entries_stream))
                for stream_id, fields in stream:
                    entry = json.loads(fields[b"entry"])
                    published[f"msg_{entry['id']}_v{entry['version']}"] = int(stream_id.split(b"-")[0]) / 1000
                deadline = time.time() + args.give_up
                while len(fast.arrivals) < len(published) and time.time() < deadline:
                    time.sleep(0.2)
                slow_then = len(slow.arrivals)
            finally:
                for worker in workers:
                    worker.terminate()
                for worker in workers:
                    try:
                        worker.wait(30)
                    except subprocess.TimeoutExpired:
                        worker.kill()
    finally:
        fast.close()
        slow.close()
    late = [at - published[msg] for msg, at in fast.arrivals if msg in published]
    return _Result(label, len(published), len(late), _percentile(late, 0.5) * 1000, _percentile(late, 0.99) * 1000,
                   max(late, default=float("nan")) * 1000, slow_then)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="delivery workers (default 2)")
    parser.add_argument("--slow-seconds", type=float, default=1.0, help="the slow receiver's answer time (1 s)")
    parser.add_argument("--batches", type=int, default=12, help="batches published (default 12)")
    parser.add_argument("--entries", type=int, default=5, help="entries per batch (default 5)")
    parser.add_argument("--every", type=float, default=0.5, help="seconds between batches (default 0.5)")
    parser.add_argument("--give-up", type=float, default=90.0, help="seconds to wait for the fast receiver (90)")
    args = parser.parse_args(argv)
    quiet_logs()
    titles, _ = headlines(5000)
    factory = FeedFactory(titles, entries=max(args.entries, 1))
    tmp = Path(tempfile.mkdtemp(prefix="livebrief-bench-"))
    results = [
        _run(args, "(a) livebrief: lanes and slices (defaults)", {}, {}, factory, tmp),
        _run(args, "(b) baseline: no lanes, no slices", {"concurrency": 64}, {"delivery_slice": 3600}, factory, tmp),
    ]
    print_table(f"fast receiver's lateness beside one answering in {args.slow_seconds:g} s; {args.workers} delivery "
                f"workers; {args.batches} batches of {args.entries} every {args.every:g} s",
                ["design", "entries", "fast got", "p50 ms", "p99 ms", "max ms", "slow got by then"],
                [r.row() for r in results])
    ours, baseline = results
    ratio = [["p50 lateness, (b) / (a)", baseline.p50_ms / max(ours.p50_ms, 1e-9)],
             ["max lateness, (b) / (a)", baseline.max_ms / max(ours.max_ms, 1e-9)]]
    print_table("ratios (same run)", ["what", "x"], ratio)
    print_machine()
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
