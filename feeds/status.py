"""What ``livebrief feeds``/``status`` and ``livebrief metrics`` show: per-feed health, freshness and push."""

from __future__ import annotations

import time
from typing import Any, cast

import redis
from pydantic import BaseModel

from feeds.health import FeedState, FeedStates
from feeds.push import Subscriptions
from livebrief.config import Config
from livebrief.keys import Keys
from livebrief.workers import queues


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


class Counters(BaseModel):
    """What the workers did (``Keys.counters``), counted since the index was created. The attributes are
    named as the hash's fields (``livebrief/keys.py``): a plain count, or a count per label."""

    items: dict[str, int] = {}  # by outcome
    batches: int = 0
    conflicts: int = 0
    versions: int = 0
    delivered: dict[str, int] = {}  # by webhook
    dead_letters: dict[str, int] = {}  # by webhook
    dead_letters_dropped: dict[str, int] = {}  # by webhook: dropped, oldest first, past worker.dead_letters_max
    deferred: dict[str, int] = {}  # by webhook: deliveries put off because the receiver asked to wait


def read_counters(client: redis.Redis, keys: Keys) -> Counters:
    fields: dict[str, Any] = {}
    for raw_field, raw_value in cast(dict[bytes, bytes], client.hgetall(keys.counters)).items():
        kind, _, label = raw_field.decode().partition(":")
        if label:
            fields.setdefault(kind, {})[label] = int(raw_value)
        else:
            fields[kind] = int(raw_value)
    return Counters.model_validate(fields)


def prometheus(statuses: list[FeedStatus], queues: dict[str, int], stream_length: int, counters: Counters,
               dead_letters: int, parked: dict[str, int] | None = None) -> str:
    """The figures in Prometheus text exposition format; ``parked``: each webhook's delivery jobs waiting for
    one of its lanes (``worker/lanes.py``)."""
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
        "# HELP livebrief_items_total Items the workers decided, by outcome (a batch retried after a crash "
        "counts its items again, as seen).",
        "# TYPE livebrief_items_total counter",
        *(f'livebrief_items_total{{outcome="{o}"}} {n}' for o, n in sorted(counters.items.items())),
        "# HELP livebrief_batches_total Batches of items committed.",
        "# TYPE livebrief_batches_total counter",
        f"livebrief_batches_total {counters.batches}",
        "# HELP livebrief_commit_conflicts_total Commits that found the story index changed by another worker "
        "and decided their batch again.",
        "# TYPE livebrief_commit_conflicts_total counter",
        f"livebrief_commit_conflicts_total {counters.conflicts}",
        "# HELP livebrief_entry_versions_total Entry versions published.",
        "# TYPE livebrief_entry_versions_total counter",
        f"livebrief_entry_versions_total {counters.versions}",
        "# HELP livebrief_webhook_deliveries_total Messages each webhook's receiver accepted.",
        "# TYPE livebrief_webhook_deliveries_total counter",
        *(f'livebrief_webhook_deliveries_total{{webhook="{w}"}} {n}' for w, n in sorted(counters.delivered.items())),
        "# HELP livebrief_webhook_dead_letters_total Messages to each webhook dead-lettered after their last retry, "
        "or past its max_age.",
        "# TYPE livebrief_webhook_dead_letters_total counter",
        *(f'livebrief_webhook_dead_letters_total{{webhook="{w}"}} {n}'
          for w, n in sorted(counters.dead_letters.items())),
        "# HELP livebrief_webhook_dead_letters_dropped_total Dead letters to each webhook dropped, oldest first, "
        "to keep the list within worker.dead_letters_max.",
        "# TYPE livebrief_webhook_dead_letters_dropped_total counter",
        *(f'livebrief_webhook_dead_letters_dropped_total{{webhook="{w}"}} {n}'
          for w, n in sorted(counters.dead_letters_dropped.items())),
        "# HELP livebrief_webhook_deferrals_total Times each webhook's deliveries were put off because its receiver "
        "asked to wait (429, or 503 with Retry-After).",
        "# TYPE livebrief_webhook_deferrals_total counter",
        *(f'livebrief_webhook_deferrals_total{{webhook="{w}"}} {n}' for w, n in sorted(counters.deferred.items())),
        "# HELP livebrief_webhook_parked_jobs Delivery jobs of each webhook waiting for one of its lanes: a "
        "receiver that does not keep up.",
        "# TYPE livebrief_webhook_parked_jobs gauge",
        *(f'livebrief_webhook_parked_jobs{{webhook="{w}"}} {n}' for w, n in sorted((parked or {}).items())),
        "# HELP livebrief_dead_letters Deliveries waiting in the dead-letter list for a replay.",
        "# TYPE livebrief_dead_letters gauge",
        f"livebrief_dead_letters {dead_letters}",
    ]
    return "\n".join(lines) + "\n"


def metrics_text(client: redis.Redis, config: Config) -> str:
    """What ``livebrief metrics`` prints and its exporter serves, read from Redis now."""
    keys = Keys(config.prefix)
    with client.pipeline(transaction=False) as pipe:  # one round trip for every webhook
        for webhook in config.webhooks:
            pipe.zcard(keys.webhook_parked(webhook.id))
        parked = dict(zip((w.id for w in config.webhooks), cast(list[int], pipe.execute()), strict=True))
    return prometheus(feed_statuses(client, config), {q.name: q.count for q in queues(client, keys)},
                      int(cast(int, client.xlen(keys.entries_stream))), read_counters(client, keys),
                      int(cast(int, client.llen(keys.deadletter))), parked)
