"""RQ entry points. The poller enqueues ``worker.jobs.process_batch`` by name, one job per ``worker.job_items``
items of a fetch (``livebrief/ingest.py``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import redis
import structlog
from rq import get_current_job

from livebrief.ingest import enqueue_batches
from livebrief.models import Item
from livebrief.queues import LivebriefQueue
from worker.notify import DeliveryEnqueuer
from worker.prepare import prepare
from worker.publish import commit_batch
from worker.runtime import Runtime, current
from worker.stories import BatchPlan

log = structlog.get_logger(__name__)


def hold_embargoed(client: redis.Redis, runtime: Runtime, items: list[Item], now: datetime) -> list[Item]:
    """Schedule items under embargo to be processed when it ends; return the others.

    Scheduled before the batch commits: a crash in between only makes the later run find them seen.
    """
    held: dict[datetime, list[Item]] = {}
    for item in items:
        if item.embargoed is not None and item.embargoed > now and not item.withdrawn:
            held.setdefault(item.embargoed, []).append(item)
    if held:
        queue = LivebriefQueue.ingest(runtime.keys, client)
        for until, batch in held.items():
            enqueue_batches(queue, batch, runtime.config.worker, label="embargo", at=until)
            log.info("embargo_held", items=len(batch), until=until.isoformat())
    held_ids = {item.id for batch in held.values() for item in batch}
    return [item for item in items if item.id not in held_ids]


def run_batch(client: redis.Redis, runtime: Runtime, items: list[Item], now: datetime | None = None) -> BatchPlan:
    """Dedupe, classify, condense and publish a batch: pure stages first, then one atomic commit."""
    settings = runtime.config.worker
    now = now or datetime.now(UTC)
    items = hold_embargoed(client, runtime, items, now)
    prepared = [prepare(item, runtime.topics, settings) for item in items]
    enqueuer = (DeliveryEnqueuer(client, runtime.keys, runtime.config.webhooks, settings.finished_job_ttl)
                if runtime.config.webhooks else None)
    return commit_batch(client, runtime.keys, prepared, settings, enqueuer, now)


def process_batch(payload: list[dict[str, Any]]) -> dict[str, int]:
    """RQ job: one fetched batch of items (``Item`` JSON dicts). Safe to retry: see ``worker/publish.py``."""
    job = get_current_job()
    if job is None:
        raise RuntimeError("process_batch runs inside an RQ worker")
    items = [Item.model_validate(raw) for raw in payload]
    structlog.contextvars.bind_contextvars(job=job.id)
    try:
        plan = run_batch(job.connection, current(), items)
    finally:
        structlog.contextvars.unbind_contextvars("job")
    counts: dict[str, int] = {}
    for outcome in plan.outcomes.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    counts["published"] = len(plan.published)
    return counts
