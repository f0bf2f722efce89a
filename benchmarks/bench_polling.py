"""Time to poll many feeds, most of them unchanged (304), with livebrief's poller and with the ``reader`` library.

    .venv/bin/python benchmarks/bench_polling.py             # 10,000 feeds; reader on 2,000 (~1.5 min)
    .venv/bin/python benchmarks/bench_polling.py --quick     # 2,000 feeds; reader on 500 (~20 s)
    .venv/bin/python benchmarks/bench_polling.py --feeds 10000 --reader-feeds 10000   # reader on all

``reader`` is not a project dependency: ``.venv/bin/pip install reader sgmllib3k`` (suggested ``bench``
extra; reader 3.26's vendored feedparser imports ``sgmllib``, which feedparser 6.0.14's own
``feedparser-sgmllib`` no longer provides under that name).

The feeds are served by a small asyncio HTTP/1.1 server in its own process (keep-alive, ETag and
Last-Modified, 304 on a matching ``If-None-Match``), each feed a small RSS document (``--entries``, default
5, with ~600-character HTML descriptions). Its own capacity is measured first with a tight keep-alive client
loop, so the table shows that the server is not the bottleneck.

- livebrief: ``Poller.poll_once(force=True)`` over every feed, twice: cycle 1 fetches, parses and queues
  everything (200s); before cycle 2, ``--changed`` (default 1%) of the feeds get a new entry, the rest
  answer 304. All feeds live on one host (127.0.0.1), so ``polling.per_host`` is raised to
  ``polling.concurrency`` (default 32, the product default) to model feeds spread over many hosts.
- livebrief cycle 3: ``--processes`` (default: the number of cores) fresh poller processes share one cycle
  (1% changed again): every feed is made due, and each process claims chunks from the shared schedule.
- the floor: a bare aiohttp loop of 304s (no poller), the HTTP client livebrief uses; and the same loop
  through httpx (the client livebrief used before), in the layout it used (small clients of 4 connections).
- reader: ``make_reader`` on a temporary SQLite file, ``add_feed`` for each feed, then
  ``update_feeds(workers=N, scheduled=False)`` twice, the same changes between the cycles. When
  ``--reader-feeds`` is smaller than ``--feeds`` it runs on that subset and feeds/s is compared.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _support import (
    FeedFactory,
    headlines,
    make_config,
    print_machine,
    print_table,
    quiet_logs,
    throwaway_redis,
)
from rq import Queue

from feeds.poller import Poller
from livebrief.keys import Keys
from livebrief.redis_server import free_port

# --- the feed server (its own process) -----------------------------------------------------------------


class _Feeds:
    def __init__(self, count: int, entries: int) -> None:
        titles, _ = headlines()
        self.factory = FeedFactory(titles, entries=entries, desc_chars=600, seed=3)
        self.docs = [self._doc(i, 0) for i in range(count)]
        self.editions = [0] * count

    def _doc(self, index: int, edition: int) -> tuple[bytes, bytes, bytes]:
        body = self.factory.feed(index, edition)
        etag = f'"{index}-{edition}"'.encode()
        modified = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(1_700_000_000 + edition * 60)).encode()
        return body, etag, modified

    def bump(self, every: int) -> int:
        changed = 0
        for index in range(0, len(self.docs), every):
            self.editions[index] += 1
            self.docs[index] = self._doc(index, self.editions[index])
            changed += 1
        return changed


def _serve(port: int, count: int, entries: int, ready: multiprocessing.synchronize.Event) -> None:
    feeds = _Feeds(count, entries)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line, _, rest = head.partition(b"\r\n")
                path = line.split(b" ")[1]
                etag_in = None
                for header in rest.split(b"\r\n"):
                    if header[:14].lower() == b"if-none-match:":
                        etag_in = header[14:].strip()
                if path.startswith(b"/_bump/"):
                    out = str(feeds.bump(int(path[7:]))).encode()
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(out), out))
                    continue
                index = int(path.rsplit(b"/", 1)[1].split(b".")[0])
                body, etag, modified = feeds.docs[index]
                if etag_in == etag:
                    writer.write(b"HTTP/1.1 304 Not Modified\r\nETag: %s\r\nLast-Modified: %s\r\n"
                                 b"Content-Length: 0\r\n\r\n" % (etag, modified))
                else:
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nETag: %s\r\n"
                                 b"Last-Modified: %s\r\nContent-Length: %d\r\n\r\n%s"
                                 % (etag, modified, len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class FastFeedServer:
    """``count`` feeds at ``/f/<i>.xml`` on 127.0.0.1, served from another process."""

    def __init__(self, count: int, entries: int) -> None:
        self.port = free_port()
        ctx = multiprocessing.get_context("fork")
        ready = ctx.Event()
        self.process = ctx.Process(target=_serve, args=(self.port, count, entries, ready), daemon=True)
        self.process.start()
        if not ready.wait(120):
            raise RuntimeError("the feed server did not start")

    def url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.port}/f/{index}.xml"

    def bump(self, every: int) -> int:
        """Give every ``every``-th feed a new edition (new entries, new ETag); returns how many changed."""
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/_bump/{every}") as response:
            return int(response.read())

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(5)


async def _capacity(port: int, connections: int, seconds: float) -> float:
    """304 answers per second the server gives a tight keep-alive client loop (no HTTP library)."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def loop(n: int) -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = f'GET /f/{n}.xml HTTP/1.1\r\nHost: x\r\nIf-None-Match: "{n}-0"\r\n\r\n'.encode()
        while time.perf_counter() < deadline:
            writer.write(request)
            await reader.readuntil(b"\r\n\r\n")
            done += 1
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(loop(n) for n in range(connections)))
    return done / (time.perf_counter() - start)


