"""Prompt recovery of jobs whose worker died.

RQ notices a killed work-horse at once, but when a whole worker process dies (SIGKILL, OOM, a lost
machine) its job stays in the started registry until its heartbeat runs out (about 90 s), and only then
is it retried. ``recover_abandoned`` closes that gap: a started job whose worker is provably dead is
handed to RQ's own retry now. "Provably dead": the worker's registration key is gone, or the worker ran
on this host and its process no longer exists. A worker on another host that is merely slow is left
alone; RQ's heartbeat-based cleanup still covers it. Every worker process runs this watchdog; a job is
recovered by the one that claims it (``P:recovering:<job>:<execution>``), once.
"""

from __future__ import annotations

import os
import socket
import traceback
from typing import cast

import redis
import structlog
from rq.exceptions import AbandonedJobError, NoSuchJobError
from rq.executions import Execution
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.timeouts import TimerDeathPenalty
from rq.worker import Worker

from livebrief.keys import Keys
from livebrief.queues import LivebriefQueue

log = structlog.get_logger(__name__)
# Longer than any one recovery takes (a failure callback, a retry).
CLAIM_SECONDS = 60


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worker_is_dead(client: redis.Redis, worker_name: str, hostname: str | None = None) -> bool:
    """True when the named worker has certainly stopped (see the module docstring)."""
    if not worker_name:
        return False
    key = f"{Worker.redis_worker_namespace_prefix}{worker_name}"
    raw = cast(dict[bytes, bytes], client.hgetall(key))
    if not raw:
        return True
    host = raw.get(b"hostname", b"").decode()
    pid = raw.get(b"pid", b"").decode()
    if host == (hostname or socket.gethostname()) and pid.isdigit():
        return not _process_exists(int(pid))
    return False


def _abandoned(client: redis.Redis, registry: StartedJobRegistry, job_id: str,
               execution_id: str) -> tuple[bool, str]:
    """Whether a job listed as started (a moment ago) has no live worker left, and that worker's name."""
    try:
        worker_name = Execution.fetch(execution_id, job_id, client).worker_name
    except (ValueError, KeyError, TypeError):
        # No execution record. RQ deletes it together with the registry entry when the job ends, so the
        # job may simply have finished since the registry was listed: only an entry still there has lost
        # its record (expired with its heartbeat) and nothing claims the job any more.
        return client.zscore(registry.key, f"{job_id}:{execution_id}") is not None, ""
    return (not worker_name or worker_is_dead(client, worker_name)), worker_name


def recover_abandoned(client: redis.Redis, keys: Keys, queue_names: list[str]) -> int:
    """Retry (or fail, when out of retries) every started job of these queues whose worker is dead."""
    recovered = 0
    for name in queue_names:
        queue = LivebriefQueue(name, connection=client)
        registry = StartedJobRegistry(queue=queue)
        for job_id, execution_id in registry.get_job_and_execution_ids(cleanup=False):
            member = f"{job_id}:{execution_id}"  # the job's entry in the registry
            abandoned, worker_name = _abandoned(client, registry, job_id, execution_id)
            if not abandoned:
                continue
            # Every worker runs a watchdog: only the one that claims the job recovers it, else it would be
            # queued (and, out of retries, dead-lettered) twice. The claim is left to expire, so a watchdog
            # that listed the job before its recovery cannot claim it again meanwhile; after that the
            # registry entry is gone, which the second check sees.
            if not client.set(keys.recovery_claim(job_id, execution_id), worker_name or "-", nx=True,
                              ex=CLAIM_SECONDS):
                continue
            if client.zscore(registry.key, member) is None:
                continue
            try:
                job = Job.fetch(job_id, connection=client)
            except NoSuchJobError:
                client.zrem(registry.key, member)
                continue
            try:
                # A timer, not SIGALRM: the watchdog calls this from its own thread, where signals cannot be set.
                job.execute_failure_callback(
                    TimerDeathPenalty, AbandonedJobError, AbandonedJobError(), traceback.extract_stack()
                )
            except Exception:  # the callback's failure must not leave the job stuck in the registry
                log.exception("abandoned_job_callback_failed", job=job_id)
            with client.pipeline() as pipe:
                pipe.zrem(registry.key, member)
                if job.retries_left:
                    job.retry(queue, pipe)
                else:
                    job.set_status("failed", pipeline=pipe)  # type: ignore[arg-type]
                    job._handle_failure("worker died while running the job", pipe, worker_name="")
                pipe.execute()
            recovered += 1
            log.warning("abandoned_job_recovered", job=job_id, worker=worker_name or "(unknown)",
                        retried=bool(job.retries_left))
    return recovered + _requeue_stuck_in_dequeue(client, keys, queue_names)


