"""Starting RQ workers for livebrief's queues (ingest and deliveries, alternately: ``worker.queue_order``),
with the scheduler on so delayed retries run, and a watchdog that promptly recovers jobs of workers that
died and stands in for a scheduler process that died."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any

import redis
import rq.scheduler
import structlog
from rq import Queue, SimpleWorker, Worker
from rq.job import Job
from rq.worker import DequeueStrategy, WorkerStatus
from rq.worker.base import BaseWorker

from livebrief.config import Config
from livebrief.keys import Keys
from livebrief.queues import LivebriefQueue
from livebrief.recovery import recover_abandoned
from livebrief.redis_client import REPLY_TIMEOUT, stop_waiting_for_redis, stopping_without_redis

if TYPE_CHECKING:
    from worker.runtime import Runtime

log = structlog.get_logger(__name__)
RECOVERY_INTERVAL = 5.0
# A worker keeps tens of thousands of long-lived objects in its caches (compiled topic patterns, decoded
# story records, IDF weights); with Python's default thresholds the collector rescans them so often that,
# measured over 6,000 items, it cost ~0.1-0.2 ms per item. Batches make garbage in bursts and free it by
# reference counting; rarer collections (bounded by the first threshold) still find the cycles.
GC_THRESHOLDS = (50_000, 20, 100)


QUEUE_ROLES = ("ingest", "deliveries")
# ``worker.queue_order``, in RQ's terms: after a job, round robin puts its queue last.
DEQUEUE_STRATEGIES = {"alternate": DequeueStrategy.ROUND_ROBIN, "ingest_first": DequeueStrategy.DEFAULT}
# How long an idle worker on one queue blocks in one pop (RQ's ``dequeue_timeout``); see ``_SchedulerEndsWithWorker``.
DEQUEUE_WAIT = 3
# How long a worker trusts what it wrote to its own RQ record (see ``FreezingWorker``).
SAME_SECOND = 1.0


class PayloadKeepingJob(Job):
    """A job that, saved again by RQ (as it finishes), writes back the compressed payload it was read with
    instead of compressing its payload once more.

    Why: RQ saves a finished job whole, and its ``to_dict`` compresses the payload each time it is called:
    ~25 kB (~0.5 ms) for an ingest job of ~36 items, ~1.5% of a worker's CPU samples at 1,000 items/s
    (py-spy). A payload that RQ has not replaced since it was read (setting a job's function or arguments
    does) is the payload read, so its bytes as read are written back: the same job, as RQ would load it.
    """

    _payload_read: tuple[object, bytes] | None = None  # (the decompressed payload, the bytes it came from)

    def restore(self, raw_data: dict[bytes, bytes]) -> None:
        super().restore(raw_data)
        stored = raw_data.get(b"data")  # RQ's connections answer bytes (else: compressed again, as RQ does)
        if stored is not None:
            self._payload_read = (self._data, stored)

    def to_dict(self, include_meta: bool = True, include_result: bool = True) -> dict[str, object]:
        read = self._payload_read
        if read is None or self._data is not read[0]:
            return super().to_dict(include_meta=include_meta, include_result=include_result)
        # RQ's to_dict compresses whatever the payload is: an empty one, for nothing, then the bytes read.
        payload, self._data = self._data, b""
        try:
            out = super().to_dict(include_meta=include_meta, include_result=include_result)
        finally:
            self._data = payload
        out["data"] = read[1]
        return out


# RQ's scheduler queues the jobs that come due (webhook retries, deferred deliveries, embargoed batches) through
# this name: as livebrief's class, those pushes ring their queue's doorbell too, so a worker waiting on both
# queues takes them at once, not at its next look (``livebrief.queues.WAIT_SLICE``; QA measured 0.2-0.6 s).
rq.scheduler.Queue = LivebriefQueue  # type: ignore[misc]

# Set only while a worker forks its RQ scheduler process (the child sees them in its copy of memory): the
# worker forking it, and its process.
_forking_worker: BaseWorker | None = None
_worker_pid = 0
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _scheduler_dies_with_its_worker() -> None:
    """In a worker's RQ scheduler process, just forked: have Linux send it SIGTERM when the worker dies, and
    have SIGTERM end its waits for a lost Redis (a stop that Redis could not hear of is then no crash).

    Why: a worker killed with SIGKILL cannot stop the scheduler it forked, which lived on, orphaned, until
    its Redis connection failed, while ``livebrief run`` started a new worker (and scheduler) beside it.
    SIGTERM is the scheduler's own signal to stop (RQ releases its locks); RQ's handler only marks the
    stop, which a scheduler waiting out a Redis restart would read ~33 s later, while the worker stopping
    it waits. Other forks are left alone."""
    if _forking_worker is None:
        return
    scheduler = _forking_worker.scheduler
    if scheduler is not None:
        marks_stop = scheduler.request_stop

        def request_stop(signum: int | None = None, frame: FrameType | None = None) -> None:
            stop_waiting_for_redis()
            marks_stop(signum, frame)

        works = scheduler.work

        def work() -> None:
            with stopping_without_redis("scheduler_stopped_without_redis"):
                works()

        # RQ installs ``scheduler.request_stop`` as its handler as the scheduler starts, after this hook.
        scheduler.request_stop = request_stop  # type: ignore[method-assign]
        scheduler.work = work  # type: ignore[method-assign]
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != _worker_pid:  # the worker died before the line above: no signal will come
        os.kill(os.getpid(), signal.SIGTERM)


os.register_at_fork(after_in_child=_scheduler_dies_with_its_worker)


@contextlib.contextmanager
def _forking_its_scheduler(worker: BaseWorker) -> Iterator[None]:
    """Around RQ's calls that fork ``worker``'s scheduler, marking the fork for ``_scheduler_dies_with_its_worker``."""
    global _forking_worker, _worker_pid
    _forking_worker, _worker_pid = worker, os.getpid()
    try:
        yield
    finally:
        _forking_worker = None


class _SchedulerEndsWithWorker(BaseWorker):
    """A worker whose RQ scheduler process ends when the worker does, however it ends. RQ forks it at the
    start (``_start_scheduler``, private in RQ 2) and again in maintenance when it has exited. It takes jobs
    through ``LivebriefQueue``, which never loses one taken from several queues."""

    queue_class = LivebriefQueue

    def __init__(self, queues: Any, *args: Any, **kwargs: Any) -> None:
        # RQ wants every queue to be of the worker's queue class: RQ's own are taken by name.
        listed = [queues] if isinstance(queues, str | Queue) else list(queues)
        names: list[str | Queue] = [q.name if type(q) is Queue else q for q in listed]
        super().__init__(names, *args, **kwargs)  # type: ignore[arg-type]  # RQ takes a mixed list too

    # RQ blocks on a single queue for ``dequeue_timeout`` (405 s by default) and raises its client's reply
    # timeout above that: a frozen Redis then held the worker, past SIGTERM, for minutes. An idle worker now
    # pops again every few seconds (with a heartbeat), and its client waits for a reply that long plus
    # ``livebrief.redis_client.REPLY_TIMEOUT``.
    @property
    def dequeue_timeout(self) -> int:
        return DEQUEUE_WAIT

    @property
    def connection_timeout(self) -> int:
        return DEQUEUE_WAIT + math.ceil(REPLY_TIMEOUT)

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        # RQ takes a job through the intermediate list only from a single queue, and clears it from there only
        # then; ``LivebriefQueue`` always does (the job leaves the list as it is listed as started, in one MULTI).
        super().prepare_job_execution(job, remove_from_intermediate_queue=True)

    def _start_scheduler(self, *args: Any, **kwargs: Any) -> None:
        with _forking_its_scheduler(self):
            super()._start_scheduler(*args, **kwargs)

    def run_maintenance_tasks(self) -> None:
        with _forking_its_scheduler(self):
            super().run_maintenance_tasks()

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        """RQ's warm shutdown. An idle worker's waits for a lost Redis end now, not ~33 s on; a busy one's
        job goes on waiting, since finishing it needs Redis: a delivery job cut short there would have its
        retry post again what it posted during the outage (``execute_job`` ends the waits after it)."""
        if self.get_state() != WorkerStatus.BUSY:
            stop_waiting_for_redis()
            super().request_stop(signum, frame)  # raises StopRequested
            return
        try:
            super().request_stop(signum, frame)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            # RQ records the stop in Redis from inside the signal handler, whose error, Redis being down, was
            # raised into the job it interrupted. The stop itself is marked before that write.
            log.warning("worker_stop_not_recorded", error=str(exc))
            if self.scheduler:
                self.stop_scheduler()

    def request_force_stop(self, signum: int, frame: FrameType | None) -> None:
        stop_waiting_for_redis()
        super().request_force_stop(signum, frame)

    @property
    def _scheduler_process(self) -> Any:
        """The scheduler process RQ started, if it did (``multiprocessing.Process``)."""
        process = self.scheduler._process if self.scheduler else None
        return process if process is not None and process.pid else None

    def stop_scheduler(self) -> None:
        """RQ's, without waiting there for the scheduler process to end: ``teardown`` waits for it after this
        worker's own last commands. RQ waits first, and against a Redis that does not answer the two waits
        added up (~15 s to stop, past a container's usual 10 s grace)."""
        if self._scheduler_process is not None:
            with contextlib.suppress(OSError):  # already gone
                os.kill(self._scheduler_process.pid, signal.SIGTERM)

    def teardown(self) -> None:
        try:
            super().teardown()
        finally:
            if self._scheduler_process is not None and not self.is_horse:
                self._scheduler_process.join()

    def execute_job(self, job: Job, queue: Queue) -> None:
        try:
            super().execute_job(job, queue)
        finally:
            if self._stop_requested:  # the warm shutdown's job is done: the rest of the stop waits for nothing
                stop_waiting_for_redis()


class ForkingWorker(_SchedulerEndsWithWorker, Worker):
    """RQ's Worker (a forked work-horse per job: ``livebrief work --fork``), its scheduler ending with it."""


class FreezingWorker(_SchedulerEndsWithWorker, SimpleWorker):
    """A SimpleWorker that, after each job, collects what the job left unreachable and freezes the rest.

    Why: a worker's caches hold hundreds of thousands of long-lived objects, and the collector's young
    generation kept filling with them, so every ~1,400 items a collection paused a job for 15-60 ms, which
    held up the items queued behind it. Collected right after a job (its entries are published by then),
    only what that job made and kept is scanned (``settle_heap``: a few tenths of a ms); frozen, none of it
    is scanned again. Measured in one process over 40,000 items: the longest pause 61 -> 2.4 ms, for ~24 us
    more collector time per item (~2% of a worker's CPU; less since ``settle_heap`` collects the young
    generations only). Stream p99 at 1,000 items/s was lower in 5 of 7 alternated
    ``bench_latency.py --quick`` pairs (median 98 -> 92 ms; webhook p50 1.8 -> 1.5 s), at 600 items/s in 2
    of 4 (median 79 -> 69 ms): a small gain on a noisy machine, but no more 15-60 ms stalls.
    The risk of freezing is that cyclic garbage made of frozen objects is never collected: over those
    40,000 items an unfreeze and full collection found none (``tests/test_memory.py`` checks it).
    """

    # RQ's worker makes ~18 round trips to Redis per job, each ~60-80 us of the worker's CPU on a 2-core VM
    # (send, wait, wake, parse): ~2 ms a job, ~12% of a worker's samples at 1,000 items/s in jobs of 25.
    # Six of them repeat what was written a moment before, and are skipped (``benchmarks/README.md``,
    # twentieth session): two of the three heartbeats a job sends with RQ's default TTL, the second of
    # the two "idle" states, and the check for ``rq suspend`` when it was checked within the second. The
    # heartbeat left sends its two commands in one round trip.
    _default_heartbeat_until = 0.0
    _state_written: str | None = None
    _suspension_checked_until = 0.0

    job_class = PayloadKeepingJob

    def execute_job(self, job: Job, queue: Queue) -> None:
        try:
            super().execute_job(job, queue)
        finally:
            settle_heap()

    def heartbeat(self, timeout: int | None = None, pipeline: redis.client.Pipeline | None = None) -> None:
        """RQ's heartbeat, skipped while one with the default TTL (``worker_ttl`` + 60 s) was sent less than
        ``SAME_SECOND`` ago: the worker's key then still has nearly all of that TTL, and ``last_heartbeat``
        is at most that stale. A heartbeat with another TTL (RQ shortens it while a job runs) is always sent,
        and the next default one after it too."""
        now = time.monotonic()
        default = timeout is None and pipeline is None
        if default and now < self._default_heartbeat_until:
            return
        if pipeline is not None:
            super().heartbeat(timeout, pipeline)
        else:  # its two commands in one round trip
            with self.connection.pipeline(transaction=False) as own:
                super().heartbeat(timeout, own)
                own.execute()
        self._default_heartbeat_until = now + SAME_SECOND if default else 0.0

    def set_state(self, state: str, pipeline: redis.client.Pipeline | None = None) -> None:
        """RQ's set_state, not written again when this worker itself wrote that state last."""
        if pipeline is None and state == self._state_written:
            self._state = state
            return
        super().set_state(state, pipeline)
        # A state queued on a pipeline is written only if the pipeline runs: the next one is written anyway.
        self._state_written = state if pipeline is None else None

    def check_for_suspension(self, burst: bool) -> None:
        """RQ's check for ``rq suspend``, at most once a ``SAME_SECOND``: a suspension stops the worker
        before its next job after that."""
        if time.monotonic() < self._suspension_checked_until:
            return
        super().check_for_suspension(burst)
        self._suspension_checked_until = time.monotonic() + SAME_SECOND


def settle_heap() -> None:
    """Collect what the last job left unreachable and freeze the rest (see ``FreezingWorker``)."""
    # The young generations are enough, unless the job ran long enough to promote objects to the oldest
    # (a cycle there would be frozen uncollected): a full collection also empties CPython's free lists
    # (tuples, floats, dicts, ...), which the next job then refills from the allocator: 1.75 -> 0.36 ms per
    # batch of 25, and ~7% less of ``run_batch``'s CPU per item (``benchmarks/README.md``, nineteenth session).
    gc.collect(2 if gc.get_objects(generation=2) else 1)
    gc.freeze()


def queues(client: redis.Redis, keys: Keys, roles: tuple[str, ...] = QUEUE_ROLES) -> list[Queue]:
    """RQ queues by role, in the order given (with ``queue_order`` ingest_first, a worker serves earlier
    queues first)."""
    names = {"ingest": keys.ingest_queue, "deliveries": keys.delivery_queue}
    return [LivebriefQueue(names[role], connection=client) for role in roles]


def _watchdog(client: redis.Redis, config: Config, names: list[str], worker: Worker, stop: threading.Event) -> None:
    from worker.lanes import fill_free_lanes

    keys = Keys(config.prefix)
    while not stop.wait(RECOVERY_INTERVAL):
        try:
            recover_abandoned(client, keys, names)
            schedule_if_scheduler_died(worker)
            fill_free_lanes(client, keys, config.webhooks)
        except redis.RedisError as exc:  # Redis restarting: try again next round
            log.warning("recovery_check_failed", error=str(exc))
        except Exception:  # anything else: log it, but never let the thread die and recovery stop
            log.exception("recovery_check_crashed")


def schedule_if_scheduler_died(worker: Worker) -> None:
    """When this worker's RQ scheduler process has exited, do its work once, as RQ's burst mode does:
    queue the retries and put-off deliveries that are due.

    Why: the scheduler process exits when a Redis command fails after the client's retries (an outage
    longer than ~33 s), and RQ starts it again only at its next maintenance, up to 10 minutes later;
    webhook retries and put-off deliveries stalled that long (``tests/test_redis_restart.py``). The
    scheduler's own name takes the locks, so its lock (held for a minute after it died) is no obstacle,
    and a live scheduler of another worker keeps its queues."""
    scheduler = worker.scheduler
    if scheduler is None or (scheduler._process is not None and scheduler._process.is_alive()):
        return
    if not scheduler.acquire_locks():
        return
    try:
        scheduler.enqueue_scheduled_jobs()
    finally:
        scheduler.release_locks()


def run_worker(config: Config, client: redis.Redis, *, burst: bool = False, simple: bool = False,
               roles: tuple[str, ...] = QUEUE_ROLES, runtime: Runtime | None = None) -> bool:
    """Run one RQ worker on the queues of ``roles`` until stopped (with ``burst``, until they are empty);
    ``runtime``: ``config``'s, when the caller has configured this process already (``run --once``)."""
    from worker.lanes import fill_free_lanes
    from worker.runtime import configure

    if runtime is None:
        runtime = configure(config)  # compile topics once, before forking work-horses
    if not simple:
        runtime.topics.compile_all()
    gc.set_threshold(*GC_THRESHOLDS)
    gc.freeze()  # what startup built lives as long as the process: never scan it again
    keys = Keys(config.prefix)
    names = [queue.name for queue in queues(client, keys)]  # recover every role's jobs, not just ours
    recover_abandoned(client, keys, names)
    # Jobs parked behind a lane whose holder died (a worker killed, a `run --once` stopped) would otherwise
    # wait for a running worker's watchdog, or an hour: a burst worker (`run --once`) has no watchdog.
    fill_free_lanes(client, keys, config.webhooks)
    stop = threading.Event()
    worker_class = FreezingWorker if simple else ForkingWorker  # a forked work-horse's heap dies with it
    worker = worker_class(queues(client, keys, roles), connection=client)
    if not burst:
        # The client's pool hands the thread its own connection while the worker blocks on another.
        threading.Thread(target=_watchdog, args=(client, config, names, worker, stop), daemon=True).start()
    try:
        # A worker stopped without telling Redis: its record expires later, and a watchdog on this host sees at
        # once that its process is gone (``livebrief/recovery.py``).
        with stopping_without_redis("worker_stopped_without_redis"):
            return bool(worker.work(burst=burst, with_scheduler=True, logging_level="WARNING",
                                    dequeue_strategy=DEQUEUE_STRATEGIES[config.worker.queue_order]))
        return False
    finally:
        stop.set()


def pending_jobs(client: redis.Redis, keys: Keys) -> int:
    return sum(q.count for q in queues(client, keys))
