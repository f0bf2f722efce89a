"""Starting RQ workers for livebrief's queues (ingest first, then deliveries), with the scheduler on so
retries with a delay and abandoned-job recovery run."""

from __future__ import annotations

import redis
from rq import Queue, SimpleWorker, Worker

from livebrief.config import Config
from livebrief.keys import Keys


def queues(client: redis.Redis, keys: Keys) -> list[Queue]:
    return [Queue(keys.ingest_queue, connection=client), Queue(keys.delivery_queue, connection=client)]


def run_worker(config: Config, client: redis.Redis, *, burst: bool = False, simple: bool = False,
               name: str | None = None) -> bool:
    """Run one RQ worker until stopped (or, with ``burst``, until the queues are empty)."""
    from worker.runtime import configure

    configure(config)  # compile topics once, before forking work-horses
    worker_class = SimpleWorker if simple else Worker
    worker = worker_class(queues(client, Keys(config.prefix)), connection=client, name=name)
    return bool(worker.work(burst=burst, with_scheduler=True, logging_level="WARNING"))


def pending_jobs(client: redis.Redis, keys: Keys) -> int:
    return sum(q.count for q in queues(client, keys))