# --- the two pollers -------------------------------------------------------------------------------------


def _livebrief(server: FastFeedServer, count: int, every: int, concurrency: int, profile: bool = False,
               processes: int = 0, drain: list[list[object]] | None = None) -> list[list[object]]:
    """The poller's rows; with ``drain`` (a list), cycles 1 and 2's jobs drained by one worker too, its row
    appended there."""
    rows: list[list[object]] = []
    with throwaway_redis() as (redis_server, client):
        feeds = [{"id": f"feed{i}", "name": f"Outlet {i}", "url": server.url(i)} for i in range(count)]
        config = make_config(redis_server.url, feeds,
                             polling={"concurrency": concurrency, "per_host": concurrency})
        poller = Poller(config, client)
        queue = Queue(Keys(config.prefix).ingest_queue, connection=client)

        async def cycles() -> None:
            # One event loop for both cycles: the Poller's semaphores belong to the loop they first wait on.
            for cycle in (1, 2):
                if cycle == 2:
                    server.bump(every)
                changed = len(range(0, count, every)) if cycle == 2 else count
                profiler = _profiler() if profile and cycle == 2 else None
                jobs = queue.count
                start = time.perf_counter()
                report = await poller.poll_once(force=True)
                took = time.perf_counter() - start
                jobs = queue.count - jobs
                if profiler is not None:
                    profiler.stop()
                    print("\nprofile of livebrief cycle 2 (pyinstrument, wall time, poller process only):")
                    print(profiler.output_text(unicode=False, color=False, show_all=False))
                errors = sorted(set(report.errors.values()))[:1]
                rows.append([f"livebrief cycle {cycle}", count, changed, report.fetched, report.not_modified,
                             report.failed, took, count / took,
                             f"{report.new_items:,} new items queued in {jobs:,} jobs"
                             + (f"; e.g. {errors[0][:60]}" if errors else "")])

        try:
            asyncio.run(cycles())
        finally:
            poller.close()
        if drain is not None:
            drain.append(_drain(config, client, queue))
        if processes:
            rows.append(_livebrief_processes(server, redis_server.url, config, count, every, processes))
    return rows


def _drain(config: Any, client: Any, queue: Queue) -> list[object]:
    """Every queued ingest job run by one burst worker in this process, as `livebrief work --burst` runs them."""
    from livebrief.workers import run_worker

    jobs = queue.count
    items = sum(len(job.args[0]) for job in queue.get_jobs())
    wall, cpu = time.perf_counter(), time.process_time()
    run_worker(config, client, burst=True, simple=True)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return ["cycles 1 and 2's ingest jobs, one burst worker", jobs, items, items / max(jobs, 1), wall,
            items / wall, cpu / max(items, 1) * 1000]


def _poller_process(redis_url: str, config: Any, now: float, go: Any, out: Any) -> None:
    """One ``livebrief poll``-like process: its own Poller and Redis client; polls what it can claim."""
    import redis

    quiet_logs()
    client = redis.Redis.from_url(redis_url)
    poller = Poller(config, client)
    poller.parser._get().submit(int).result()  # start the parse pool before the clock, as a running poller has
    out.put(("ready", 0, 0, 0, 0.0))
    go.wait()
    start = time.perf_counter()
    report = asyncio.run(poller.poll_once(now=now))
    out.put(("done", report.fetched, report.not_modified, report.failed, time.perf_counter() - start))
    poller.close()
    client.close()


