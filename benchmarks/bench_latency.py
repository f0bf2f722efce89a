"""Latency from fetch to the stream and to a webhook, under a steady paced load.

    .venv/bin/python benchmarks/bench_latency.py              # 1,000 items/s and 100 items/s, 10 s each (~1.5 min)
    .venv/bin/python benchmarks/bench_latency.py --quick      # 5 s each (~30 s)
    .venv/bin/python benchmarks/bench_latency.py --rates 1000 300 50 --seconds 20 --workers 2 --fork
    .venv/bin/python benchmarks/bench_latency.py --quick --delivery-worker   # livebrief run's layout
    .venv/bin/python benchmarks/bench_latency.py --rates 1000 --seconds 60   # sustained: p99 per 10 s window too
    .venv/bin/python benchmarks/bench_latency.py --rates 1000 --fetch-items 5 [--no-gather]   # many small fetches

Set-up: a throwaway redis-server; ``--workers`` RQ workers (``livebrief.workers.run_worker``, SimpleWorker
unless ``--fork``) in their own processes, serving the ingest and deliveries queues as ``livebrief work``
does (alternately, or ingest first with ``--queue-order ingest_first``; with ``--delivery-worker``,
ingest only, and one more process for deliveries, as ``livebrief run`` lays them out); one ``standard``
webhook for every entry, pointing at a receiver (a keep-alive asyncio server in its own process, so that
the load generator's parsing never holds its GIL; see ``_support.serve_receiver``). The load: every
50 ms a batch (one generated feed of ``rate / 20`` entries) is parsed with ``fetched`` = now and queued
as the poller queues a fetch (``enqueue_new_items``). A reader thread blocks on XREAD of the entries stream.
Each rate starts with ``--warmup`` seconds of the same load that are not counted (the workers are
long-lived; a fresh one spends its first seconds compiling classifier patterns), and waits for it to drain.

Latency of an item = arrival - ``Item.fetched``, matched by the item's link among the entry's sources:
"stream (XREAD)" is the arrival in the reader thread, "stream (message id)" the time in the stream
message id (when Redis stored it), "webhook" the time the receiver got the POST. Items still missing
``--drain`` seconds after the load stops count as not arrived; when they are more than 1% the p99 is shown
as "> drain". The other figures are absolute; the 100 items/s run is the baseline the 1,000 items/s run is
compared with. Last, where the cores go: CPU per item of each process from the measured load's start until
it has drained (workers and receiver from /proc, so Linux only; redis-server by its own ``INFO cpu``; this
process does the poller's parsing and queueing, and reads the stream); and the commits of the measured
load, from the workers' counters (``livebrief metrics``): batches, items per batch, and conflicts, commit
attempts that found the index changed by the other worker and decided their batch again; and how much of
the load's time some batch held the commit turn (``worker/publish.py``: commits take turns, so this share
nearing 100% is the most the workers together can publish, however many cores are left), sampled every
5 ms by a thread of this process, also per 10 s window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

import redis
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
from feeds.poller import Poller, _Enqueuer
from feeds.status import read_counters
from livebrief.config import FeedConfig
from livebrief.ingest import enqueue_new_items
from livebrief.keys import Keys
from livebrief.models import Item
from livebrief.redis_server import free_port

WINDOW = 10.0  # seconds of load per row of the drift table (runs longer than this)
TICK = 0.05
TURN_SAMPLE = 0.005  # seconds between looks at the commit turn (~200 EXISTS a second: ~1% of a core)


class _Arrivals:
    """Arrival times by item link, from one source (stream reader or webhook receiver).

    Messages are kept as they came (``keep``) and their JSON read only in ``settle``, which the benchmark
    calls after the load: decoding is the harness's work, and it would otherwise take CPU from the workers
    measured on the same cores."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.at: dict[str, float] = {}
        self.by_id: dict[str, float] = {}
        self.pending: list[tuple[bytes, float, float | None]] = []

    def keep(self, raw: bytes, when: float, id_time: float | None = None) -> None:
        with self.lock:
            self.pending.append((raw, when, id_time))

    def settle(self, unwrap: str | None = None) -> None:
        """Decode what was kept (``unwrap``: the entry is under this key of each message)."""
        with self.lock:
            pending, self.pending = self.pending, []
        for raw, when, id_time in pending:
            entry = json.loads(raw)
            self.record(entry[unwrap] if unwrap else entry, when, id_time)

    def record(self, entry: dict[str, Any], when: float, id_time: float | None = None) -> None:
        with self.lock:
            for source in entry.get("sources", []):
                url = source.get("url")
                if url and url not in self.at:
                    self.at[url] = when
                    if id_time is not None:
                        self.by_id[url] = id_time


