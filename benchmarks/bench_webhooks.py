"""Webhook deliveries per second through one delivery worker, next to bare HTTP client loops.

    .venv/bin/python benchmarks/bench_webhooks.py              # 5,000 deliveries (~30 s)
    .venv/bin/python benchmarks/bench_webhooks.py --quick      # 1,000 deliveries
    .venv/bin/python benchmarks/bench_webhooks.py --entries 20000

Set-up: a throwaway redis-server, and a receiver in its own process (a keep-alive asyncio server,
``_support.serve_receiver``, that answers 200 and counts, as a real receiver would answer), so the
receiver's CPU is not charged to the process measured. Generated feeds go through
``worker.jobs.run_batch`` with one ``standard`` webhook configured, which queues the delivery jobs (one
per batch) without delivering them. Then:

(a) livebrief: one burst ``FreezingWorker`` (RQ's SimpleWorker) on the deliveries queue, as ``livebrief work --queues
    deliveries`` runs it (without its one-time start-up): fetch each job, render and sign each entry, POST
    it, mark it delivered in Redis;
(b) the floor: a bare loop of ``worker.webhook_client.post`` (the client (a) uses) POSTing the same bodies
    on one kept-alive connection: what (a) adds to it is RQ, rendering, signing and marking;
(c) a bare ``http.client`` loop, the standard library's client (what deliveries used from the sixth session
    to the twentieth);
(d) a bare ``httpx.Client`` loop, the usual choice (what deliveries used before the sixth session).

Deliveries/s = deliveries / wall time; CPU = this process's CPU time per delivery (the receiver's and
Redis's are not counted). The ratios are against (b), (c) and (d) in the same run. No asserts: figures only.
"""

from __future__ import annotations

import argparse
import gc
import http.client
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import httpx
from _support import (
    FeedFactory,
    ask_receiver,
    headlines,
    print_machine,
    print_table,
    quiet_logs,
    serve_receiver,
    start_receiver,
    throwaway_redis,
    webhook_config,
)

from feeds.parse import parse_feed
from livebrief.keys import Keys
from livebrief.redis_server import free_port
from livebrief.workers import GC_THRESHOLDS, FreezingWorker, queues
from worker import webhook_client
from worker.jobs import run_batch
from worker.notify import delivery_headers, delivery_id, render_payload
from worker.runtime import configure


def _receiver_main(port: int) -> int:
    count = 0

    def record(body: bytes, when: float) -> None:
        nonlocal count
        count += 1

    return serve_receiver(port, record, lambda path: count)


def _received(port: int) -> int:
    return int(ask_receiver(port, "/count"))


def _timed(fn: Callable[[], None]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--receiver"]:
        return _receiver_main(int(args[1]))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=5000, help="deliveries (default 5,000)")
    parser.add_argument("--quick", action="store_true", help="1,000 deliveries")
    ns = parser.parse_args(args)
    total = 1000 if ns.quick else ns.entries
    quiet_logs()
    titles, source = headlines()
    factory = FeedFactory(titles, entries=50, desc_chars=600, seed=33)
    feeds = -(-total // 50)
    port = free_port()
    receiver = start_receiver(__file__, port)
    hook_url = f"http://127.0.0.1:{port}/hook"
    rows: list[list[object]] = []
    try:
        with throwaway_redis() as (server, client):
            config = webhook_config(server.url, hook_url, feeds)
            runtime = configure(config)
            webhook = config.webhooks[0]
            entries = []
            for n in range(feeds):
                doc = factory.feed(n)
                parsed = parse_feed(doc, feed_id=f"feed{n}", outlet=f"Outlet {n}", fetched=datetime.now(UTC))
                entries += run_batch(client, runtime, parsed.items).entries
            queued = len(entries)

            # The worker class on the deliveries queue, as ``livebrief work --queues deliveries`` runs it, minus
            # that command's start-up (compiling topics, recovery), which a long-running worker pays once.
            gc.set_threshold(*GC_THRESHOLDS)
            gc.freeze()  # as run_worker does before its first job
            worker = FreezingWorker(queues(client, Keys(config.prefix), ("deliveries",)), connection=client)
            before = _received(port)
            wall, cpu = _timed(lambda: worker.work(burst=True, logging_level="WARNING"))
            got = _received(port) - before
            rows.append(["(a) livebrief delivery worker (RQ jobs, sign, POST, mark)", got, wall, got / wall,
                         cpu / max(got, 1) * 1e6, f"{queued:,} queued, {got:,} received"])

            rendered = [(delivery_id(e), render_payload(webhook, e)) for e in entries]
            bodies = [(body, delivery_headers(webhook, msg_id, body)) for msg_id, body in rendered]

            def bare_webhook_client() -> None:
                for body, headers in bodies:
                    webhook_client.post(hook_url, body, headers, 10)

            def bare_http_client() -> None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                for body, headers in bodies:
                    conn.request("POST", "/hook", body=body, headers=headers)
                    conn.getresponse().read()
                conn.close()

            def bare_httpx() -> None:
                with httpx.Client(trust_env=False) as session:
                    for body, headers in bodies:
                        session.post(hook_url, content=body, headers=headers, timeout=10)

            for label, fn in (("(b) bare webhook_client.post loop (the floor)", bare_webhook_client),
                              ("(c) bare http.client loop, one kept-alive connection", bare_http_client),
                              ("(d) bare httpx.Client loop", bare_httpx)):
                before = _received(port)
                wall, cpu = _timed(fn)
                got = _received(port) - before
                rows.append([label, got, wall, got / wall, cpu / max(got, 1) * 1e6, "pre-rendered, pre-signed bodies"])
    finally:
        receiver.terminate()
        receiver.wait(10)

    floor, stdlib_rate, httpx_rate = rows[1][3], rows[2][3], rows[3][3]
    table = [[*row[:4], row[3] / floor, row[3] / stdlib_rate, row[3] / httpx_rate, *row[4:]]  # type: ignore[operator]
             for row in rows]
    print(f"one standard webhook, receiver in its own process; text from {source}")
    print_table("webhook deliveries (ratios against (b), (c) and (d) in this run)",
                ["measurement", "deliveries", "seconds", "deliveries/s", "vs floor", "vs http.client", "vs httpx",
                 "CPU us per delivery (this process)", "notes"], table)
    print_machine()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
