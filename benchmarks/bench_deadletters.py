"""Operating on a full dead-letter list: count, clear one webhook's letters, replay them. No asserts.

    .venv/bin/python benchmarks/bench_deadletters.py                  # 100,000 letters (the default bound)
    .venv/bin/python benchmarks/bench_deadletters.py --letters 20000

The list holds ``--letters`` letters of ~1 KB (an entry's JSON, as a failed delivery leaves it), of two
webhooks in turn, in a throwaway redis-server. Each operation runs on a fresh copy of that list:
``worker.deadletters.counts`` (what ``livebrief webhooks`` lists), ``clear`` of one webhook's letters, and
``take`` with a replay's work (a delivery job queued per letter, as ``livebrief webhooks replay --webhook``).
The baseline is what earlier versions did to clear or replay one webhook's letters: read the whole list,
then one LREM per letter, which scans the list from its head each time; it runs on ``--baseline-letters``
(20,000 by default: it grows with the square of the list).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from typing import cast

import redis
from _support import print_machine, print_table, quiet_logs, throwaway_redis

from livebrief.config import WebhookConfig
from livebrief.keys import Keys
from livebrief.queues import LivebriefQueue
from worker import deadletters
from worker.notify import enqueue_delivery

KEYS = Keys("bench")
ENTRY = json.dumps({"id": "s" + "0" * 20, "headline": "h" * 90, "summary": "s" * 260, "sources": [
    {"feed": "feed1", "name": "Outlet 1", "url": "https://news.example.org/" + "p" * 40}] * 2, "topics": ["strikes"]})


def _fill(client: redis.Redis, letters: int) -> None:
    client.delete(KEYS.deadletter)
    for start in range(0, letters, 1000):
        client.rpush(KEYS.deadletter, *(json.dumps({
            "webhook": ("old", "desk")[n % 2], "delivery": f"msg_s{n:020d}_v1", "entry": ENTRY,
            "error": "webhook 'old': receiver answered HTTP 500", "failed_at": "2026-12-08T00:00:00+00:00"})
            for n in range(start, min(letters, start + 1000))))


def _baseline_clear(client: redis.Redis) -> int:
    count = 0
    for raw in cast(list[bytes], client.lrange(KEYS.deadletter, 0, -1)):
        if json.loads(raw).get("webhook") == "old":
            count += int(cast(int, client.lrem(KEYS.deadletter, 1, raw.decode())))
    return count


def _timed(client: redis.Redis, letters: int, operation: Callable[[], object]) -> tuple[float, object]:
    _fill(client, letters)
    started = time.perf_counter()
    result = operation()
    return time.perf_counter() - started, result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--letters", type=int, default=100_000)
    parser.add_argument("--baseline-letters", type=int, default=20_000)
    ns = parser.parse_args(argv)
    quiet_logs()
    webhook = WebhookConfig(id="old", url="http://127.0.0.1:9/hook", secret="whsec_" + "A" * 32)
    with throwaway_redis() as (_, client):
        queue = LivebriefQueue.deliveries(KEYS, client)

        def replay() -> int:
            def enqueue(pipe: redis.client.Pipeline, batch: list[deadletters.Letter]) -> None:
                for letter in batch:
                    enqueue_delivery(queue, webhook, letter["delivery"], letter["entry"], pipe, 60)
            return deadletters.take(client, KEYS, lambda w: w == "old", enqueue)

        rows: list[list[object]] = []
        for name, letters, operation in (
            ("counts (webhooks list)", ns.letters, lambda: dict(deadletters.counts(client, KEYS))),
            ("clear --webhook (take)", ns.letters, lambda: deadletters.clear(client, KEYS, "old")),
            ("replay --webhook (take + a job each)", ns.letters, replay),
            ("baseline: LREM per letter", ns.baseline_letters, lambda: _baseline_clear(client)),
        ):
            seconds, result = _timed(client, letters, operation)
            rows.append([name, letters, seconds, letters / seconds, str(result)[:40]])
            client.flushdb()
        per_new = rows[1][2] / ns.letters
        per_old = rows[3][2] / ns.baseline_letters
        rows.append(["ratio: baseline / clear, per letter", "-", "-", "-",
                     f"{per_old / per_new:.1f}x at {ns.baseline_letters:,} vs {ns.letters:,} letters"])
        print_table("a full dead-letter list, two webhooks in turn (seconds; letters/s)",
                    ["operation", "letters", "seconds", "letters/s", "result"], rows)
        print_machine(client)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