def _livebrief_processes(server: FastFeedServer, redis_url: str, config: Any, count: int, every: int,
                         processes: int) -> list[object]:
    """A cycle shared by ``processes`` poller processes: every feed made due, each process claims chunks."""
    import redis

    from feeds.schedule import Schedule

    changed = server.bump(every)
    ctx = multiprocessing.get_context("spawn")  # a clean process, like `livebrief poll` (no inherited forkserver)
    go, out = ctx.Event(), ctx.Queue()
    now = time.time()
    client = redis.Redis.from_url(redis_url)
    Schedule(client, Keys(config.prefix)).make_due(now)
    client.close()
    children = [ctx.Process(target=_poller_process, args=(redis_url, config, now, go, out))
                for _ in range(processes)]
    for child in children:
        child.start()
    for _ in children:
        out.get(timeout=120)
    start = time.perf_counter()
    go.set()
    results = [out.get(timeout=600) for _ in children]
    took = time.perf_counter() - start
    for child in children:
        child.join(30)
    fetched, not_modified, failed = (sum(r[i] for r in results) for i in (1, 2, 3))
    split = " / ".join(f"{r[1] + r[2] + r[3]:,}" for r in results)
    return [f"livebrief cycle 3, {processes} poller processes", count, changed, fetched, not_modified, failed,
            took, count / took, f"feeds per process {split}; all due at once, claimed in chunks"]


async def _httpx_floor(port: int, count: int, clients: int, per_client: int) -> float:
    """Conditional GETs answered 304 per second through a bare httpx loop (no poller)."""
    import httpx

    pool = [httpx.AsyncClient(limits=httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client),
                              trust_env=False) for _ in range(clients)]

    async def worker(slot: int, slots: int) -> None:
        client = pool[slot // per_client]
        for i in range(slot, count, slots):
            request = client.build_request("GET", f"http://127.0.0.1:{port}/f/{i}.xml",
                                           headers={"If-None-Match": f'"{i}-0"'})
            response = await client.send(request, stream=True)
            await response.aread()  # read to the end, so the connection is kept alive
            await response.aclose()

    start = time.perf_counter()
    await asyncio.gather(*(worker(k, clients * per_client) for k in range(clients * per_client)))
    took = time.perf_counter() - start
    for client in pool:
        await client.aclose()
    return count / took


async def _aiohttp_floor(port: int, count: int, connections: int) -> float:
    """Conditional GETs answered 304 per second through a bare aiohttp loop (no poller): the floor of
    livebrief's HTTP client, with the session settings the poller uses."""
    from feeds.fetch import FetchLimits, make_client

    async with make_client(FetchLimits(), max_connections=connections) as session:

        async def worker(slot: int) -> None:
            for i in range(slot, count, connections):
                async with session.get(f"http://127.0.0.1:{port}/f/{i}.xml", allow_redirects=False,
                                       headers={"If-None-Match": f'"{i}-0"'}) as response:
                    await response.read()

        start = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(connections)))
        return count / (time.perf_counter() - start)


def _profiler() -> Any:
    from pyinstrument import Profiler  # not a project dependency: pip install pyinstrument

    profiler = Profiler(interval=0.001, async_mode="disabled")
    profiler.start()
    return profiler


