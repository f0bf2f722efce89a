"""Items per second through parse, dedupe, classify, condense and publish, next to its floor and a naive design.

    .venv/bin/python benchmarks/bench_pipeline.py            # ~1 min on 2 cores
    .venv/bin/python benchmarks/bench_pipeline.py --quick    # ~20 s
    .venv/bin/python benchmarks/bench_pipeline.py --feeds 200 --naive-items 500
    .venv/bin/python benchmarks/bench_pipeline.py --quick --profile   # needs `pip install pyinstrument`
    .venv/bin/python benchmarks/bench_pipeline.py --quick --desc-chars 20000   # feeds of whole articles

Feeds are generated RSS 2.0 documents, 50 entries each, with ~600-character HTML descriptions made from
the shared headline corpus when present (``--desc-chars``: longer, as feeds of whole articles carry).
Every measurement runs in this one process on the same bytes:

(a) ``feedparser.parse`` alone: the floor any feed-based pipeline pays;
(b) livebrief's ``parse_feed`` alone, as it runs (plain RSS 2.0 goes to ``feeds/fastxml.py``) and with
    feedparser forced (``fast_path=False``);
(c) the full path: ``parse_feed`` -> ``enqueue_new_items`` (one RQ job per feed batch, as the poller
    queues a fetch) -> a real burst worker (``livebrief.workers.run_worker``) draining the ingest queue into
    a throwaway redis-server; once with RQ's forking ``Worker`` and once with ``SimpleWorker``; the index
    is emptied before each, so both see the same work;
(e) the same full path into workers that are already running and warm, as in a deployment: one or N
    ``livebrief work`` processes, started and fed a warm-up set of other feeds before the clock starts,
    drain the queue while this process is still parsing and queueing (so parsing and processing overlap);
(d) the naive design: one RQ job per entry, RQ's forking ``Worker``, each job doing the same pure work
    (``prepare``: classify, condense, sign) and then one round trip per operation (SET NX seen, XADD,
    PUBLISH); run on a smaller sample, reported per item.

Items/s is items in / wall time from the first parse to the empty queue. No asserts: figures only.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
import redis
import yaml
from _support import (
    ROOT,
    FeedFactory,
    headlines,
    make_config,
    print_machine,
    print_table,
    quiet_logs,
    throwaway_redis,
)
from rq import Queue, Worker, get_current_job
from rq.job import Job

from feeds.parse import parse_feed
from feeds.poller import Poller
from livebrief.config import Config, FeedConfig
from livebrief.ingest import enqueue_new_items
from livebrief.keys import Keys
from livebrief.models import Item
from livebrief.workers import run_worker
from worker.prepare import prepare
from worker.runtime import configure, current

NAIVE_QUEUE = "bench-naive"
# By name, as the poller names its job: RQ refuses functions of __main__ (this file, run as a script).
NAIVE_JOB = "bench_pipeline.naive_job"


def naive_job(raw: dict[str, Any]) -> bool:
    """The per-entry design: the same pure stages, then one Redis round trip per operation."""
    job = get_current_job()
    assert job is not None
    client = job.connection
    runtime = current()
    settings = runtime.config.worker
    item = Item.model_validate(raw)
    p = prepare(item, runtime.topics, settings)
    if not client.set(runtime.keys.seen(item.id), item.content_hash, nx=True, ex=settings.seen_ttl):
        return False
    body = p.condensed.model_dump_json()
    client.xadd(runtime.keys.entries_stream, {"entry": body})
    client.publish(runtime.keys.all_channel, body)
    return True


def _best(fn: Callable[[], int], repeat: int) -> tuple[int, float]:
    best = float("inf")
    count = 0
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        count = fn()
        best = min(best, time.perf_counter() - start)
    return count, best


def _parse_all(docs: list[bytes], feeds: list[FeedConfig], fast_path: bool = True) -> list[list[Item]]:
    fetched = datetime.now(UTC)
    return [parse_feed(d, feed_id=f.id, outlet=f.name, fetched=fetched, fast_path=fast_path).items
            for d, f in zip(docs, feeds, strict=True)]


def _full_path(config: Config, client: redis.Redis, docs: list[bytes], drain: Callable[[], None]) -> dict[str, float]:
    """Parse and queue every feed as the poller does, then ``drain()`` the queue with real RQ workers."""
    client.flushdb()  # our throwaway server: every variant starts from an empty index
    keys = Keys(config.prefix)
    poller = Poller(config, client, parse_workers=0)
    feeds = list(poller.feeds.values())
    gc.collect()
    start = time.perf_counter()
    items = 0
    now = time.time()
    for doc, feed in zip(docs, feeds, strict=True):
        parsed = parse_feed(doc, feed_id=feed.id, outlet=feed.name, fetched=datetime.now(UTC))
        items += enqueue_new_items(client, config, feed.id, parsed.items, now)
    queued = time.perf_counter()
    drain()
    done = time.perf_counter()
    poller.close()
    failed = Queue(keys.ingest_queue, connection=client).failed_job_registry.count
    return {
        "items": items, "queue_s": queued - start, "drain_s": done - queued, "total_s": done - start,
        "stream": client.xlen(keys.entries_stream), "failed": failed,
    }


def _in_process(config: Config, client: redis.Redis, simple: bool) -> Callable[[], None]:
    """One burst worker in this process."""
    return lambda: run_worker(config, client, burst=True, simple=simple)


def _processes(config: Config, processes: int) -> Callable[[], None]:
    """``processes`` ``livebrief work --burst`` processes at once: the design's way to use more cores (any
    number of workers share one Redis)."""
    env = _worker_env(config)

    def drain() -> None:
        command = [sys.executable, "-m", "livebrief.cli", "work", "--burst", "--queues", "ingest"]
        workers = [subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                   for _ in range(processes)]
        for proc in workers:
            proc.wait()

    return drain


def _worker_env(config: Config) -> dict[str, str]:
    path = Path(tempfile.mkdtemp(prefix="livebrief-bench-")) / "config.yaml"
    path.write_text(yaml.safe_dump({"prefix": config.prefix, "topics_file": str(config.topics_path),
                                    "worker": {"stream_maxlen": config.worker.stream_maxlen}}))
    return {**os.environ, "REDIS_URL": str(config.redis_url), "LIVEBRIEF_CONFIG": str(path),
            "LIVEBRIEF_LOG_LEVEL": "WARNING"}


def _queue_all(poller: Poller, docs: list[bytes], feeds: list[FeedConfig]) -> int:
    """Parse and queue as the poller does; returns the number of items."""
    items = 0
    now = time.time()
    for doc, feed in zip(docs, feeds, strict=True):
        parsed = parse_feed(doc, feed_id=feed.id, outlet=feed.name, fetched=datetime.now(UTC))
        items += enqueue_new_items(poller.client, poller.config, feed.id, parsed.items, now)
    return items


def _ingest_jobs(client: redis.Redis) -> int:
    """Ingest jobs queued so far, finished ones included (kept ``worker.finished_job_ttl``, 60 s): how big the
    poller cut them depends on the queue at that moment (``worker.busy_job_items``), so they are counted."""
    return sum(1 for _ in client.scan_iter(match=f"{Job.redis_job_namespace_prefix}ingest-*", count=10_000))


def _running(config: Config, client: redis.Redis, docs: list[bytes], warm_docs: list[bytes],
             processes: int) -> dict[str, float]:
    """(e): ``processes`` running ``livebrief work`` processes, warmed up, drain while this process queues."""
    client.flushdb()
    keys = Keys(config.prefix)
    queue = Queue(keys.ingest_queue, connection=client)
    command = [sys.executable, "-m", "livebrief.cli", "work", "--queues", "ingest"]
    env = _worker_env(config)
    workers = [subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for _ in range(processes)]
    warm_feeds = [FeedConfig(id=f"warm{i}", name=f"Warm {i}", url=f"http://127.0.0.1:9/warm{i}.xml")
                  for i in range(len(warm_docs))]
    poller = Poller(config.model_copy(update={"feeds": [*config.feeds, *warm_feeds]}), client, parse_workers=0)
    feeds = [poller.feeds[f.id] for f in config.feeds]

    def done_jobs() -> int:
        return queue.finished_job_registry.count + queue.failed_job_registry.count

    def wait_for(jobs: int) -> None:
        while done_jobs() < jobs:
            time.sleep(0.005)

    try:
        _queue_all(poller, warm_docs, [poller.feeds[f.id] for f in warm_feeds])
        warm_jobs = _ingest_jobs(client)
        wait_for(warm_jobs)
        stream_before = client.xlen(keys.entries_stream)
        gc.collect()
        start = time.perf_counter()
        items = _queue_all(poller, docs, feeds)
        queued = time.perf_counter()
        jobs = _ingest_jobs(client) - warm_jobs  # a SCAN of a few ms, counted in the time
        wait_for(warm_jobs + jobs)
        done = time.perf_counter()
    finally:
        for proc in workers:
            proc.terminate()
        for proc in workers:
            proc.wait()
        poller.close()
    return {
        "items": items, "queue_s": queued - start, "drain_s": done - queued, "total_s": done - start,
        "stream": client.xlen(keys.entries_stream) - stream_before, "failed": queue.failed_job_registry.count,
        "overlapped": True,  # the workers drained while this process was still queueing
        "jobs": jobs,
    }


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median throughput, noting the range over all runs."""
    ranked = sorted(runs, key=lambda run: run["items"] / run["total_s"])
    median = dict(ranked[len(ranked) // 2])
    if len(runs) > 1:
        low, high = (run["items"] / run["total_s"] for run in (ranked[0], ranked[-1]))
        median["spread"] = f"median of {len(runs)} runs, {low:,.0f}-{high:,.0f} items/s"
    return median


def _naive(config: Config, client: redis.Redis, items: list[Item]) -> dict[str, float]:
    client.flushdb()
    runtime = configure(config)
    # Import the job's module here, not once per forked work-horse, as process_batch's module is.
    importlib.import_module(NAIVE_JOB.rpartition(".")[0])
    # Warm the classifier's compiled patterns in the parent, so every forked work-horse inherits them:
    # a naive design would load its models once too, and a cold fork per job would flatter our ratio.
    for item in items:
        prepare(item, runtime.topics, runtime.config.worker)
    queue = Queue(NAIVE_QUEUE, connection=client)
    payloads = [item.model_dump(mode="json") for item in items]
    gc.collect()
    start = time.perf_counter()
    for raw in payloads:
        queue.enqueue_call(NAIVE_JOB, args=(raw,), result_ttl=600)
    queued = time.perf_counter()
    Worker([queue], connection=client).work(burst=True, with_scheduler=True, logging_level="WARNING")
    done = time.perf_counter()
    return {
        "items": len(items), "queue_s": queued - start, "drain_s": done - queued, "total_s": done - start,
        "stream": client.xlen(Keys(config.prefix).entries_stream), "failed": queue.failed_job_registry.count,
    }


def _profile(config: Config, client: redis.Redis, docs: list[bytes]) -> None:
    try:
        from pyinstrument import Profiler
    except ImportError:
        print("\n--profile needs pyinstrument: .venv/bin/pip install pyinstrument (not a project dependency)")
        return
    profiler = Profiler(interval=0.001)
    profiler.start()
    _full_path(config, client, docs, _in_process(config, client, simple=True))
    profiler.stop()
    print("\nprofile of the full path with SimpleWorker (pyinstrument, wall time):")
    print(profiler.output_text(unicode=False, color=False, show_all=False))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--feeds", type=int, default=120, help="feeds for (a)-(c), 50 entries each (default 120)")
    parser.add_argument("--entries", type=int, default=50, help="entries per feed (default 50)")
    parser.add_argument("--desc-chars", type=int, default=600, help="HTML characters per description (default 600)")
    parser.add_argument("--naive-items", type=int, default=300, help="entries for the naive baseline (default 300)")
    parser.add_argument("--quick", action="store_true", help="~20 s: 16 feeds, 60 naive entries")
    parser.add_argument("--profile", action="store_true", help="also profile the full path (pyinstrument)")
    parser.add_argument("--runs", type=int, default=1,
                        help="runs of each (e) variant and of (d); the median is shown (default 1)")
    ns = parser.parse_args(argv)
    if ns.quick:
        ns.feeds, ns.naive_items = 16, 60
    quiet_logs()

    titles, source = headlines()
    factory = FeedFactory(titles, entries=ns.entries, desc_chars=ns.desc_chars)
    docs = [factory.feed(i) for i in range(ns.feeds)]
    size = sum(map(len, docs)) / len(docs)
    print(f"{ns.feeds} feeds x {ns.entries} entries, {size / 1024:.1f} KiB per feed on average; text from {source}")

    with throwaway_redis() as (server, client):
        feed_rows = [{"id": f"feed{i}", "name": f"Outlet {i}", "url": f"http://127.0.0.1:9/feed{i}.xml"}
                     for i in range(ns.feeds)]
        config = make_config(server.url, feed_rows)
        configure(config)
        feeds = [FeedConfig(**row) for row in feed_rows]

        repeat = 2 if ns.quick else 3
        fp_n, fp_s = _best(lambda: sum(len(feedparser.parse(d).entries) for d in docs), repeat)
        pf_n, pf_s = _best(lambda: sum(len(items) for items in _parse_all(docs, feeds)), repeat)
        slow_n, slow_s = _best(lambda: sum(len(items) for items in _parse_all(docs, feeds, fast_path=False)), repeat)
        fp_rate, pf_rate, slow_rate = fp_n / fp_s, pf_n / pf_s, slow_n / slow_s

        fork = _full_path(config, client, docs, _in_process(config, client, simple=False))
        simple = _full_path(config, client, docs, _in_process(config, client, simple=True))
        cores = os.cpu_count() or 2
        many = _full_path(config, client, docs, _processes(config, cores))
        warm_docs = [factory.feed(ns.feeds + i) for i in range(max(4, ns.feeds // 10))]
        # Running workers race for the same stories (a lost race re-plans its batch), so this figure varies
        # from run to run more than the others: with --runs, the median run is shown, the spread in notes.
        warm_one = _median_run([_running(config, client, docs, warm_docs, 1) for _ in range(ns.runs)])
        warm_many = _median_run([_running(config, client, docs, warm_docs, cores) for _ in range(ns.runs)])
        parsed = [item for items in _parse_all(docs, feeds) for item in items]
        # The naive rate is mostly the cost of a fork and of RQ's bookkeeping, which move more from run to run
        # than anything else here (41-59 items/s on one machine in one day): its median too.
        naive = _median_run([_naive(config, client, parsed[: ns.naive_items]) for _ in range(ns.runs)])

        naive_rate = naive["items"] / naive["total_s"]
        rows: list[list[object]] = [
            ["(a) feedparser.parse alone (floor)", fp_n, fp_s, fp_rate, 1.0, "-", f"best of {repeat}"],
            ["(b) livebrief parse_feed alone", pf_n, pf_s, pf_rate, pf_rate / fp_rate, "-",
             f"best of {repeat}; feeds/fastxml.py reads these plain RSS 2.0 feeds"],
            ["(b) parse_feed, feedparser forced", slow_n, slow_s, slow_rate, slow_rate / fp_rate, "-",
             f"best of {repeat}; fast_path=False"],
        ]
        for label, run in (("(c) full path, RQ Worker (fork per job)", fork),
                           ("(c) full path, RQ SimpleWorker (livebrief work)", simple),
                           (f"(c) full path, {cores} worker processes", many),
                           ("(e) running warm worker, 1 process", warm_one),
                           (f"(e) running warm workers, {cores} processes", warm_many)):
            rate = run["items"] / run["total_s"]
            drain = (f"drain {run['drain_s']:.1f} s more" if run.get("overlapped")
                     else f"then drain {run['drain_s']:.1f} s")
            rows.append([label, int(run["items"]), run["total_s"], rate, rate / fp_rate, rate / naive_rate,
                         f"parse+queue {run['queue_s']:.1f} s, {drain}; "
                         f"{run['stream']:,} stream entries, "
                         + (f"{run['jobs']} jobs, " if "jobs" in run else "") + f"{run['failed']} failed jobs"
                         + (f"; {run['spread']}" if "spread" in run else "")])
        rows.append(["(d) naive: job per entry, fork, 1 RTT per op", int(naive["items"]), naive["total_s"], naive_rate,
                     naive_rate / fp_rate, 1.0,
                     f"queue {naive['queue_s']:.1f} s, drain {naive['drain_s']:.1f} s; "
                     f"{naive['stream']:,} stream entries, {naive['failed']} failed jobs"
                     + (f"; {naive['spread']}" if "spread" in naive else "")])
        print_table("pipeline throughput (items/s; ratios against (a) and (d) measured in this run)",
                    ["measurement", "items", "seconds", "items/s", "vs feedparser", "vs naive", "notes"], rows)
        variants = [("1 burst worker", simple), (f"{cores} burst processes", many),
                    ("1 running worker", warm_one), (f"{cores} running workers", warm_many)]
        rates = [run["items"] / run["total_s"] for _, run in variants]
        print_table("goals (issue 6)", ["goal", "target", *(name for name, _ in variants)], [
            ["full / feedparser", ">= 0.6", *(f"{rate / fp_rate:.2f}" for rate in rates)],
            ["full / naive", ">= 30x", *(f"{rate / naive_rate:.1f}x" for rate in rates)],
        ])
        print_machine(client)
        if ns.profile:
            _profile(config, client, docs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
