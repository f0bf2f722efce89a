"""Adaptive polling: each feed is polled at its own posting rate, within bounds, honouring its hints."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import redis

from feeds.health import FeedState, FeedStates, adapt_interval, cache_hint, observed_gap
from feeds.poller import Poller
from feeds.schedule import Schedule
from livebrief.feedserver import FeedServer
from tests.conftest import make_config
from tests.test_network_faults import KEYS, respond


def rss(minutes_apart: float, count: int = 10, ttl: int | None = None) -> str:
    newest = datetime.now(UTC)
    items = "".join(
        f"<item><title>Item {n}</title><guid>g{n}</guid><description>Text {n}.</description>"
        f"<pubDate>{format_datetime(newest - timedelta(minutes=minutes_apart * n))}</pubDate></item>"
        for n in range(count)
    )
    ttl_tag = f"<ttl>{ttl}</ttl>" if ttl else ""
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>F</title>{ttl_tag}{items}</channel></rss>'


def test_posting_gap_is_read_from_the_feeds_own_dates() -> None:
    assert observed_gap([1000.0 - 180 * n for n in range(10)]) == 180
    assert observed_gap([5.0]) is None


def test_an_old_pinned_item_does_not_make_a_live_feed_look_slow() -> None:
    """Found by QA: five items ten minutes apart and one a year old gave a mean gap of ~2 months."""
    live = [100_000_000.0 - 600 * n for n in range(5)]
    assert observed_gap([*live, live[-1] - 365 * 86400]) == 600
    assert observed_gap([*live, live[-1] - 365 * 86400, live[-1] - 400 * 86400]) == 600  # two pinned
    # A gap within ten times the others' is the feed's rhythm, not a pinned item.
    assert observed_gap([*live, live[-1] - 5 * 600]) == (4 * 600 + 5 * 600) / 5
    assert observed_gap([100.0, 50.0, 50.0 - 86400]) == 50  # too few to judge: two items and a pinned one


def test_interval_is_half_the_posting_gap_within_bounds() -> None:
    assert adapt_interval(FeedState(), 0, 3, 180, base=300, low=60, high=21600) == 90
    assert adapt_interval(FeedState(), 0, 3, 30, base=300, low=60, high=21600) == 60
    assert adapt_interval(FeedState(), 0, 3, 7 * 86400, base=300, low=60, high=21600) == 21600
    assert adapt_interval(FeedState(), 0, 0, None, base=300, low=60, high=21600) == 300


def test_a_feed_that_falls_silent_is_polled_less_and_less() -> None:
    state = FeedState()
    adapt_interval(state, 0, 5, 180, base=300, low=60, high=21600)
    intervals = [adapt_interval(state, hour * 3600, 0, None, base=300, low=60, high=21600) for hour in range(1, 6)]
    assert intervals == sorted(intervals) and intervals[-1] > 20 * 90


def test_cache_control_and_expires_give_hints() -> None:
    assert cache_hint({"cache-control": "public, max-age=900"}, 0) == 900
    now = time.time()
    expires = format_datetime(datetime.fromtimestamp(now + 1200, UTC), usegmt=True)
    assert 1190 <= (cache_hint({"expires": expires}, now) or 0) <= 1200
    assert cache_hint({}, now) is None


def _next_due(client: redis.Redis, redis_url: str, feed_server: FeedServer, body: str) -> float:
    feed_server.set("/f.xml", body)
    config = make_config(redis_url, [{"id": "f", "name": "F", "url": feed_server.url("/f.xml")}])
    poller = Poller(config, client, parse_workers=0)
    asyncio.run(poller.poll_once(force=True))
    return poller.schedule.due_times()["f"] - time.time()


def test_a_feed_posting_every_three_minutes_is_polled_within_its_interval(
    client: redis.Redis, redis_url: str, feed_server: FeedServer
) -> None:
    delay = _next_due(client, redis_url, feed_server, rss(minutes_apart=3))
    assert 60 <= delay <= 180


def test_a_feed_posting_daily_is_polled_rarely(client: redis.Redis, redis_url: str, feed_server: FeedServer) -> None:
    delay = _next_due(client, redis_url, feed_server, rss(minutes_apart=24 * 60))
    assert delay >= 5 * 3600


def test_the_feeds_ttl_is_honoured_as_a_lower_bound(
    client: redis.Redis, redis_url: str, feed_server: FeedServer
) -> None:
    delay = _next_due(client, redis_url, feed_server, rss(minutes_apart=3, ttl=60))
    assert delay >= 0.9 * 3600


def test_a_feed_whose_interval_is_shortened_in_the_config_is_due_by_the_new_one(
    client: redis.Redis, redis_url: str, feed_server: FeedServer
) -> None:
    """Found by QA: restarted with ``interval: 2``, a feed polled adaptively waited out its old schedule (up to
    ``max_interval``, 6 h) before the new interval applied."""
    delay = _next_due(client, redis_url, feed_server, rss(minutes_apart=24 * 60))
    assert delay >= 5 * 3600
    state = FeedStates(client, KEYS).get_many(["f"])["f"]
    assert state.last_attempt is not None

    config = make_config(redis_url, [{"id": "f", "name": "F", "url": feed_server.url("/f.xml"), "interval": 2}])
    Poller(config, client, parse_workers=0).sync_schedule()

    assert Schedule(client, KEYS).due_times()["f"] <= max(time.time(), state.last_attempt + 2)


def test_a_failing_feeds_backoff_is_kept_when_the_poller_starts(
    client: redis.Redis, redis_url: str, feed_server: FeedServer
) -> None:
    feed_server.route("/down.xml", respond(500))
    config = make_config(redis_url, [{"id": "d", "name": "D", "url": feed_server.url("/down.xml"), "interval": 2}],
                         polling={"backoff_base": 3600, "backoff_cap": 7200})
    asyncio.run(Poller(config, client, parse_workers=0).poll_once(force=True))
    backed_off = Schedule(client, KEYS).due_times()["d"]
    assert backed_off > time.time() + 1000

    Poller(config, client, parse_workers=0).sync_schedule()

    assert Schedule(client, KEYS).due_times()["d"] == backed_off
