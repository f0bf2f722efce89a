"""The atomic step: mark seen + update the story index + XADD + PUBLISH + enqueue webhook deliveries.

Optimistic concurrency (WATCH/MULTI/EXEC): the transaction watches every index key the batch read, so
two workers racing on copies of one story cannot both create it: the loser's EXEC fails, it re-reads
the index and joins the winner's story. Because "seen" and "published" are written in the same EXEC,
a batch retried after a crash publishes only what it had not published, and every delivery job is
queued in that same EXEC, so none is lost or doubled either.

Round trips per batch: WATCH + MGET (index), WATCH + MGET (candidate stories), and MULTI..EXEC holding
one EVAL that does every write (see ``_WRITE_LUA``) plus the delivery jobs.
"""

from __future__ import annotations

import random
import time
import zlib
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
# Called inside MULTI with each published entry and its JSON; returns the number of delivery jobs queued.
EnqueueDeliveries = Callable[[list[tuple[Entry, str]], "redis.client.Pipeline"], int]


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


# The write half of the atomic step, as one command inside MULTI (one reply to parse instead of ~25 per
# item). ARGV, positional and binary-safe:
#   n, then n x (key, value, ttl)            SET key value EX ttl   (seen marks, index, story records)
#   stream, maxlen, m, then m x body         XADD stream MAXLEN ~ maxlen * entry body
#   c, then c x (channel, body number)       PUBLISH channel body   (body number: 1..m)
#   f, then f x (stats key, first, lag)      freshness counters; first is 0/1, lag "" when unknown
_WRITE_LUA = """
local i = 1
local function take() local v = ARGV[i]; i = i + 1; return v end
for _ = 1, tonumber(take()) do
  local key, value, ttl = take(), take(), take()
  redis.call('SET', key, value, 'EX', ttl)
end
local stream, maxlen = take(), take()
local bodies = {}
for n = 1, tonumber(take()) do
  bodies[n] = take()
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'entry', bodies[n])
end
for _ = 1, tonumber(take()) do
  local channel, n = take(), tonumber(take())
  redis.call('PUBLISH', channel, bodies[n])
end
for _ = 1, tonumber(take()) do
  local key, first, lag = take(), take(), take()
  redis.call('HINCRBY', key, 'entries', 1)
  if first == '1' then redis.call('HINCRBY', key, 'first', 1) end
  if lag ~= '' then
    redis.call('HINCRBYFLOAT', key, 'lag_sum', lag)
    redis.call('HINCRBY', key, 'lag_count', 1)
    redis.call('HSET', key, 'last_lag', lag)
  end
end
return #bodies
"""


def _write_args(plan: BatchPlan, bodies: list[str], keys: Keys, settings: WorkerConfig) -> list[str | bytes | int]:
    """ARGV of ``_WRITE_LUA``; ``bodies`` are the published entries' JSON, in ``plan.published`` order."""
    seen_ttl, story_ttl = settings.seen_ttl, settings.story_retention
    sets: list[str | bytes | int] = []
    for item_id, mark in plan.seen.items():
        sets += [keys.seen(item_id), mark.encode(), seen_ttl]
    for (kind, digest), story_id in plan.exact.items():
        sets += [keys.url(digest) if kind == "url" else keys.guid(digest), story_id, seen_ttl]
    for (band, bucket), story_id in plan.lsh.items():
        sets += [keys.lsh(band, bucket), story_id, story_ttl]
    for term, ids in plan.terms.items():
        sets += [keys.token(term), " ".join(ids), story_ttl]
    for story_id, record in (*plan.stored.items(), *plan.published.items()):
        sets += [keys.story(story_id), encode_story(record), story_ttl]
    publish: list[str | bytes | int] = []
    for n, record in enumerate(plan.published.values(), 1):
        for channel in (keys.all_channel, *(keys.topic_channel(t) for t in record.entry.topics)):
            publish += [channel, n]
    stats: list[str | bytes | int] = []
    for feed_id, lag, first in plan.freshness:
        stats += [keys.feed_stats(feed_id), int(first), f"{lag:.3f}" if lag is not None and lag >= 0 else ""]
    return [len(sets) // 3, *sets, keys.entries_stream, settings.stream_maxlen, len(bodies), *bodies,
            len(publish) // 2, *publish, len(stats) // 3, *stats]


def encode_story(record: StoryRecord) -> bytes:
    """Story records are the index's biggest values; zlib halves them for a few microseconds."""
    return zlib.compress(record.model_dump_json().encode(), 1)


def decode_story(raw: bytes) -> StoryRecord:
    return StoryRecord.model_validate_json(zlib.decompress(raw))


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
                            view.stories[story_id] = decode_story(raw)
                plan = plan_batch(prepared, view, settings, now or datetime.now(UTC))
                # Each entry is serialised once, for the stream, the channels and the webhook jobs alike.
                bodies = [record.entry.model_dump_json() for record in plan.published.values()]
                pipe.multi()
                # EVAL, not EVALSHA: a script missing from Redis's cache (after a restart) would fail at EXEC,
                # after the other queued commands had run; the script text is small next to its arguments.
                pipe.eval(_WRITE_LUA, 0, *cast(list[str], _write_args(plan, bodies, keys, settings)))
                deliveries = (
                    enqueue_deliveries(list(zip(plan.entries, bodies, strict=True)), pipe) if enqueue_deliveries else 0
                )
                pipe.execute()
            except redis.WatchError:
                # Another worker changed a key we read: re-read and decide again.
                time.sleep(random.uniform(0, min(0.05 * attempt, 0.5)))
                continue
        log.info("batch_committed", items=len(prepared), published=len(plan.published),
                 deliveries=deliveries, attempts=attempt)
        return plan
    raise BatchConflictError(f"batch not committed after {MAX_ATTEMPTS} conflicting attempts; RQ retries it")
