"""Webhook lanes: at most ``concurrency`` delivery jobs of one webhook run at a time; the others wait parked.

Delivery workers serve every webhook. Without a bound, a receiver that answers slowly, or only at the
timeout, had every worker posting to it in turn while the other webhooks' jobs waited behind: QA measured
a fast receiver's entries 128 s late at the median beside slow ones, with six delivery workers. Now:

- A job first takes one of its webhook's lanes (``acquire``). When all are taken it does not wait in a
  worker: ``worker/notify.py`` parks its messages as a job of their own, out of the queue, in the same
  call that finds the lanes taken, so no lane can be freed in between unseen.
- A job that ends hands its lane to the oldest parked job and queues that job at once (``release``).
- A job that has posted for ``worker.delivery_slice`` seconds hands its lane, with the rest of its
  messages, to a new job at the back of the queue (``notify.py``): the jobs of other webhooks queued
  meanwhile run first, even with a single delivery worker.

So a slow receiver holds at most ``concurrency`` workers, and with one lane (the default) its deliveries
keep the order their batches were published in, but for a failed job's retry: its lane goes to the next
job meanwhile.

A running job's lane is leased for as long as the job can take: the slice, one POST (bounded by the
webhook's ``timeout``) and a margin. A worker killed mid-job leaves its lane leased until then, or until
the watchdog runs that job again (same id: it finds the lane still its own). A lane given to a job that
is queued, not yet running (a hand-over), is leased for an hour: a queued job runs, however long the queue
(behind many slow webhooks' jobs, one delivery worker can take longer than a running job's lease, and the
lane went to a later job: QA found the order broken so). However a job ends, early or by an error, it
gives back the lane it holds (``release``). Nothing waits on a hand-over
alone: each worker's watchdog queues a parked job given a lane but never queued (its worker died between
the two steps), and gives a lane free with jobs parked behind it to the oldest of them
(``fill_free_lanes``); and a parked job is also scheduled in RQ an hour on, for a Redis without any
running worker. One that wakes so and finds the lanes still taken parks again in its old place.

Keys (``livebrief/keys.py``): ``P:webhook:<id>:lanes`` (job id -> lease end, ms) and
``P:webhook:<id>:parked`` (job id -> when it parked, ms).
"""

from __future__ import annotations

import time
from typing import cast

import redis
import structlog
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry

from livebrief.config import WebhookConfig
from livebrief.keys import Keys
from livebrief.queues import LivebriefQueue

log = structlog.get_logger(__name__)

LEASE_MARGIN = 10.0  # seconds past slice + timeout: a job's bookkeeping around its POSTs
PARKED_FOR = 3600.0  # seconds after which a parked job runs anyway (the module docstring)
QUEUED_LEASE = 3600.0  # seconds a lane given to a queued job is leased for (the module docstring)

# KEYS: lanes, parked. ARGV: job, now (ms), lease end (ms), concurrency, job to park ('' for none), park
# score. 1: ``job`` holds a lane (it held one already: a watchdog re-run, a hand-over). 0: the lanes are
# taken, and the job to park, if any, is parked. Either way ``job`` is no longer parked: a parked job that
# runs at its scheduled time parks again as a new job.
_ACQUIRE_LUA = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[4]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', KEYS[1], last[2])
  return 1
end
if ARGV[5] ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[6], ARGV[5])
  redis.call('PEXPIRE', KEYS[2], 7 * 86400 * 1000)
end
return 0
"""

# KEYS: lanes, parked. ARGV: job, now (ms), lease end for the next (ms), concurrency, successor ('': the
# oldest parked job). The job that now holds the freed lane, or nil when none does.
_RELEASE_LUA = """
local held = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if held == 0 and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return false
end
local successor = ARGV[5]
if successor == '' then
  local oldest = redis.call('ZPOPMIN', KEYS[2])
  if #oldest == 0 then return false end
  successor = oldest[1]
end
redis.call('ZADD', KEYS[1], ARGV[3], successor)
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
return successor
"""


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _args(*values: object) -> list[str]:
    return [str(v) for v in values]


def _lane_keys(keys: Keys, webhook_id: str) -> tuple[str, str]:
    """KEYS of both scripts: the webhook's lanes and its parked jobs."""
    return keys.webhook_lanes(webhook_id), keys.webhook_parked(webhook_id)


def lease_seconds(webhook: WebhookConfig, delivery_slice: float) -> float:
    """How long a lane is leased to a job (the module docstring)."""
    return delivery_slice + webhook.timeout + LEASE_MARGIN


