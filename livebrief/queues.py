"""livebrief's RQ queue: a worker on several queues takes a job without ever holding it where no recovery
can find it.

Why: RQ moves a job it takes from a single queue into that queue's intermediate list (BLMOVE), where
``livebrief.recovery`` finds it if the worker dies before starting it. From several queues (``livebrief
work``'s default: ingest and deliveries) it pops with BLPOP, which Redis has for many lists but BLMOVE has
not: a worker killed between the pop and RQ's listing the job as started, or whose connection broke as the
reply came, lost the job for good (its entries never published, its messages never posted).

``LivebriefQueue.dequeue_any`` takes from several queues the way RQ takes from one: one script moves the
first waiting job, in the worker's order, into its queue's intermediate list. When none waits, the worker
blocks on the queues' doorbells, a one-entry stream per queue that every push to the queue through this
class rings in the same round trip, so it wakes as soon as a job arrives (RQ's scheduler pushes through this
class too in livebrief's workers: ``livebrief/workers.py``). A push that does not ring (another program
queuing through RQ's own class, ``rq requeue`` say) is found within ``WAIT_SLICE``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any, cast

import redis
from redis.client import Pipeline
from rq import Queue
from rq.exceptions import DequeueTimeout, NoSuchJobError
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job
from rq.utils import get_version

from livebrief.keys import Keys, queue_doorbell

# The longest an idle worker on several queues waits between looks at them: how late it may find a job
# that was pushed without ringing (see the module docstring). Each look is one small script.
WAIT_SLICE = 1.0
_DOORBELL_LENGTH = 1  # only the latest ring's id is ever read

# KEYS: the queues in the worker's order, then their intermediate lists, then their doorbells.
# Returns {index of the queue (1-based), job id} for the first waiting job, moved to its intermediate list
# as RQ's BLMOVE does for one queue, or {0, the doorbells' latest ids} when no job waits: a ring after those
# ids is a push made after this look.
_TAKE_FIRST = """
local n = #KEYS / 3
for i = 1, n do
  local id = redis.call('LMOVE', KEYS[i], KEYS[n + i], 'LEFT', 'RIGHT')
  if id then return {i, id} end
end
local latest = {}
for i = 1, n do
  local last = redis.call('XREVRANGE', KEYS[2 * n + i], '+', '-', 'COUNT', 1)
  latest[i] = last[1] and last[1][1] or '0-0'
end
return {0, latest}
"""


class LivebriefQueue(Queue):
    """RQ's Queue whose pushes ring the queue's doorbell and whose ``dequeue_any`` over several queues moves
    the job it takes into an intermediate list (see the module docstring)."""

    @classmethod
    def ingest(cls, keys: Keys, connection: redis.Redis) -> LivebriefQueue:
        """The queue of ingest jobs (``worker.jobs``)."""
        return cls(keys.ingest_queue, connection=connection)

    @classmethod
    def deliveries(cls, keys: Keys, connection: redis.Redis) -> LivebriefQueue:
        """The queue of delivery jobs (``worker.notify``)."""
        return cls(keys.delivery_queue, connection=connection)

    def push_job_id(self, job_id: str, pipeline: Pipeline | None = None, at_front: bool = False) -> None:
        if pipeline is None:  # the push and its ring in one round trip
            with self.connection.pipeline(transaction=False) as pipe:
                self.push_job_id(job_id, pipe, at_front)
                pipe.execute()
            return
        super().push_job_id(job_id, pipeline=pipeline, at_front=at_front)
        pipeline.xadd(queue_doorbell(self.key), {"push": 1}, maxlen=_DOORBELL_LENGTH, approximate=False)

    @classmethod
    def dequeue_any(  # type: ignore[override]
        cls,
        queues: Iterable[Queue],
        timeout: int | None,
        connection: redis.Redis,
        job_class: type[Job] | None = None,
        serializer: Any = None,
        death_penalty_class: Any = None,
    ) -> tuple[Job, Queue] | None:
        ordered = list(queues)
        if len(ordered) == 1 or get_version(connection) < (6, 2, 0):  # RQ's own BLMOVE; LMOVE needs 6.2
            return super().dequeue_any(ordered, timeout, connection=connection, job_class=job_class,
                                       serializer=serializer, death_penalty_class=death_penalty_class)
        job_cls = job_class or cls.job_class
        while True:
            taken = _take_first(connection, [q.key for q in ordered], timeout)
            if taken is None:
                return None
            queue_key, job_id = taken
            queue = cls.from_queue_key(queue_key, connection=connection, job_class=job_cls, serializer=serializer,
                                       death_penalty_class=death_penalty_class)
            try:
                return job_cls.fetch(job_id, connection=connection, serializer=serializer), queue
            except NoSuchJobError:
                # As RQ does: a job deleted while it waited is skipped (its id, left in the intermediate
                # list, is cleared by ``livebrief.recovery``).
                continue


def _take_first(connection: redis.Redis, queue_keys: Sequence[str], timeout: int | None) -> tuple[str, str] | None:
    """The first job waiting in ``queue_keys`` (in order), moved to its intermediate list: (queue key, job id).
    When none waits: with ``timeout`` None, None at once (RQ's non-blocking dequeue); else wait for one up to
    ``timeout`` seconds, then raise ``DequeueTimeout`` (as RQ does)."""
    intermediates = [IntermediateQueue.get_intermediate_queue_key(key) for key in queue_keys]
    doorbells = [queue_doorbell(key) for key in queue_keys]
    keys = [*queue_keys, *intermediates, *doorbells]
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        found, value = cast(list[Any], connection.eval(_TAKE_FIRST, len(keys), *keys))
        if found:
            return queue_keys[int(found) - 1], _text(value)
        if deadline is None:
            return None
        left = deadline - time.monotonic()
        if left <= 0:
            raise DequeueTimeout(timeout, queue_keys)
        latest = {bell: _text(last) for bell, last in zip(doorbells, value, strict=True)}
        connection.xread(latest, block=max(1, int(min(left, WAIT_SLICE) * 1000)))  # type: ignore[arg-type]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
