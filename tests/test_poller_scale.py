"""Polling at scale: several pollers share one schedule, claim due feeds in chunks, and never fetch a feed twice
in one interval."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler

import redis

from feeds.poller import CLAIM_CHUNK_FACTOR, Poller, PollReport
from feeds.schedule import Schedule
from livebrief.feedserver import FeedServer
from tests.conftest import make_config
from tests.test_network_faults import WIRE, feed

FEEDS = 60
CONCURRENCY = 2  # claim chunks of 8: each poller claims many times


def slow(req: BaseHTTPRequestHandler) -> bool:
    time.sleep(0.01)  # long enough that both pollers are busy at once; then serve normally
    return False


def serve(feed_server: FeedServer) -> list[dict[str, str]]:
    feeds = []
    for i in range(FEEDS):
        path = f"/f/{i}.xml"
        feed_server.set(path, WIRE.replace(b"<title>", f"<title>{i} ".encode(), 1))
        feed_server.route(path, slow)
        feeds.append(feed(f"feed{i}", feed_server.url(path)))
    return feeds


def run_pollers(config: object, redis_url: str, count: int, *, force: bool, now: float) -> list[PollReport]:
    """``count`` pollers, each in its own thread with its own event loop and Redis client, started together."""
    barrier = threading.Barrier(count)
    reports: list[PollReport | BaseException] = [PollReport() for _ in range(count)]

    def one(index: int) -> None:
        client = redis.Redis.from_url(redis_url)
        poller = Poller(config, client, parse_workers=0, rng=random.Random(index))  # type: ignore[arg-type]
        try:
            barrier.wait()
            reports[index] = asyncio.run(poller.poll_once(force=force, now=now))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            reports[index] = exc
        finally:
            poller.close()
            client.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for report in reports:
        if isinstance(report, BaseException):
            raise report
    return reports  # type: ignore[return-value]


def requests_per_path(feed_server: FeedServer) -> Counter[str]:
    return Counter(path for path, status in feed_server.requests if status != "custom")


def test_two_pollers_split_the_due_feeds_and_fetch_each_once(
    feed_server: FeedServer, redis_url: str, client: redis.Redis
) -> None:
    config = make_config(redis_url, serve(feed_server), polling={"concurrency": CONCURRENCY, "per_host": 2})
    now = time.time()
    Poller(config, client).sync_schedule(now - 120)  # every feed scheduled, and due by now

    reports = run_pollers(config, redis_url, 2, force=False, now=now)

    assert requests_per_path(feed_server) == Counter({f"/f/{i}.xml": 1 for i in range(FEEDS)})
    assert sum(r.fetched for r in reports) == FEEDS
    assert all(r.failed == 0 for r in reports)
    # Both took a fair share, not the first claimer everything.
    assert min(r.fetched for r in reports) >= FEEDS // 4, [r.fetched for r in reports]

    # Within the interval nothing is due again: a second round at the same time fetches nothing.
    again = run_pollers(config, redis_url, 2, force=False, now=now)
    assert sum(r.fetched + r.not_modified + r.failed for r in again) == 0
    assert sum(requests_per_path(feed_server).values()) == FEEDS


def test_a_forced_cycle_is_shared_too_and_never_fetches_a_feed_twice(
    feed_server: FeedServer, redis_url: str, client: redis.Redis
) -> None:
    config = make_config(redis_url, serve(feed_server), polling={"concurrency": CONCURRENCY, "per_host": 2})
    first = run_pollers(config, redis_url, 2, force=True, now=time.time())
    assert sum(r.fetched for r in first) == FEEDS
    # Forced again: every feed is polled once more (now a 304), still once per feed, still shared.
    second = run_pollers(config, redis_url, 2, force=True, now=time.time())
    assert sum(r.not_modified for r in second) == FEEDS
    assert min(r.not_modified for r in second) >= FEEDS // 4, [r.not_modified for r in second]
    assert requests_per_path(feed_server) == Counter({f"/f/{i}.xml": 2 for i in range(FEEDS)})


def test_due_feeds_are_claimed_in_chunks(
    feed_server: FeedServer, redis_url: str, client: redis.Redis, monkeypatch: object
) -> None:
    config = make_config(redis_url, serve(feed_server), polling={"concurrency": CONCURRENCY, "per_host": 2})
    limits: list[int] = []
    real = Schedule.claim

    def spy(self: Schedule, now: float, lease: float, limit: int) -> list[str]:
        limits.append(limit)
        return real(self, now, lease, limit)

    monkeypatch.setattr(Schedule, "claim", spy)  # type: ignore[attr-defined]
    poller = Poller(config, client, parse_workers=0)
    try:
        report = asyncio.run(poller.poll_once(force=True))
    finally:
        poller.close()
    assert report.fetched == FEEDS
    chunk = CONCURRENCY * CLAIM_CHUNK_FACTOR
    assert set(limits) == {chunk}
    assert len(limits) == -(-FEEDS // chunk) + 1  # the chunks, then one claim that finds nothing due