class Lane:
    """One job's hold on a lane of its webhook."""

    def __init__(self, connection: redis.Redis, keys: Keys, webhook: WebhookConfig, job_id: str,
                 delivery_slice: float) -> None:
        self.connection = connection
        self.webhook = webhook
        self.job_id = job_id
        self.lease = lease_seconds(webhook, delivery_slice)
        self.keys = _lane_keys(keys, webhook.id)
        self.queue = LivebriefQueue.deliveries(keys, connection)

    def acquire(self) -> bool:
        """Take a lane for this job (or keep the one it holds); False when all are taken."""
        now = time.time()
        return self.connection.eval(_ACQUIRE_LUA, 2, *self.keys, *_args(self.job_id, _ms(now),
                                    _ms(now + self.lease), self.webhook.concurrency, "", 0)) == 1

    def park(self, pipe: redis.client.Pipeline, job_id: str, since: float) -> None:
        """On ``pipe``, a MULTI that schedules the job ``job_id``: give that job a lane if one is free (its
        reply is then 1: ``wake`` it), else park it behind the lanes, in its place for ``since`` (when its
        messages were first parked)."""
        now = time.time()
        pipe.eval(_ACQUIRE_LUA, 2, *self.keys, *_args(job_id, _ms(now), _ms(now + QUEUED_LEASE),
                                                       self.webhook.concurrency, job_id, _ms(since)))

    def hand_over(self, pipe: redis.client.Pipeline, successor: str) -> None:
        """On ``pipe``, a MULTI that queues the job ``successor``: give it this job's lane."""
        now = time.time()
        pipe.eval(_RELEASE_LUA, 2, *self.keys, *_args(self.job_id, _ms(now), _ms(now + QUEUED_LEASE),
                                                       self.webhook.concurrency, successor))

    def release(self) -> None:
        """Free the lane this job holds, if any (one handed to it while it was queued included): the oldest
        parked job gets it, or a lane already free, and is queued now."""
        _release(self.connection, self.queue, self.keys, self.job_id, self.webhook)


def _release(connection: redis.Redis, queue: Queue, keys: tuple[str, str], job_id: str,
             webhook: WebhookConfig) -> bool:
    """Free ``job_id``'s lane ('': none, fill a free one) for the oldest parked job; whether one was woken."""
    while True:
        now = time.time()
        successor = cast(bytes | None, connection.eval(
            _RELEASE_LUA, 2, *keys, *_args(job_id, _ms(now), _ms(now + QUEUED_LEASE), webhook.concurrency, "")))
        if successor is None:
            return False
        job_id = successor.decode()
        if wake(connection, queue, job_id):
            return True
        # Gone (deleted by hand, or expired): its lane goes on to the next parked job.


def fill_free_lanes(connection: redis.Redis, keys: Keys, webhooks: list[WebhookConfig]) -> int:
    """The watchdog's round, every few seconds: queue each parked job that was given a lane but never queued
    (the worker handing it over died in between), and give each lane free with jobs parked behind it (its
    holder died) to the oldest of them. The number of jobs queued."""
    queue = LivebriefQueue.deliveries(keys, connection)
    scheduled = ScheduledJobRegistry(queue=queue).key
    lanes = [_lane_keys(keys, webhook.id) for webhook in webhooks]
    with connection.pipeline(transaction=False) as pipe:
        for held, parked in lanes:
            pipe.zrange(held, 0, -1)
            pipe.exists(parked)
        replies = pipe.execute()
    holders = [[h.decode() for h in cast(list[bytes], held_by)] for held_by in replies[0::2]]
    with connection.pipeline(transaction=False) as pipe:  # which holders sit scheduled, in one round trip
        for job_id in (job_id for held_by in holders for job_id in held_by):
            pipe.zscore(scheduled, job_id)
        left_scheduled = iter(pipe.execute())
    woken = 0
    for webhook, webhook_lanes, held_by, parked in zip(webhooks, lanes, holders, replies[1::2], strict=True):
        for job_id in held_by:
            if next(left_scheduled) is not None and wake(connection, queue, job_id):
                log.warning("delivery_lane_recovered", webhook=webhook.id, job=job_id, how="queued its holder")
                woken += 1
        if parked and _release(connection, queue, webhook_lanes, "", webhook):
            log.warning("delivery_lane_recovered", webhook=webhook.id, how="gave a free lane to a parked job")
            woken += 1
    return woken


def wake(connection: redis.Redis, queue: Queue, job_id: str) -> bool:
    """Queue the parked job ``job_id`` now instead of at its scheduled time; False when it will not run (it no
    longer exists, or has run).

    Taken out of RQ's scheduled registry and queued in one MULTI, while the registry is watched: if RQ's
    scheduler got there first, the job is queued already (queued twice, it would run twice), and a worker
    dying between the two steps would leave it in neither."""
    try:
        job = Job.fetch(job_id, connection=connection)
    except NoSuchJobError:
        return False
    registry = ScheduledJobRegistry(queue=queue).key
    with connection.pipeline() as pipe:
        while True:
            try:
                pipe.watch(registry)
                if pipe.zscore(registry, job_id) is None:
                    pipe.unwatch()
                    return job.get_status() in (JobStatus.QUEUED, JobStatus.STARTED)
                pipe.multi()
                pipe.zrem(registry, job_id)
                # At the front: it holds the lane, so its webhook's other jobs can only park until it has run.
                queue.enqueue_job(job, pipeline=pipe, at_front=True)
                pipe.execute()
                break
            except redis.WatchError:
                continue  # another job was scheduled or moved meanwhile: look again
    log.debug("delivery_unparked", webhook=job.args[0] if job.args else None, job=job_id)
    return True
