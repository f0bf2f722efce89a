"""Putting items on the ingest queue: the one way pollers, push receivers and embargo holds do it.

Items go to RQ as jobs of at most ``worker.job_items`` items each (25 by default), named by the dotted path
of the worker's entry point so that ``feeds`` never imports ``worker``. The poller queues several fetches
at once when they finish together (``enqueue_fetches``), so that small fetches share jobs.

Why a fetch is cut into jobs of ~25 items: a job's entries are published together when it commits, and
one worker does a job alone. A 50-item fetch as one job kept its last item waiting ~50 ms on one core
while the other worker could idle; as two jobs, both workers take a half. In alternating runs of
``bench_latency.py --quick --rates 1000`` the p99 from fetch to stream was 79-161 ms with one job per
fetch and 67-93 ms with jobs of 25.

Why not behind a backlog (``BACKLOG_JOBS`` jobs waiting; the fetch then goes in jobs of
``worker.busy_job_items``, 100 by default): a fetch waits its turn anyway, so halves save it little, and a
job has a fixed cost, ~1.8 ms of worker CPU for RQ's 15-odd round trips on a 2-core VM plus a commit's
three, ~7% of 25 items' work. Two warm workers draining 120 feeds queued at once (``bench_pipeline.py``'s
(e) set-up) moved 7-20% more items a second in five alternating pairs of runs (median +13%). From a single
waiting job on (tried first), bigger jobs also formed in the brief queues of a steady 1,000 items/s and
raised the stream's p99 (``bench_latency.py --quick --rates 1000``: 209-257 ms against 84-142 ms in three
pairs); from eight, none formed there in twelve runs (at most 7 jobs waiting; p99 78-115 ms either way).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import cast

import redis
from rq import Queue, Retry

from livebrief.config import Config, WorkerConfig
from livebrief.keys import Keys, job_id_part
from livebrief.models import Item
from livebrief.queues import LivebriefQueue

INGEST_JOB = "worker.jobs.process_batch"
# Jobs waiting in the ingest queue from which a fetch is queued in jobs of ``worker.busy_job_items``: a
# backlog of ~0.2 s of work on two workers. A job or two waiting is only the workers busy for a moment, and
# a fetch cut smaller is then shared by the next two free workers (see the module docstring).
BACKLOG_JOBS = 8
# Immediately once (a killed work-horse), then backing off for a Redis or worker outage.
RETRY_INTERVALS = [0, 5, 30, 120, 600]


def enqueue_batches(
    queue: Queue,
    items: list[Item],
    settings: WorkerConfig,
    *,
    label: str,
    pipeline: redis.client.Pipeline | None = None,
    at: datetime | None = None,
    size: int | None = None,
) -> int:
    """Queue ``items`` as ingest jobs of ``size`` items (``settings.job_items`` by default), now or at ``at``;
    returns the number of jobs."""
    jobs = 0
    size = size or settings.job_items
    for start in range(0, len(items), size):
        payload = [item.model_dump(mode="json") for item in items[start : start + size]]
        options = {
            "job_id": f"ingest-{job_id_part(label)}-{uuid.uuid4().hex[:12]}",
            # What `rq info` shows. RQ's default is the call's repr, which it truncates but only after
            # building it: ~130 us per job of 25 items, 5 us per item of the poller's CPU.
            "description": f"ingest {label}: {len(payload)} items",
            "job_timeout": settings.job_timeout,
            "result_ttl": settings.finished_job_ttl,
            "failure_ttl": 7 * 86400,
            "retry": Retry(max=max(1, settings.retries), interval=RETRY_INTERVALS),
            "pipeline": pipeline,
        }
        if at is None:
            queue.enqueue(INGEST_JOB, payload, **options)
        else:
            queue.enqueue_at(at, INGEST_JOB, payload, **options)
        jobs += 1
    return jobs


def enqueue_new_items(client: redis.Redis, config: Config, feed_id: str, items: list[Item], now: float) -> int:
    """Queue the items this feed has not shown before (or whose content changed); returns how many.

    The jobs and the "shown" marks are written in one MULTI, so a crash leaves both or neither; the
    worker's own atomic seen+publish step makes a re-queued item harmless anyway.
    """
    return enqueue_fetches(client, config, [(feed_id, items)], now)[0]


def enqueue_fetches(client: redis.Redis, config: Config, fetches: Sequence[tuple[str, list[Item]]],
                    now: float) -> list[int]:
    """``enqueue_new_items`` for several fetches at once (feed id, its items), in one MULTI: their new items
    share jobs, in the order given. Returns how many each fetch queued.

    Why share: most fetches of a desk's feeds bring one or two new items, and a job has a fixed cost (the
    module docstring: ~1.8 ms of worker CPU, and a commit's turn and round trips) that a job of 25 items
    spreads thin. The poller gathers the fetches that finish while its last enqueue is in flight
    (``feeds/poller.py``, ``_Enqueuer``).
    """
    if not any(items for _, items in fetches):
        return [0] * len(fetches)
    keys = Keys(config.prefix)
    queue = LivebriefQueue.ingest(keys, client)
    members = [[f"{item.id}:{item.content_hash}" for item in items] for _, items in fetches]
    with client.pipeline(transaction=False) as reader:
        for (feed_id, _), names in zip(fetches, members, strict=True):
            if names:
                reader.zmscore(keys.feed_items(feed_id), names)
        reader.llen(queue.key)
        *found, waiting = cast(list[object], reader.execute())
    scores = iter(cast(list[list[float | None]], found))
    fresh = [[item for item, score in zip(items, next(scores), strict=True) if score is None] if items else []
             for _, items in fetches]
    settings = config.worker
    size = settings.job_items
    if cast(int, waiting) >= BACKLOG_JOBS:
        size = max(size, settings.busy_job_items)
    feeds = [feed_id for (feed_id, _), new in zip(fetches, fresh, strict=True) if new]
    label = feeds[0] if len(feeds) == 1 else f"{len(feeds)}-feeds"
    # Refresh every current member, so items still in the feed are not forgotten and re-queued. One that
    # left the feed is kept for the story retention only: should it come back later, the worker's long-term
    # marks (worker/marks.py) still know it, and a feed's set stays small enough for Redis to keep it packed
    # (a listpack, up to 128 members by default).
    horizon = min(settings.seen_ttl, settings.story_retention)
    with client.pipeline() as pipe:
        pipe.multi()
        enqueue_batches(queue, [item for new in fresh for item in new], settings, label=label, pipeline=pipe,
                        size=size)
        for (feed_id, _), names in zip(fetches, members, strict=True):
            if names:
                seen_key = keys.feed_items(feed_id)
                pipe.zadd(seen_key, dict.fromkeys(names, now))
                pipe.zremrangebyscore(seen_key, "-inf", now - horizon)
                pipe.expire(seen_key, horizon)
        pipe.execute()
    return [len(new) for new in fresh]