def _receiver_main(port: int) -> int:
    """The webhook receiver, in its own process: the load generator's parsing must not hold its GIL (a real
    receiver runs elsewhere). POSTs are timed on arrival; ``GET /arrivals`` returns the times by item link,
    ``GET /count`` how many item links have arrived (the benchmark asks only after the load)."""
    arrivals = _Arrivals()

    def report(path: str) -> object:
        arrivals.settle("data")
        with arrivals.lock:
            return len(arrivals.at) if path == "/count" else dict(arrivals.at)

    return serve_receiver(port, arrivals.keep, report)


def _hooked(port: int) -> dict[str, float]:
    """Arrival times at the receiver, by item link."""
    return cast(dict[str, float], ask_receiver(port, "/arrivals"))


def _hooked_count(port: int) -> int:
    """How many item links have arrived at the receiver (a cheap question, asked while items still arrive)."""
    return cast(int, ask_receiver(port, "/count"))


def _stream_reader(client: redis.Redis, stream: str, arrivals: _Arrivals, stop: threading.Event) -> None:
    last = "$"
    while not stop.is_set():
        reply = client.xread({stream: last}, block=200, count=500)
        now = time.time()
        for _, messages in reply or []:
            for message_id, fields in messages:
                last = message_id
                id_ms = int(message_id.split(b"-")[0])
                arrivals.keep(fields[b"entry"], now, id_ms / 1000)


