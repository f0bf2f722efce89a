"""Freshness: how soon a pushed update reaches the stream, against polling the same feed.

A real ``livebrief work`` process, a real push receiver and a hub simulated on 127.0.0.1 (it POSTs signed
WebSub content distributions). For each of N updates we time hub POST -> entry on the stream (XREAD),
and compare with the expected delay of polling: half the poll interval on average, measured here as the
delay of a real poller running at the shortest adaptive interval would be dominated by that interval.

    python benchmarks/bench_freshness.py [--updates 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._support import (  # noqa: E402
    ROOT,
    make_config,
    print_machine,
    print_table,
    quiet_logs,
    throwaway_redis,
    topics_snapshot,
)
from feeds.poller import Poller  # noqa: E402
from feeds.push import PushReceiver, Subscriptions  # noqa: E402
from livebrief.feedserver import FeedServer  # noqa: E402
from livebrief.keys import Keys  # noqa: E402
from livebrief.redis_server import free_port  # noqa: E402
from livebrief.signing import hub_signature  # noqa: E402


def rss(hub: str, items: list[tuple[int, str]]) -> bytes:
    body = "".join(
        f"<item><title>{t}</title><guid>g{n}</guid><link>https://p.example/{n}</link>"
        f"<description>{t}. Officials confirmed the details on Tuesday.</description></item>"
        for n, t in items
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel>'
        f'<title>P</title><atom:link rel="hub" href="{hub}"/>{body}</channel></rss>'
    ).encode()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--updates", type=int, default=30)
    parser.add_argument("--fork", action="store_true", help="run the worker with a fork per job")
    args = parser.parse_args()
    quiet_logs()
    with throwaway_redis() as (server, client), FeedServer() as feeds:
        port = free_port()
        hub_url = feeds.url("/hub")  # accepts subscription requests; the verification is done below, as a hub would
        config = make_config(
            server.url,
            [{"id": "p", "name": "Pushed", "url": feeds.url("/p.xml")}],
            push={"enabled": True, "listen": f"127.0.0.1:{port}", "public_url": f"http://127.0.0.1:{port}"},
        )

        def accept(req: object) -> bool:
            handler = req  # a BaseHTTPRequestHandler
            handler.rfile.read(int(handler.headers.get("Content-Length", "0")))  # type: ignore[attr-defined]
            handler.send_response(202)  # type: ignore[attr-defined]
            handler.send_header("Content-Length", "0")  # type: ignore[attr-defined]
            handler.end_headers()  # type: ignore[attr-defined]
            return True

        feeds.route("/hub", accept)
        items = [(0, "Harbour reopens after storm repairs")]
        feeds.set("/p.xml", rss(hub_url, items))
        receiver = PushReceiver(config, client).start()
        asyncio.run(Poller(config, client, parse_workers=0).poll_once(force=True))
        sub = Subscriptions(client, Keys(config.prefix)).get("p")
        assert sub is not None
        httpx.get(
            f"http://127.0.0.1:{port}/websub/p",
            params={"hub.mode": "subscribe", "hub.topic": sub.topic, "hub.challenge": "c", "hub.lease_seconds": "3600"},
        )
        path = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-freshness-{port}.yaml"
        path.write_text(
            yaml.safe_dump(
                {
                    "prefix": config.prefix,
                    "topics_file": str(topics_snapshot()),
                    "feeds": [f.model_dump() for f in config.feeds],
                }
            )
        )
        env = {**os.environ, "REDIS_URL": server.url, "LIVEBRIEF_CONFIG": str(path), "LIVEBRIEF_LOG_LEVEL": "WARNING"}
        command = [sys.executable, "-m", "livebrief.cli", "work", *(["--fork"] if args.fork else [])]
        worker = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stream = Keys(config.prefix).entries_stream
        try:
            deadline = time.monotonic() + 30
            while client.xlen(stream) < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            delays = []
            for n in range(1, args.updates + 1):
                items = [(n, f"Update number {n} on the harbour repairs in Vyrnova district"), *items][:20]
                body = rss(hub_url, items)
                last = client.xinfo_stream(stream)["last-generated-id"]
                started = time.perf_counter()
                httpx.post(
                    f"http://127.0.0.1:{port}/websub/p",
                    content=body,
                    headers={"X-Hub-Signature": hub_signature(sub.secret, body)},
                )
                got = client.xread({stream: last}, block=10_000, count=1)
                if got:
                    delays.append((time.perf_counter() - started) * 1000)
                time.sleep(0.2)
        finally:
            worker.terminate()
            worker.wait(20)
            receiver.stop()
            path.unlink(missing_ok=True)
    poll_floor_ms = config.polling.min_interval / 2 * 1000
    p50 = statistics.median(delays)
    print_machine()
    print_table(
        "Pushed update -> entry on the stream (real worker process, local hub)",
        ["path", "updates", "p50 ms", "p99 ms", "max ms", "vs polling at min interval"],
        [
            [
                f"WebSub push ({'forking Worker' if args.fork else 'SimpleWorker'})",
                len(delays),
                round(p50, 1),
                round(percentile(delays, 0.99), 1),
                round(max(delays), 1),
                f"{poll_floor_ms / p50:.0f}x sooner",
            ],
            [
                "polling (expected, half of min_interval)",
                "-",
                poll_floor_ms,
                "-",
                config.polling.min_interval * 1000,
                "1x",
            ],
        ],
    )


if __name__ == "__main__":
    main()
