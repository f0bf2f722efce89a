"""What ``livebrief feeds``/``status`` and ``livebrief metrics`` show: per-feed health, freshness and push."""

from __future__ import annotations

import time
from typing import cast

import redis
from pydantic import BaseModel

from feeds.health import FeedState, FeedStates
from feeds.push import Subscriptions
from livebrief.config import Config
from livebrief.keys import Keys


class FeedStatus(BaseModel):
    feed: str
    state: FeedState
    entries: int = 0
    first: int = 0
    mean_lag: float | None = None
    push: str | None = None

    @property
    def health(self) -> str:
        if self.state.failures:
            return "failing"
        return "ok" if self.state.last_success else "new"


def feed_statuses(client: redis.Redis, config: Config) -> list[FeedStatus]:
    keys = Keys(config.prefix)
    ids = [f.id for f in config.feeds]
    states = FeedStates(client, keys).get_many(ids)
    pipe = client.pipeline(transaction=False)
    for feed_id in ids:
        pipe.hgetall(keys.feed_stats(feed_id))
    stats = cast(list[dict[bytes, bytes]], pipe.execute())
    subs = Subscriptions(client, keys)
    now = time.time()
    result = []
    for feed_id, raw in zip(ids, stats, strict=True):
        lag_count = int(raw.get(b"lag_count", 0))
        sub = subs.get(feed_id) if config.push.enabled else None
        result.append(FeedStatus(
            feed=feed_id, state=states[feed_id], entries=int(raw.get(b"entries", 0)), first=int(raw.get(b"first", 0)),
            mean_lag=float(raw[b"lag_sum"]) / lag_count if lag_count else None,
            push=("active" if sub.active(now) else sub.state) if sub else None,
        ))
    return result


def prometheus(statuses: list[FeedStatus], queues: dict[str, int], stream_length: int) -> str:
    """The figures in Prometheus text exposition format."""
    lines = [
        "# HELP livebrief_feed_failures Consecutive failed fetches of the feed.",
        "# TYPE livebrief_feed_failures gauge",
        *(f'livebrief_feed_failures{{feed="{s.feed}"}} {s.state.failures}' for s in statuses),
        "# HELP livebrief_feed_last_success_timestamp_seconds Time of the last good fetch.",
        "# TYPE livebrief_feed_last_success_timestamp_seconds gauge",
        *(f'livebrief_feed_last_success_timestamp_seconds{{feed="{s.feed}"}} {s.state.last_success or 0}'
          for s in statuses),
        "# HELP livebrief_feed_entries_total Entries (new stories and added sources) from the feed.",
        "# TYPE livebrief_feed_entries_total counter",
        *(f'livebrief_feed_entries_total{{feed="{s.feed}"}} {s.entries}' for s in statuses),
        "# HELP livebrief_feed_first_total Stories this feed was first to report.",
        "# TYPE livebrief_feed_first_total counter",
        *(f'livebrief_feed_first_total{{feed="{s.feed}"}} {s.first}' for s in statuses),
        "# HELP livebrief_feed_lag_seconds Mean delay from an item's published time to its entry.",
        "# TYPE livebrief_feed_lag_seconds gauge",
        *(f'livebrief_feed_lag_seconds{{feed="{s.feed}"}} {s.mean_lag:.3f}' for s in statuses
          if s.mean_lag is not None),
        "# HELP livebrief_queue_jobs Jobs waiting in each queue.",
        "# TYPE livebrief_queue_jobs gauge",
        *(f'livebrief_queue_jobs{{queue="{name}"}} {count}' for name, count in queues.items()),
        "# HELP livebrief_stream_entries Entry versions kept in the stream.",
        "# TYPE livebrief_stream_entries gauge",
        f"livebrief_stream_entries {stream_length}",
    ]
    return "\n".join(lines) + "\n"