def _reader(server: FastFeedServer, count: int, every: int, workers: int) -> list[list[object]]:
    from reader import make_reader

    # reader's warnings (urllib3's pool of 10 connections is full with 32 workers; feedparser's "bozo" notes
    # of a missing Content-Type, ~one per feed in the second cycle) were ~2,000 lines around the tables.
    # Giving it a pool of 32 changed neither cycle's time (sixteenth session), so only the noise goes.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    logging.getLogger("reader").setLevel(logging.ERROR)
    rows: list[list[object]] = []
    with tempfile.TemporaryDirectory(prefix="livebrief-bench-reader-") as folder:
        reader = make_reader(str(Path(folder) / "reader.sqlite"))
        start = time.perf_counter()
        for i in range(count):
            reader.add_feed(server.url(i))
        add_s = time.perf_counter() - start
        for cycle in (1, 2):
            if cycle == 2:
                server.bump(every)
            changed = len(range(0, count, every)) if cycle == 2 else count
            start = time.perf_counter()
            reader.update_feeds(workers=workers, scheduled=False)
            took = time.perf_counter() - start
            counts = reader.get_feed_counts()
            rows.append([f"reader cycle {cycle}", count, changed, "-", "-", counts.broken, took, count / took,
                         f"workers={workers}; add_feed x{count}: {add_s:.1f} s" if cycle == 1 else
                         f"workers={workers}; {reader.get_entry_counts().total:,} entries stored"])
        reader.close()
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--feeds", type=int, help="feeds livebrief polls (default 10,000; --quick 2,000)")
    parser.add_argument("--reader-feeds", type=int, help="reader's subset (default 2,000; --quick 500)")
    parser.add_argument("--entries", type=int, default=5, help="entries per feed (default 5)")
    parser.add_argument("--changed", type=float, default=0.01, help="share of feeds changed before cycle 2")
    parser.add_argument("--concurrency", type=int, default=32, help="livebrief polling.concurrency (default 32)")
    parser.add_argument("--reader-workers", type=int, default=32, help="reader update_feeds workers (default 32)")
    parser.add_argument("--quick", action="store_true", help="~20 s: 2,000 feeds, reader on 500")
    parser.add_argument("--drain", action="store_true",
                        help="then run the queued ingest jobs with one worker: items/s and CPU per item")
    parser.add_argument("--profile", action="store_true", help="profile livebrief's cycle 2 (pyinstrument)")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1,
                        help="poller processes sharing cycle 3 (default: the number of cores; 0 skips it)")
    ns = parser.parse_args(argv)
    ns.feeds = ns.feeds or (2_000 if ns.quick else 10_000)
    ns.reader_feeds = ns.reader_feeds or (500 if ns.quick else 2_000)
    ns.reader_feeds = min(ns.reader_feeds, ns.feeds)
    every = max(1, round(1 / ns.changed)) if ns.changed > 0 else ns.feeds + 1
    quiet_logs()

    started = time.perf_counter()
    server = FastFeedServer(ns.feeds, ns.entries)
    print(f"feed server: {ns.feeds:,} feeds x {ns.entries} entries, ready in {time.perf_counter() - started:.1f} s")
    try:
        capacity = asyncio.run(_capacity(server.port, 32, 2.0))
        floor_n = min(ns.feeds, 4_000)
        floor_aiohttp = asyncio.run(_aiohttp_floor(server.port, floor_n, ns.concurrency))
        floor_httpx = asyncio.run(_httpx_floor(server.port, floor_n, max(1, ns.concurrency // 4), 4))
        drained: list[list[object]] | None = [] if ns.drain else None
        lb = _livebrief(server, ns.feeds, every, ns.concurrency, ns.profile, ns.processes, drained)
        try:
            import reader  # noqa: F401
        except ImportError as exc:
            rd = []
            print(f"reader cannot be imported ({exc}): its rows are skipped; "
                  ".venv/bin/pip install reader sgmllib3k")
        else:
            rd = _reader(server, ns.reader_feeds, every, ns.reader_workers)
    finally:
        server.stop()

    rows = [["feed server alone: 304s to a tight client loop", "-", "-", "-", "-", "-", 2.0, capacity,
             "32 keep-alive connections, raw sockets"],
            ["bare aiohttp loop (client floor)", floor_n, "-", "-", floor_n, "-", floor_n / floor_aiohttp,
             floor_aiohttp, f"1 ClientSession x {ns.concurrency} connections (livebrief's client and settings)"],
            ["bare httpx loop (previous client)", floor_n, "-", "-", floor_n, "-", floor_n / floor_httpx,
             floor_httpx, f"{max(1, ns.concurrency // 4)} AsyncClients x 4 connections (its best layout)"],
            *lb, *rd]
    print_table("polling (feeds/s = feeds / cycle wall time)",
                ["run", "feeds", "changed", "200", "304", "failed", "seconds", "feeds/s", "notes"], rows)
    if drained:
        print_table("draining what the cycles queued (a fetch's new items share jobs with the fetches that "
                    "finished while the poller's last enqueue was in flight)",
                    ["run", "jobs", "items", "items per job", "seconds", "items/s", "worker CPU ms per item"],
                    drained)
    lb2 = lb[1][7] if len(lb) > 1 else 0.0
    goals: list[list[object]] = [
        [f"{ns.feeds:,} unchanged feeds (livebrief cycle 2)", "<= 10 s", f"{lb[1][6]:.1f} s"],
        ["server capacity / livebrief cycle 2 rate", "well above 1", f"{capacity / lb2:.1f}x"],
        ["livebrief cycle 2 rate / bare aiohttp loop", "-", f"{lb2 / floor_aiohttp:.2f}"],
    ]
    if rd:
        subset = "" if ns.reader_feeds == ns.feeds else f" (reader on {ns.reader_feeds:,} of {ns.feeds:,} feeds)"
        goals.append([f"livebrief / reader, cycle 2 feeds/s{subset}", ">= 5x", f"{lb2 / rd[1][7]:.1f}x"])
        goals.append(["livebrief / reader, cycle 1 feeds/s", "-", f"{lb[0][7] / rd[0][7]:.1f}x"])
        if len(lb) > 2:
            goals.append([f"livebrief {ns.processes} processes / reader (threads, one process), cycle 2 feeds/s",
                          ">= 5x", f"{lb[2][7] / rd[1][7]:.1f}x"])  # type: ignore[operator]
    if len(lb) > 2:
        goals.insert(1, [f"{ns.feeds:,} feeds, 1% changed, {ns.processes} poller processes (cycle 3)", "<= 10 s",
                         f"{lb[2][6]:.1f} s"])
    print_table("goals (issue 6)", ["goal", "target", "measured"], goals)
    print_machine()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
