"""The recovery watchdog retries only jobs nothing runs any more (never one that finished meanwhile), once."""

from __future__ import annotations

import time

import redis
from rq import Queue, Retry, SimpleWorker
from rq.intermediate_queue import IntermediateQueue
from rq.registry import StartedJobRegistry

from livebrief.keys import Keys
from livebrief.recovery import _abandoned, recover_abandoned

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
    client.set(intermediate.get_first_seen_key(job.id), time.time() - 61)  # a minute on, still there

    assert recover_abandoned(client, KEYS, [queue.name]) == 1
    assert queue.get_job_ids() == [job.id] and intermediate.get_job_ids() == []
    SimpleWorker([queue], connection=client).work(burst=True)
    assert job.get_status(refresh=True) == "finished" and job.return_value() == 3