class _TurnSampler:
    """Whether some batch holds the commit turn (``Keys.commit_turn``), looked at every ``TURN_SAMPLE``
    seconds from its own thread and connection, from ``start`` to ``stop``; ``share`` is the part of a span
    of time it was held."""

    def __init__(self, url: str, key: str) -> None:
        self.client, self.key = redis.Redis.from_url(url), key
        self.samples: list[tuple[float, bool]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.wait(TURN_SAMPLE):
            self.samples.append((time.time(), bool(self.client.exists(self.key))))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join(2)
        self.client.close()

    def share(self, start: float, end: float) -> str:
        held = [flag for at, flag in self.samples if start <= at < end]
        return f"{100 * sum(held) / len(held):.0f}%" if held else "-"


def _percentiles(urls: list[str], fetched: dict[str, float], arrivals: dict[str, float],
                 drain: float) -> tuple[str, str, str, int]:
    """p50, p99, max (ms) from fetch to arrival over the items ``urls``; missing items count as later than
    ``drain``."""
    latencies = [arrivals[url] - fetched[url] for url in urls if url in arrivals]
    missing = len(urls) - len(latencies)
    ordered = sorted(latencies) + [float("inf")] * missing

    def at(q: float) -> str:
        if not ordered:
            return "-"
        value = ordered[min(len(ordered) - 1, int(q * len(ordered)))]
        return f"> {drain:.0f} s" if value == float("inf") else f"{value * 1000:,.0f}"

    return at(0.50), at(0.99), at(1.0), missing


async def _gathered(poller: Poller, fetches: list[tuple[str, list[Item]]]) -> None:
    """Fetches that finish together, queued as the poller queues them (``_Enqueuer``: the first alone, the rest
    together)."""
    enqueuer = _Enqueuer(poller._enqueue_fetches)
    await asyncio.gather(*(enqueuer.add(feed_id, items) for feed_id, items in fetches))


def _offer(poller: Poller, feeds: list[FeedConfig], docs: list[bytes], fetched: dict[str, float],
           fetch_items: int = 0, gather: bool = True) -> tuple[float, float]:
    """Parse and queue one doc per tick, as the poller would; returns (items/s offered, most fallen behind).
    With ``fetch_items``, the doc's items arrive as fetches of that many items (the feed's id and ``-n``),
    all finishing at the tick, queued together (``gather``) or each alone (what the poller did before the
    twenty-ninth session)."""
    start = time.perf_counter()
    behind = 0.0
    for n, (doc, feed) in enumerate(zip(docs, feeds, strict=True)):
        due = start + n * TICK
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        else:
            behind = max(behind, -delay)
        now = datetime.now(UTC)
        parsed = parse_feed(doc, feed_id=feed.id, outlet=feed.name, fetched=now)
        if not fetch_items:
            enqueue_new_items(poller.client, poller.config, feed.id, parsed.items, time.time())
        else:
            fetches = [(f"{feed.id}-{k}", parsed.items[k : k + fetch_items])
                       for k in range(0, len(parsed.items), fetch_items)]
            if gather:
                asyncio.run(_gathered(poller, fetches))
            else:
                for feed_id, items in fetches:
                    enqueue_new_items(poller.client, poller.config, feed_id, items, time.time())
        for item in parsed.items:
            fetched[item.url or ""] = now.timestamp()
    return len(fetched) / (time.perf_counter() - start), behind


def _windows(rate: int, label: str, fetched: dict[str, float], arrivals: dict[str, float], drain: float,
             turn: _TurnSampler | None = None) -> list[list[object]]:
    """Latency to ``arrivals`` per ``WINDOW`` seconds of the load (by fetch time): where a long run starts to
    drift, for the stream and for the webhook receiver (deliveries, served after ingest, drift first); with
    ``turn``, the share of each window's time the commit turn was held."""
    if not fetched:
        return []
    start = min(fetched.values())
    by_window: dict[int, list[str]] = {}
    for url, at in fetched.items():
        by_window.setdefault(int((at - start) // WINDOW), []).append(url)
    rows: list[list[object]] = []
    for index in sorted(by_window):
        urls = by_window[index]
        p50, p99, worst, missing = _percentiles(urls, fetched, arrivals, drain)
        since = start + index * WINDOW
        rows.append([f"{rate:,}/s", label, f"{index * WINDOW:.0f}-{(index + 1) * WINDOW:.0f} s", len(urls), p50, p99,
                     worst, missing, turn.share(since, since + WINDOW) if turn else "-"])
    return rows


def _proc_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) a process has used, from /proc; None where there is no /proc."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_snapshot(procs: list[subprocess.Popen[bytes]], receiver: subprocess.Popen[bytes],
                  client: redis.Redis) -> dict[str, float | None]:
    """CPU seconds so far of every process the load runs on (Redis by its own account)."""
    info = client.info("cpu")
    snap: dict[str, float | None] = {f"worker {n + 1}": _proc_cpu(p.pid) for n, p in enumerate(procs)}
    snap["redis-server"] = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    snap["webhook receiver"] = _proc_cpu(receiver.pid)
    snap["this process: parse + queue (the poller's work), stream reader"] = time.process_time()
    return snap


def _run(rate: int, seconds: float, drain: float, workers: int, fork: bool, factory: FeedFactory,
         warmup: float, delivery_worker: bool, queue_order: str, fetch_items: int = 0, gather: bool = True
         ) -> tuple[list[list[object]], list[list[object]], list[list[object]], list[object]]:
    per_tick = max(1, round(rate * TICK))
    ticks = int(seconds / TICK)
    warm_ticks = int(warmup / TICK)
    stream_seen = _Arrivals()
    hook_port = free_port()
    hook_url = f"http://127.0.0.1:{hook_port}/hook"
    receiver = start_receiver(__file__, hook_port)
    with throwaway_redis() as (server, client):
        config = webhook_config(server.url, hook_url, warm_ticks + ticks)
        keys = Keys(config.prefix)
        # As `livebrief work` does by default: each worker serves ingest and deliveries (in ``queue_order``);
        # or, as `livebrief run` lays them out (--delivery-worker), ingest workers and one for deliveries.
        roles = "ingest" if delivery_worker else "ingest,deliveries"
        command = [sys.executable, __file__, "--worker", server.url, hook_url, str(warm_ticks + ticks),
                   "fork" if fork else "simple", queue_order]
        procs = [subprocess.Popen([*command, roles]) for _ in range(workers)]
        if delivery_worker:
            procs.append(subprocess.Popen([*command, "deliveries"]))
        stop = threading.Event()
        reader = threading.Thread(target=_stream_reader, args=(
            redis.Redis.from_url(server.url), keys.entries_stream, stream_seen, stop), daemon=True)
        reader.start()
        poller = Poller(config, client, parse_workers=0)
        feeds = list(poller.feeds.values())
        factory.entries = per_tick
        docs = [factory.feed(10_000 * rate + n) for n in range(warm_ticks + ticks)]
        time.sleep(2.0)  # workers up and listening
        # Warm-up at the same rate, not counted: workers are long-lived, and a fresh one spends its first
        # seconds compiling classifier patterns. Then let them catch up (entries and webhooks) before the
        # measured load, or give up after --drain seconds.
        warm: dict[str, float] = {}
        _offer(poller, feeds[:warm_ticks], docs[:warm_ticks], warm, fetch_items, gather)
        settle = time.time() + drain
        while time.time() < settle and not (_arrived(warm, stream_seen) and _hooked_count(hook_port) >= len(warm)):
            time.sleep(0.1)
        fetched: dict[str, float] = {}
        turn = _TurnSampler(server.url, keys.commit_turn)
        turn.start()
        cpu_before = _cpu_snapshot(procs, receiver, client)
        counted_before = read_counters(client, keys)
        offered, behind = _offer(poller, feeds[warm_ticks:], docs[warm_ticks:], fetched, fetch_items, gather)
        deadline = time.time() + drain
        # The stream by url (its arrivals also hold the warm-up's items); the receiver, cheaply, by count.
        expected_hooked = len(warm) + len(fetched)
        while time.time() < deadline and not (_arrived(fetched, stream_seen)
                                              and _hooked_count(hook_port) >= expected_hooked):
            time.sleep(0.2)
        cpu_after = _cpu_snapshot(procs, receiver, client)
        turn.stop()
        counted = read_counters(client, keys)
        hooked = _hooked(hook_port)
        stop.set()
        reader.join(2)
        stream_seen.settle()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)
        poller.close()
    receiver.terminate()
    receiver.wait(10)

    rows: list[list[object]] = []
    urls = list(fetched)
    for label, table in (("stream (XREAD arrival)", stream_seen.at), ("stream (message id)", stream_seen.by_id),
                         ("webhook receiver", hooked)):
        p50, p99, worst, missing = _percentiles(urls, fetched, table, drain)
        rows.append([f"{rate:,}/s target, {offered:,.0f}/s offered", label, len(urls), p50, p99, worst, missing,
                     f"enqueue fell {behind * 1000:.0f} ms behind" if behind > TICK else "on pace"])
    cpu_rows: list[list[object]] = []
    for name, before in cpu_before.items():
        after = cpu_after[name]
        if before is not None and after is not None and fetched:
            cpu_rows.append([f"{rate:,}/s", name, (after - before) / len(fetched) * 1000])
    if cpu_rows:
        total = sum(cast(float, row[2]) for row in cpu_rows)
        cpu_rows.append([f"{rate:,}/s", f"total: {total * rate / 1000:.2f} cores at this rate", total])
    batches = counted.batches - counted_before.batches
    items = sum(counted.items.values()) - sum(counted_before.items.values())
    conflicts = counted.conflicts - counted_before.conflicts
    load = (min(fetched.values()), max(fetched.values()) + TICK) if fetched else (0.0, 0.0)
    commit_row = [f"{rate:,}/s", batches, items / batches if batches else 0, conflicts,
                  100 * conflicts / (batches + conflicts) if batches else 0, turn.share(*load)]
    windows = (_windows(rate, "stream (XREAD arrival)", fetched, stream_seen.at, drain, turn)
               + _windows(rate, "webhook receiver", fetched, hooked, drain))
    return rows, windows, cpu_rows, commit_row


