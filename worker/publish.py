"""The atomic step: mark seen + update the story index + XADD + PUBLISH + enqueue webhook deliveries.

Optimistic concurrency (WATCH/MULTI/EXEC): the transaction watches every index key the batch read, so
two workers racing on copies of one story cannot both create it: the loser's EXEC fails, it re-reads
the index and joins the winner's story. Because "seen" and "published" are written in the same EXEC,
a batch retried after a crash publishes only what it had not published, and every delivery job is
queued in that same EXEC, so none is lost or doubled either.

Round trips per batch: WATCH + MGET (index), WATCH + MGET (candidate stories), MULTI..EXEC.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import cast

import redis
import structlog

from livebrief.config import WorkerConfig
from livebrief.errors import BatchConflictError
from livebrief.keys import Keys
from livebrief.models import Entry
from worker.dedupe import index_terms, lsh_buckets
from worker.prepare import Prepared
from worker.stories import BatchPlan, IndexView, SeenMark, StoryRecord, candidate_story_ids, plan_batch

log = structlog.get_logger(__name__)

MAX_ATTEMPTS = 50
EnqueueDeliveries = Callable[[list[Entry], "redis.client.Pipeline"], int]


def _decode(value: bytes | None) -> str | None:
    return value.decode() if value is not None else None


def _index_keys(prepared: list[Prepared], keys: Keys) -> tuple[list[str], list[tuple[str, object]]]:
    """Every index key the batch must read, and what each one stands for."""
    names: list[str] = []
    meaning: list[tuple[str, object]] = []

    def add(name: str, kind: str, ref: object) -> None:
        names.append(name)
        meaning.append((kind, ref))

    for p in prepared:
        add(keys.seen(p.item.id), "seen", p.item.id)
        for kind, digest in p.exact:
            add(keys.url(digest) if kind == "url" else keys.guid(digest), "exact", (kind, digest))
        if p.signature is not None:
            for band, bucket in lsh_buckets(p.signature):
                add(keys.lsh(band, bucket), "lsh", (band, bucket))
        for term in index_terms(p.features):
            add(keys.token(term), "term", term)
    # The same key can be named by several items; read it once.
    unique = dict(zip(names, meaning, strict=True))
    return list(unique), list(unique.values())


def _view(values: list[bytes | None], meaning: list[tuple[str, object]]) -> IndexView:
    view = IndexView()
    for raw, (kind, ref) in zip(values, meaning, strict=True):
        value = _decode(raw)
        if value is None:
            continue
        if kind == "seen":
            view.seen[ref] = SeenMark.decode(value)  # type: ignore[index]
        elif kind == "exact":
            view.exact[ref] = value  # type: ignore[index]
        elif kind == "lsh":
            view.lsh[ref] = value  # type: ignore[index]
        else:
            view.terms[ref] = value.split()  # type: ignore[index]
    return view


def _write(pipe: redis.client.Pipeline, plan: BatchPlan, keys: Keys, settings: WorkerConfig) -> None:
    seen_ttl, story_ttl = settings.seen_ttl, settings.story_retention
    for item_id, mark in plan.seen.items():
        pipe.set(keys.seen(item_id), mark.encode(), ex=seen_ttl)
    for (kind, digest), story_id in plan.exact.items():
        pipe.set(keys.url(digest) if kind == "url" else keys.guid(digest), story_id, ex=seen_ttl)
    for (band, bucket), story_id in plan.lsh.items():
        pipe.set(keys.lsh(band, bucket), story_id, ex=story_ttl)
    for term, ids in plan.terms.items():
        pipe.set(keys.token(term), " ".join(ids), ex=story_ttl)
    for feed_id, lag, first in plan.freshness:
        stats = keys.feed_stats(feed_id)
        pipe.hincrby(stats, "entries", 1)
        if first:
            pipe.hincrby(stats, "first", 1)
        if lag is not None and lag >= 0:
            pipe.hincrbyfloat(stats, "lag_sum", lag)
            pipe.hincrby(stats, "lag_count", 1)
            pipe.hset(stats, "last_lag", str(round(lag, 3)))
    for story_id, record in plan.stored.items():
        pipe.set(keys.story(story_id), record.model_dump_json(), ex=story_ttl)
    for story_id, record in plan.published.items():
        pipe.set(keys.story(story_id), record.model_dump_json(), ex=story_ttl)
        body = record.entry.model_dump_json()
        pipe.xadd(keys.entries_stream, {"entry": body}, maxlen=settings.stream_maxlen, approximate=True)
        pipe.publish(keys.all_channel, body)
        for topic in record.entry.topics:
            pipe.publish(keys.topic_channel(topic), body)


def commit_batch(
    client: redis.Redis,
    keys: Keys,
    prepared: list[Prepared],
    settings: WorkerConfig,
    enqueue_deliveries: EnqueueDeliveries | None = None,
    now: datetime | None = None,
) -> BatchPlan:
    """Decide and publish a batch atomically; retried on write conflicts with other workers."""
    if not prepared:
        return BatchPlan()
    names, meaning = _index_keys(prepared, keys)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        with client.pipeline() as pipe:
            try:
                pipe.watch(*names)
                view = _view(cast(list[bytes | None], pipe.mget(names)), meaning)
                story_ids = sorted(candidate_story_ids(prepared, view))
                if story_ids:
                    story_keys = [keys.story(s) for s in story_ids]
                    pipe.watch(*story_keys)
                    for story_id, raw in zip(story_ids, cast(list[bytes | None], pipe.mget(story_keys)), strict=True):
                        if raw is not None:
                            view.stories[story_id] = StoryRecord.model_validate_json(raw)
                plan = plan_batch(prepared, view, settings, now or datetime.now(UTC))
                pipe.multi()
                _write(pipe, plan, keys, settings)
                deliveries = enqueue_deliveries(plan.entries, pipe) if enqueue_deliveries else 0
                pipe.execute()
            except redis.WatchError:
                # Another worker changed a key we read: re-read and decide again.
                time.sleep(random.uniform(0, min(0.05 * attempt, 0.5)))
                continue
        log.info("batch_committed", items=len(prepared), published=len(plan.published),
                 deliveries=deliveries, attempts=attempt)
        return plan
    raise BatchConflictError(f"batch not committed after {MAX_ATTEMPTS} conflicting attempts; RQ retries it")