def _requeue_stuck_in_dequeue(client: redis.Redis, keys: Keys, queue_names: list[str]) -> int:
    """Queue again every job a worker took from these queues but never started: killed between RQ's two steps
    (the job moved to the queue's intermediate list, then listed as started). Found by QA with SIGKILLs;
    RQ's own cleanup comes with its maintenance, every 10 minutes or more, and then counts a failure,
    though nothing of the job ran. RQ's rule for "stuck" is kept: still there a minute after first seen."""
    requeued = 0
    for name in queue_names:
        queue = LivebriefQueue(name, connection=client)
        intermediate = IntermediateQueue(queue.key, connection=client)
        for job_id in intermediate.get_job_ids():
            if job_id in queue.started_job_registry or intermediate.set_first_seen(job_id):
                continue
            if not intermediate.should_be_cleaned_up(job_id):
                continue
            try:
                job = Job.fetch(job_id, connection=client)
            except NoSuchJobError:
                intermediate.remove(job_id)
                continue
            status = job.get_status(refresh=False)
            if status != JobStatus.QUEUED:
                # Not stuck: a copy a killed worker left in the list, of a job recovered and run since (found
                # by QA: such a copy of a finished job was queued again and ran twice). A running job is left
                # alone; any other's copy is removed.
                if status != JobStatus.STARTED:
                    client.lrem(intermediate.key, 1, job_id)
                    log.info("stale_dequeued_copy_removed", job=job_id, queue=name, status=str(status))
                continue
            first_seen = intermediate.get_first_seen(job_id)
            if first_seen is not None and job.enqueued_at is not None and first_seen < job.enqueued_at:
                # Seen in the list before this queuing of the job: an earlier take of the same id (a retry
                # queues it again), which RQ's mark (kept a day) outlives. Taken just now: seen from now on.
                client.delete(intermediate.get_first_seen_key(job_id))
                intermediate.set_first_seen(job_id)
                continue
            if not client.set(keys.recovery_claim(job_id, "dequeued"), "-", nx=True, ex=CLAIM_SECONDS):
                continue
            with client.pipeline() as pipe:  # out of the list and into the queue together, or not at all
                pipe.watch(intermediate.key)
                if pipe.lpos(intermediate.key, job_id) is None:  # started after all, just now
                    pipe.unwatch()
                    continue
                queued = pipe.lpos(queue.key, job_id) is not None  # queued again meanwhile (a retry): a stale copy
                pipe.multi()
                pipe.lrem(intermediate.key, 1, job_id)
                if not queued:
                    queue.enqueue_job(job, pipeline=pipe, at_front=True)
                try:
                    pipe.execute()
                except redis.WatchError:  # a worker took or started another job meanwhile: next round
                    client.delete(keys.recovery_claim(job_id, "dequeued"))
                    continue
            if queued:
                log.info("stale_dequeued_copy_removed", job=job_id, queue=name, status="queued")
                continue
            requeued += 1
            log.warning("dequeued_job_requeued", job=job_id, queue=name)
    return requeued