def _arrived(urls: dict[str, float], arrivals: _Arrivals) -> bool:
    arrivals.settle()
    return all(url in arrivals.at for url in urls)


def _worker_main(redis_url: str, hook_url: str, feeds: int, mode: str, queue_order: str, roles: str) -> int:
    from livebrief.workers import run_worker

    quiet_logs()
    config = webhook_config(redis_url, hook_url, feeds)
    config = config.model_copy(update={"worker": config.worker.model_copy(update={"queue_order": queue_order})})
    run_worker(config, redis.Redis.from_url(redis_url), simple=mode == "simple", roles=tuple(roles.split(",")))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--receiver"]:
        return _receiver_main(int(args[1]))
    if args[:1] == ["--worker"]:
        return _worker_main(args[1], args[2], int(args[3]), args[4], args[5], args[6])
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", type=int, nargs="+", default=[1000, 100], help="items/s (default 1000 100)")
    parser.add_argument("--seconds", type=float, default=10.0, help="load duration per rate (default 10)")
    parser.add_argument("--drain", type=float, default=20.0, help="wait after the load (default 20 s)")
    parser.add_argument("--workers", type=int, default=2, help="RQ worker processes (default 2, one per core)")
    parser.add_argument("--fork", action="store_true", help="RQ's forking Worker instead of SimpleWorker")
    parser.add_argument("--delivery-worker", action="store_true",
                        help="as `livebrief run`: the --workers serve ingest only, one more serves deliveries")
    parser.add_argument("--queue-order", choices=["alternate", "ingest_first"], default="alternate",
                        help="worker.queue_order of workers serving both queues (default alternate)")
    parser.add_argument("--fetch-items", type=int, default=0,
                        help="each batch arrives as fetches of this many items, finishing together (default: one "
                             "fetch)")
    parser.add_argument("--no-gather", action="store_true",
                        help="with --fetch-items: each fetch its own jobs, as the poller queued them before")
    parser.add_argument("--warmup", type=float, default=3.0, help="uncounted load before each rate (default 3 s)")
    parser.add_argument("--quick", action="store_true", help="~30 s: 5 s per rate, 8 s drain")
    ns = parser.parse_args(args)
    if ns.quick:
        ns.seconds, ns.drain = 5.0, 8.0
    quiet_logs()
    titles, source = headlines()
    factory = FeedFactory(titles, entries=50, desc_chars=600, seed=21)
    layout = (" for ingest, 1 for deliveries" if ns.delivery_worker
              else f", each serving ingest and deliveries ({ns.queue_order})")
    arrive = (f"; each batch as fetches of {ns.fetch_items} items, "
              + ("queued each alone" if ns.no_gather else "queued together") if ns.fetch_items else "")
    print(f"{ns.workers} {'forking' if ns.fork else 'simple'} RQ workers{layout}; batches every {TICK * 1000:.0f} ms"
          f"{arrive}; text from {source}")
    rows: list[list[object]] = []
    windows: list[list[object]] = []
    cpu: list[list[object]] = []
    commits: list[list[object]] = []
    for rate in ns.rates:
        run_rows, run_windows, run_cpu, run_commits = _run(rate, ns.seconds, ns.drain, ns.workers, ns.fork, factory,
                                                           ns.warmup, ns.delivery_worker, ns.queue_order,
                                                           ns.fetch_items, not ns.no_gather)
        rows.extend(run_rows)
        windows.extend(run_windows)
        cpu.extend(run_cpu)
        commits.append(run_commits)
    print_table("latency from Item.fetched (ms)",
                ["load", "arrival at", "items", "p50 ms", "p99 ms", "max ms", "not arrived", "pacing"], rows)
    if ns.seconds > WINDOW:
        print_table(f"latency by {WINDOW:.0f} s window of the load, by fetch time (ms): a run that keeps up stays "
                    "flat", ["load", "arrival at", "fetched at", "items", "p50 ms", "p99 ms", "max ms", "not arrived",
                             "commit turn held"], windows)
    if cpu:
        print_table("CPU per item by process, from the measured load's start until it had drained (ms; where the "
                    "cores go)", ["load", "process", "CPU ms per item"], cpu)
    print_table("commits of the measured load (livebrief metrics' counters): a conflict is a commit attempt "
                "that found a key it read changed by the other worker, so its batch was decided again; commits "
                "take turns, and a turn held near 100% of the time is the most the workers can publish",
                ["load", "batches committed", "items per batch", "conflicts", "conflicts per 100 attempts",
                 "commit turn held (share of the load's time)"], commits)
    first = next((r for r in rows if r[0].startswith("1,000/s") and r[1].startswith("stream (XREAD")), None)
    if first:
        print_table("goals (issue 6)", ["goal", "target", "measured"],
                    [["p99 fetched -> stream at 1,000 items/s", "<= 100 ms",
                      first[4] if str(first[4]).startswith(">") else f"{first[4]} ms"]])
    print_machine()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
