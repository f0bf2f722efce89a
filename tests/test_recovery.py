"""The recovery watchdog retries only jobs nothing runs any more (never one that finished meanwhile), once."""

from __future__ import annotations

import redis
from rq import Queue, Retry, SimpleWorker
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job
from rq.registry import StartedJobRegistry

from livebrief.keys import Keys
from livebrief.recovery import _abandoned, recover_abandoned
from tests.helpers import a_minute_on_in_the_intermediate_list

KEYS = Keys("livebrief")


def test_a_job_that_finished_after_the_registry_was_listed_is_not_abandoned(client: redis.Redis) -> None:
    """The watchdog lists the started registry, then looks up each execution. A job that ends in between
    has its execution record and registry entry deleted together; a missing record alone once made the
    watchdog retry finished jobs (and run their failure callbacks) under load."""
    queue = Queue("recovery-test", connection=client)
    job = queue.enqueue(len, "abc")
    SimpleWorker([queue], connection=client).work(burst=True)
    assert job.get_status(refresh=True) == "finished"
    registry = StartedJobRegistry(queue=queue)

    # As listed a moment before the job ended: the entry is gone now, so the job is not abandoned.
    assert _abandoned(client, registry, job.id, "ended-meanwhile") == (False, "")
    assert recover_abandoned(client, KEYS, [queue.name]) == 0
    assert queue.count == 0
    assert job.get_status(refresh=True) == "finished"

    # An entry still listed whose execution record is gone (expired with its heartbeat) is abandoned.
    client.zadd(registry.key, {f"{job.id}:expired": 2**40})
    assert _abandoned(client, registry, job.id, "expired") == (True, "")


def test_a_job_another_watchdog_is_recovering_is_left_to_it(client: redis.Redis) -> None:
    """Every worker process runs a watchdog; two finding the same dead worker's job must not both queue
    it again (a delivery job out of retries would be dead-lettered twice, and replayed twice)."""
    queue = Queue("recovery-test", connection=client)
    job = queue.enqueue(len, "abc", retry=Retry(max=3))
    queue.remove(job.id)
    registry = StartedJobRegistry(queue=queue)
    client.zadd(registry.key, {f"{job.id}:dead": 2**40})  # started by a worker that is gone
    client.set(KEYS.recovery_claim(job.id, "dead"), "-", ex=60)  # another watchdog got there first

    assert recover_abandoned(client, KEYS, [queue.name]) == 0
    assert queue.count == 0
    assert registry.get_job_ids(cleanup=False) == [job.id]

    client.delete(KEYS.recovery_claim(job.id, "dead"))  # that watchdog died before it finished
    assert recover_abandoned(client, KEYS, [queue.name]) == 1
    assert queue.get_job_ids() == [job.id]
    assert recover_abandoned(client, KEYS, [queue.name]) == 0  # recovered once, even when asked again
    assert queue.get_job_ids() == [job.id]


def test_a_job_taken_by_a_worker_killed_before_it_started_is_queued_again_a_minute_on(client: redis.Redis) -> None:
    """A worker on one queue moves the job it takes to the queue's intermediate list, then lists it as started:
    killed in between (found by QA with SIGKILLs), the job was in no queue and no registry until RQ's own
    maintenance, ten minutes or more later, which then counted a failure though nothing of the job ran."""
    queue = Queue("recovery-test", connection=client)
    job = queue.enqueue(len, "abc")
    intermediate = IntermediateQueue(queue.key, connection=client)
    assert client.lmove(queue.key, intermediate.key) == job.id.encode()  # the dequeue, as RQ does it

    assert recover_abandoned(client, KEYS, [queue.name]) == 0  # first seen now: a worker may be starting it
    assert queue.count == 0
    a_minute_on_in_the_intermediate_list(client, queue.key, job.id)  # still there

    assert recover_abandoned(client, KEYS, [queue.name]) == 1
    assert queue.get_job_ids() == [job.id] and intermediate.get_job_ids() == []
    SimpleWorker([queue], connection=client).work(burst=True)
    assert job.get_status(refresh=True) == "finished" and job.return_value() == 3


def test_a_job_queued_again_is_not_taken_for_stuck_by_the_mark_of_an_earlier_take(client: redis.Redis) -> None:
    """RQ marks when it first sees a job in a queue's intermediate list and keeps the mark a day. A job taken,
    seen there, then started, and queued again under its id (a retry) was, when taken again, recovered at
    once as stuck while its worker was starting it: it could have run twice (QA, reading the code)."""
    queue = Queue("recovery-test", connection=client)
    job = queue.enqueue(len, "abc")
    intermediate = IntermediateQueue(queue.key, connection=client)
    client.lmove(queue.key, intermediate.key)  # the first take
    assert recover_abandoned(client, KEYS, [queue.name]) == 0  # first seen now
    a_minute_on_in_the_intermediate_list(client, queue.key, job.id)
    client.lrem(intermediate.key, 1, job.id)  # that take started the job, which ran
    queue.enqueue_job(Job.fetch(job.id, connection=client))  # queued again, as a retry does
    assert client.lmove(queue.key, intermediate.key) == job.id.encode()  # taken again, about to start

    assert recover_abandoned(client, KEYS, [queue.name]) == 0
    assert intermediate.get_job_ids() == [job.id] and queue.count == 0

    a_minute_on_in_the_intermediate_list(client, queue.key, job.id)  # this take stuck, a minute on
    assert recover_abandoned(client, KEYS, [queue.name]) == 1
    assert queue.get_job_ids() == [job.id] and intermediate.get_job_ids() == []



def test_a_copy_left_in_the_intermediate_list_of_a_job_run_since_is_removed_not_queued(client: redis.Redis) -> None:
    """Found by QA under repeated SIGKILLs: a worker killed while running a job left its copy in the list;
    the job was recovered and finished, and a minute on the copy was queued again, so the job ran twice."""
    queue = Queue("recovery-test", connection=client)
    job = queue.enqueue(len, "abc")
    intermediate = IntermediateQueue(queue.key, connection=client)
    client.lmove(queue.key, intermediate.key)  # taken by the worker that is then killed
    queue.enqueue_job(Job.fetch(job.id, connection=client))  # recovered: queued again under its id
    SimpleWorker([queue], connection=client).work(burst=True)  # and run (RQ's move leaves the old copy)
    assert job.get_status(refresh=True) == "finished"
    assert intermediate.get_job_ids() == [job.id]

    assert recover_abandoned(client, KEYS, [queue.name]) == 0  # first seen now
    a_minute_on_in_the_intermediate_list(client, queue.key, job.id)
    assert recover_abandoned(client, KEYS, [queue.name]) == 0

    assert queue.count == 0 and intermediate.get_job_ids() == []
    assert job.get_status(refresh=True) == "finished"


def test_a_stale_copy_of_a_job_queued_again_is_removed_without_queuing_it_twice(client: redis.Redis) -> None:
    queue = Queue("recovery-test", connection=client)
    job = queue.enqueue(len, "abc")
    intermediate = IntermediateQueue(queue.key, connection=client)
    client.lmove(queue.key, intermediate.key)  # taken by a worker that is then killed
    assert recover_abandoned(client, KEYS, [queue.name]) == 0  # first seen now
    a_minute_on_in_the_intermediate_list(client, queue.key, job.id)
    client.lpush(queue.key, job.id)  # queued again meanwhile, by a retry

    assert recover_abandoned(client, KEYS, [queue.name]) == 0

    assert queue.get_job_ids() == [job.id] and intermediate.get_job_ids() == []
