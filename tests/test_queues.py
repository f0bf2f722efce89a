"""A worker on several queues (``livebrief work``'s default) takes jobs as RQ does from one queue: into the
queue's intermediate list, where recovery finds a job whose worker died before starting it; and it wakes
for a job pushed while it waits."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from rq import Queue
from rq.exceptions import DequeueTimeout
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job
from rq.scheduler import RQScheduler

import livebrief.queues
from livebrief.keys import Keys, queue_doorbell
from livebrief.queues import LivebriefQueue
from livebrief.recovery import recover_abandoned
from livebrief.workers import FreezingWorker
from tests.helpers import a_minute_on_in_the_intermediate_list

KEYS = Keys("livebrief")
CALLS = "test:queues:calls"


def _count_call(tag: str) -> str:
    """The job: counts its runs in Redis, so a test sees a job run once, twice or never."""
    from rq import get_current_job

    job = get_current_job()
    assert job is not None
    job.connection.rpush(CALLS, tag)
    return tag


def _two_queues(client: redis.Redis) -> tuple[LivebriefQueue, LivebriefQueue]:
    return LivebriefQueue("q-ingest", connection=client), LivebriefQueue("q-deliveries", connection=client)


def _as_a_minute_ago(client: redis.Redis, queue: Queue, job_id: str) -> None:
    """What recovery would find a minute on: a job still in the intermediate list, first seen then."""
    assert recover_abandoned(client, KEYS, [queue.name]) == 0  # first seen now: its worker may be starting it
    a_minute_on_in_the_intermediate_list(client, queue.key, job_id)


def test_a_job_taken_from_several_queues_waits_in_its_queues_intermediate_list(client: redis.Redis) -> None:
    """RQ pops from several queues with BLPOP: a job taken is then in no list until the worker lists it as
    started, and a worker dying in between lost it for good."""
    ingest, deliveries = _two_queues(client)
    job = deliveries.enqueue(_count_call, "d")

    taken = LivebriefQueue.dequeue_any([ingest, deliveries], None, connection=client)

    assert taken is not None and taken[0].id == job.id and taken[1].name == deliveries.name
    assert IntermediateQueue(deliveries.key, connection=client).get_job_ids() == [job.id]
    assert deliveries.count == 0


def test_a_worker_on_two_queues_dying_before_it_starts_a_job_loses_nothing(client: redis.Redis) -> None:
    """A real RQ worker on both queues dies between taking a job and starting it; recovery queues the job
    again and the next worker runs it, once."""
    ingest, deliveries = _two_queues(client)
    job = ingest.enqueue(_count_call, "i")

    class DiesBeforeStarting(FreezingWorker):
        def execute_job(self, *args: Any, **kwargs: Any) -> None:
            raise SystemExit("killed")  # what a SIGKILL leaves: the job taken, not yet listed as started

    with pytest.raises(SystemExit):
        DiesBeforeStarting([ingest, deliveries], connection=client).work(burst=True)
    assert client.lrange(CALLS, 0, -1) == []
    _as_a_minute_ago(client, ingest, job.id)

    assert recover_abandoned(client, KEYS, [ingest.name, deliveries.name]) == 1
    FreezingWorker([ingest, deliveries], connection=client).work(burst=True)

    assert Job.fetch(job.id, connection=client).get_status() == "finished"
    assert client.lrange(CALLS, 0, -1) == [b"i"]


def test_jobs_are_taken_in_the_order_of_the_queues_given(client: redis.Redis) -> None:
    ingest, deliveries = _two_queues(client)
    first_ingest = ingest.enqueue(_count_call, "i1")
    first_delivery = deliveries.enqueue(_count_call, "d1")

    taken = LivebriefQueue.dequeue_any([ingest, deliveries], None, connection=client)
    assert taken is not None and taken[0].id == first_ingest.id
    taken = LivebriefQueue.dequeue_any([deliveries, ingest], None, connection=client)  # RQ's round robin
    assert taken is not None and taken[0].id == first_delivery.id
    assert LivebriefQueue.dequeue_any([ingest, deliveries], None, connection=client) is None


def test_a_waiting_worker_wakes_for_a_job_pushed_to_any_of_its_queues(
        client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """The doorbell: with the look between waits set longer than the wait, only the ring can wake it."""
    monkeypatch.setattr(livebrief.queues, "WAIT_SLICE", 60.0)
    ingest, deliveries = _two_queues(client)
    pushed: list[str] = []

    def push_later() -> None:
        time.sleep(0.3)
        pushed.append(deliveries.enqueue(_count_call, "d").id)

    pusher = threading.Thread(target=push_later)
    pusher.start()
    try:
        taken = LivebriefQueue.dequeue_any([ingest, deliveries], 10, connection=client)
    finally:
        pusher.join()
    assert taken is not None and taken[0].id == pushed[0]
    assert client.xlen(queue_doorbell(deliveries.key)) == 1  # one entry kept, however many pushes


def test_a_job_pushed_without_a_ring_is_found_at_the_next_look(
        client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """RQ's scheduler queues retries and embargoed batches through RQ's own class, which rings nothing."""
    monkeypatch.setattr(livebrief.queues, "WAIT_SLICE", 0.2)
    ingest, deliveries = _two_queues(client)
    job = Queue(deliveries.name, connection=client).enqueue(_count_call, "d")
    assert not client.exists(queue_doorbell(deliveries.key))

    taken = LivebriefQueue.dequeue_any([ingest, deliveries], 10, connection=client)
    assert taken is not None and taken[0].id == job.id


def test_a_job_rqs_scheduler_queues_rings_the_doorbell(client: redis.Redis) -> None:
    """A webhook retry, a deferred delivery or an embargoed batch comes due: the RQ scheduler of a livebrief
    worker queues it ringing the doorbell, so a waiting worker takes it at once (QA: it was found only at the
    worker's next look, 0.2-0.6 s on)."""
    ingest, deliveries = _two_queues(client)
    job = deliveries.enqueue_at(datetime.now(UTC) - timedelta(seconds=1), _count_call, "d")
    assert not client.exists(queue_doorbell(deliveries.key))  # scheduled, not pushed
    scheduler = RQScheduler([deliveries], connection=client)
    scheduler.prepare_registries([deliveries.name])

    scheduler.enqueue_scheduled_jobs()

    assert deliveries.get_job_ids() == [job.id]
    assert client.xlen(queue_doorbell(deliveries.key)) == 1


def test_a_wait_with_nothing_pushed_ends_in_rqs_dequeue_timeout(
        client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(livebrief.queues, "WAIT_SLICE", 0.2)
    with pytest.raises(DequeueTimeout):
        LivebriefQueue.dequeue_any(list(_two_queues(client)), 1, connection=client)


def test_a_worker_on_two_queues_runs_what_each_holds(client: redis.Redis) -> None:
    ingest, deliveries = _two_queues(client)
    ingest.enqueue(_count_call, "i")
    deliveries.enqueue(_count_call, "d")
    FreezingWorker([ingest, deliveries], connection=client).work(burst=True)
    assert sorted(client.lrange(CALLS, 0, -1)) == [b"d", b"i"]
    assert IntermediateQueue(ingest.key, connection=client).get_job_ids() == []
    assert IntermediateQueue(deliveries.key, connection=client).get_job_ids() == []
