"""Per-feed state and health: what the last fetch said, and when to try next.

``next_after_success`` and ``next_after_failure`` are pure (``now`` and the random source are passed in),
in the manner of reader's ``Decider``: the poller applies them, the tests call them directly.
A feed is never given up on: failures back off exponentially with jitter up to a cap (24 h by default),
and the first success resets it.
"""

from __future__ import annotations

import random
from email.utils import parsedate_to_datetime
from typing import Any

import redis
from pydantic import BaseModel

from livebrief.keys import Keys
from livebrief.numbers import ascii_int


class FeedState(BaseModel):
    # The configured URL the validators, cursor and ``moved_to`` below were learnt from: when the config
    # names another, they are dropped (the old URL's ETag or date could make the new one answer 304 forever).
    url: str | None = None
    moved_to: str | None = None  # where the URL moved for good (301, 308): fetched instead of it
    etag: str | None = None
    last_modified: str | None = None
    cursor: str | None = None
    last_attempt: float | None = None
    last_success: float | None = None
    last_status: int | None = None
    last_error: str | None = None
    last_error_kind: str | None = None
    last_error_at: float | None = None
    repaired: str | None = None  # what parsing the last fetched body repaired or left out (``ParsedFeed.warnings``)
    failures: int = 0
    next_attempt: float | None = None
    retry_after_until: float | None = None
    last_fetch_ms: float | None = None
    last_new_items: int = 0
    posting_gap: float | None = None  # smoothed seconds between the feed's posts (adaptive polling)
    last_new_at: float | None = None
    items_total: int = 0
    fetches: int = 0
    not_modified: int = 0

    def to_redis(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.model_dump().items() if v is not None}

    @classmethod
    def from_redis(cls, raw: dict[bytes, bytes] | dict[str, str]) -> FeedState:
        data: dict[str, Any] = {}
        for key, value in raw.items():
            k = key.decode() if isinstance(key, bytes) else key
            data[k] = value.decode() if isinstance(value, bytes) else value
        return cls.model_validate(data)


def next_after_success(
    now: float, interval: float, rng: random.Random, ttl_hint: float | None = None, max_interval: float = 6 * 3600
) -> float:
    """Next due time after a good fetch: the interval (or the feed's own longer ``ttl`` hint, bounded),
    with +-10% jitter so feeds added together do not stay in lock-step."""
    base = interval
    if ttl_hint and ttl_hint > base:
        base = min(ttl_hint, max_interval)
    return now + base * rng.uniform(0.9, 1.1)


PINNED_GAP_FACTOR = 10


def observed_gap(published: list[float], sample: int = 10) -> float | None:
    """The feed's own posting rate: mean seconds between its ``sample`` newest dated items.

    The oldest item is left out while its gap is over ``PINNED_GAP_FACTOR`` times the median of the others:
    a small live feed that keeps an item a year old pinned (found by QA) posts every few minutes, not every
    two months. Only from the oldest end, so a feed that posts in bursts keeps the quiet between them."""
    newest = sorted(published, reverse=True)[:sample]
    while len(newest) >= 3:
        gaps = sorted(a - b for a, b in zip(newest[:-2], newest[1:-1], strict=True))
        typical = gaps[len(gaps) // 2]
        if typical <= 0 or newest[-2] - newest[-1] <= PINNED_GAP_FACTOR * typical:
            break
        newest.pop()
    if len(newest) < 2 or newest[0] == newest[-1]:
        return None
    return (newest[0] - newest[-1]) / (len(newest) - 1)


def adapt_interval(
    state: FeedState, now: float, new_items: int, gap: float | None, base: float, low: float, high: float
) -> float:
    """Update ``state``'s posting-rate estimate and return the interval to poll at: half the feed's
    typical gap between posts (so a post waits half a gap on average), within [low, high].

    The estimate blends the gap seen in the feed's own dates with the silence since its last new item, so
    a feed that stops posting drifts towards ``high`` and one that wakes up is caught within a poll or two.
    """
    if gap is not None:
        state.posting_gap = gap if state.posting_gap is None else 0.5 * state.posting_gap + 0.5 * gap
    if new_items > 0:
        state.last_new_at = now
    elif state.last_new_at is not None and state.posting_gap is not None:
        quiet = now - state.last_new_at
        if quiet > state.posting_gap:
            state.posting_gap = 0.7 * state.posting_gap + 0.3 * quiet
    if state.posting_gap is None:
        return min(max(base, low), high)
    return min(max(state.posting_gap / 2, low), high)


def cache_hint(headers: dict[str, str], now: float) -> float | None:
    """Seconds the server asks us to wait, from Cache-Control max-age or Expires (None when absent)."""
    control = headers.get("cache-control", "")
    for part in control.split(","):
        name, _, value = part.strip().partition("=")
        seconds = ascii_int(value) if name.lower() in ("max-age", "s-maxage") else None
        if seconds is not None:
            return float(seconds)
    expires = headers.get("expires")
    if expires:
        try:
            when = parsedate_to_datetime(expires)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        return max(0.0, when.timestamp() - now)
    return None


def next_after_failure(
    now: float,
    failures: int,
    base: float,
    cap: float,
    rng: random.Random,
    retry_after: float | None = None,
) -> float:
    """Next due time after the ``failures``-th consecutive failure: exponential backoff with full jitter
    in its upper half, capped; a server's Retry-After wins when it asks for longer (bounded by the cap)."""
    # The exponent is bounded: 2**1100 does not fit a float, and a feed failing for years must stay scheduled.
    delay = min(cap, base * 2.0 ** min(max(0, failures - 1), 64))
    delay = rng.uniform(delay / 2, delay)
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return now + delay


class FeedStates:
    """The Redis side: one hash per feed."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys

    def get_many(self, feed_ids: list[str]) -> dict[str, FeedState]:
        pipe = self.client.pipeline(transaction=False)
        for feed_id in feed_ids:
            pipe.hgetall(self.keys.feed_state(feed_id))
        return {f: FeedState.from_redis(raw) for f, raw in zip(feed_ids, pipe.execute(), strict=True)}

    def put(self, feed_id: str, state: FeedState, pipe: redis.client.Pipeline) -> None:
        key = self.keys.feed_state(feed_id)
        pipe.delete(key)
        pipe.hset(key, mapping=state.to_redis())
