"""A slow webhook receiver holds at most its lanes' share of the delivery workers (worker/lanes.py), on real
parts: real receivers on 127.0.0.1, a real redis-server, real RQ workers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
import yaml
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry

from feeds.status import metrics_text
from livebrief.config import Config
from livebrief.keys import Keys
from livebrief.workers import FreezingWorker, run_worker
from tests.conftest import REPO, TEST_SECRET, WebhookReceiver, make_config
from tests.helpers import make_item
from worker.jobs import run_batch
from worker.lanes import Lane, fill_free_lanes
from worker.notify import retries_left
from worker.runtime import configure

KEYS = Keys("livebrief")


def _hook(webhook_id: str, receiver: WebhookReceiver, **extra: object) -> dict[str, object]:
    return {"id": webhook_id, "url": receiver.url, "secret": TEST_SECRET, "retry_intervals": [1], **extra}


def _published_ids(client: redis.Redis) -> list[str]:
    entries = [json.loads(f[b"entry"]) for _, f in client.xrange(KEYS.entries_stream)]
    return [f"msg_{e['id']}_v{e['version']}" for e in entries]


def _slow(receiver: WebhookReceiver, seconds: float, log: list[tuple[str, int]], name: str) -> list[int]:
    """Make ``receiver`` answer after ``seconds``, logging each POST as (name, number); returns a one-item list
    holding the most POSTs it ever had in flight at once."""
    in_flight = [0]
    most = [0]
    lock = threading.Lock()

    def on_post(number: int) -> None:
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(seconds)
        with lock:
            in_flight[0] -= 1
            log.append((name, number))

    receiver.on_post = on_post
    return most


def test_a_slow_receiver_does_not_hold_up_another_webhook_even_with_one_delivery_worker(
    client: redis.Redis, redis_url: str, webhook_receiver: WebhookReceiver
) -> None:
    """Before lanes and slices, one delivery worker posted a slow receiver's whole job before the next job:
    the fast receiver's entries waited behind every slow job queued ahead of them."""
    fast = WebhookReceiver().start()
    try:
        runtime = configure(make_config(redis_url, [], worker={"delivery_slice": 0.1}, webhooks=[
            _hook("slow", webhook_receiver, timeout=5), _hook("fast", fast)]))
        order: list[tuple[str, int]] = []
        _slow(webhook_receiver, 0.4, order, "slow")
        fast.on_post = lambda number: order.append(("fast", number))
        for batch in range(3):
            run_batch(client, runtime, [make_item("wire", 3 * batch + n) for n in range(3)])

        run_worker(runtime.config, client, burst=True, simple=True, roles=("deliveries",))

        last_fast = max(i for i, (name, _) in enumerate(order) if name == "fast")
        slow_before = sum(1 for name, _ in order[:last_fast] if name == "slow")
        assert slow_before <= 2, order  # it was 9: every slow job, each posting all its messages first
        published = _published_ids(client)
        for receiver in (webhook_receiver, fast):  # all of them, each once, in the order published
            assert [r["headers"]["webhook-id"] for r in receiver.delivered] == published
        assert client.zcard(KEYS.webhook_lanes("slow")) == 0 and client.zcard(KEYS.webhook_parked("slow")) == 0
    finally:
        fast.stop()


def _config_file(tmp_path: Path, config: Config) -> Path:
    path = tmp_path / "lb.yaml"
    path.write_text(yaml.safe_dump({
        "topics_file": str(REPO / "config" / "topics.yaml"), "feeds": [],
        "worker": {"delivery_slice": config.worker.delivery_slice},
        "webhooks": [w.model_dump(mode="json") for w in config.webhooks]}))
    return path


def _two_workers(tmp_path: Path, redis_url: str, config: Config) -> None:
    env = {**os.environ, "REDIS_URL": redis_url, "LIVEBRIEF_CONFIG": str(_config_file(tmp_path, config))}
    command = [sys.executable, "-m", "livebrief.cli", "work", "--burst", "--queues", "deliveries"]
    workers = [subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
               for _ in range(2)]
    for worker in workers:
        _, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err.decode()


def test_a_webhook_gets_one_delivery_at_a_time_in_the_order_published_even_from_two_workers(
    tmp_path: Path, client: redis.Redis, redis_url: str, webhook_receiver: WebhookReceiver
) -> None:
    """Two delivery workers used to post two batches to one receiver at once, in either order."""
    runtime = configure(make_config(redis_url, [], webhooks=[_hook("desk", webhook_receiver)]))
    most = _slow(webhook_receiver, 0.15, [], "desk")
    for batch in range(4):
        run_batch(client, runtime, [make_item("wire", 2 * batch + n) for n in range(2)])
    assert len(Queue(KEYS.delivery_queue, connection=client).get_jobs()) == 4

    _two_workers(tmp_path, redis_url, runtime.config)
    deadline = time.time() + 30  # a worker may stop while the other still holds the lane: it wakes the rest
    while len(webhook_receiver.delivered) < 8 and time.time() < deadline:
        run_worker(runtime.config, client, burst=True, simple=True, roles=("deliveries",))
        time.sleep(0.1)

    assert most[0] == 1
    assert [r["headers"]["webhook-id"] for r in webhook_receiver.delivered] == _published_ids(client)


def test_a_webhook_with_more_lanes_gets_that_many_deliveries_at_once(
    tmp_path: Path, client: redis.Redis, redis_url: str, webhook_receiver: WebhookReceiver
) -> None:
    runtime = configure(make_config(redis_url, [], webhooks=[_hook("desk", webhook_receiver, concurrency=2)]))
    most = _slow(webhook_receiver, 0.3, [], "desk")
    for batch in range(4):
        run_batch(client, runtime, [make_item("wire", 2 * batch + n) for n in range(2)])

    _two_workers(tmp_path, redis_url, runtime.config)

    assert most[0] == 2
    assert sorted(r["headers"]["webhook-id"] for r in webhook_receiver.delivered) == sorted(_published_ids(client))


def _lane(client: redis.Redis, job_id: str, concurrency: int = 1) -> Lane:
    config = make_config("redis://unused", [], webhooks=[{"id": "desk", "url": "http://127.0.0.1:9/hook",
                                                          "secret": TEST_SECRET, "concurrency": concurrency}])
    return Lane(client, KEYS, config.webhooks[0], job_id, config.worker.delivery_slice)


def _park(client: redis.Redis, lane: Lane, job_id: str, since: float | None = None) -> bool:
    """Schedule a job ``job_id`` far ahead as a parked delivery would be, parked behind ``lane``'s webhook;
    whether it got a lane instead."""
    queue = Queue(KEYS.delivery_queue, connection=client)
    job = queue.create_job("worker.notify.deliver_batch", args=("desk", []), job_id=job_id)
    with client.pipeline() as pipe:
        queue.schedule_job(job, datetime.now(UTC) + timedelta(seconds=600), pipeline=pipe)
        lane.park(pipe, job_id, time.time() if since is None else since)
        return bool(pipe.execute()[-1] == 1)


def _parked(client: redis.Redis) -> list[str]:
    return [m.decode() for m in client.zrange(KEYS.webhook_parked("desk"), 0, -1)]


def test_a_freed_lane_goes_to_the_oldest_parked_job_which_is_queued_at_once(
    tmp_path: Path, client: redis.Redis, redis_url: str
) -> None:
    queue = Queue(KEYS.delivery_queue, connection=client)
    first = _lane(client, "job-1")
    assert first.acquire()
    assert not _lane(client, "job-2").acquire()
    assert not _park(client, first, "parked-a") and not _park(client, first, "parked-b")
    assert queue.get_job_ids() == []
    config = make_config(redis_url, [], webhooks=[{"id": "desk", "url": "http://127.0.0.1:9/hook",
                                                   "secret": TEST_SECRET}])
    listing = subprocess.run([sys.executable, "-m", "livebrief.cli", "webhooks", "--config",
                              str(_config_file(tmp_path, config))], env={**os.environ, "REDIS_URL": redis_url},
                             capture_output=True, text=True, timeout=60, cwd=REPO)
    assert "running=1/1 parked=2" in listing.stdout, listing.stderr
    assert 'livebrief_webhook_parked_jobs{webhook="desk"} 2' in metrics_text(client, config)

    first.release()

    assert queue.get_job_ids() == ["parked-a"]  # not at its scheduled time, 10 minutes on
    assert "parked-a" not in ScheduledJobRegistry(queue=queue).get_job_ids()
    assert Job.fetch("parked-a", connection=client).get_status() == "queued"
    assert _lane(client, "parked-a").acquire()  # the lane was handed to it: nobody else can take it
    assert not _lane(client, "job-3").acquire()
    assert _parked(client) == ["parked-b"]


def test_a_job_run_again_keeps_its_lane_and_a_dead_holder_frees_it_when_its_lease_ends(client: redis.Redis) -> None:
    holder = _lane(client, "job-1")
    assert holder.acquire()
    assert _lane(client, "job-1").acquire()  # the watchdog's re-run of an abandoned job: same id
    assert not _lane(client, "job-2").acquire()
    client.zadd(KEYS.webhook_lanes("desk"), {"job-1": (time.time() - 1) * 1000})  # its lease is over
    assert _lane(client, "job-2").acquire()
    assert 0 < client.pttl(KEYS.webhook_lanes("desk")) <= holder.lease * 1000


def test_a_hand_over_to_a_parked_job_that_is_gone_passes_the_lane_on(client: redis.Redis) -> None:
    queue = Queue(KEYS.delivery_queue, connection=client)
    holder = _lane(client, "job-1")
    assert holder.acquire()
    for name in ("parked-a", "parked-b", "parked-c"):
        _park(client, holder, name)
    Job.fetch("parked-a", connection=client).delete()
    ran = Job.fetch("parked-b", connection=client)  # it ran at its scheduled time, then finished
    client.zrem(ScheduledJobRegistry(queue=queue).key, ran.id)
    ran.set_status(JobStatus.FINISHED)

    holder.release()

    assert queue.get_job_ids() == ["parked-c"]
    assert [m.decode() for m in client.zrange(KEYS.webhook_lanes("desk"), 0, -1)] == ["parked-c"]


def test_a_job_that_finds_a_lane_free_as_it_parks_is_queued_at_once(client: redis.Redis) -> None:
    queue = Queue(KEYS.delivery_queue, connection=client)
    lane = _lane(client, "job-1", concurrency=2)
    assert lane.acquire()
    assert _park(client, lane, "parked-a")  # a second lane is free
    assert client.zcard(KEYS.webhook_parked("desk")) == 0
    assert queue.get_job_ids() == []  # ``notify._park`` wakes it; the Lua only gave it the lane


def test_the_watchdog_gives_a_lane_whose_holder_died_to_the_oldest_parked_job(client: redis.Redis) -> None:
    """A worker killed mid-job never hands its lane over: the jobs parked behind it used to wait for their
    scheduled time. Each worker's watchdog now fills a free lane every few seconds."""
    queue = Queue(KEYS.delivery_queue, connection=client)
    holder = _lane(client, "job-1")
    assert holder.acquire()
    _park(client, holder, "parked-a")
    _park(client, holder, "parked-b")
    webhooks = [holder.webhook]

    assert fill_free_lanes(client, KEYS, webhooks) == 0  # the holder's lease still runs
    assert queue.get_job_ids() == []
    client.zadd(KEYS.webhook_lanes("desk"), {"job-1": (time.time() - 1) * 1000})  # it died; its lease ended

    assert fill_free_lanes(client, KEYS, webhooks) == 1
    assert queue.get_job_ids() == ["parked-a"]
    assert fill_free_lanes(client, KEYS, webhooks) == 0  # parked-a holds the lane now
    assert _parked(client) == ["parked-b"]


def test_a_parked_job_woken_while_the_lanes_are_still_taken_parks_again_in_its_old_place(
    client: redis.Redis, redis_url: str, webhook_receiver: WebhookReceiver
) -> None:
    runtime = configure(make_config(redis_url, [], webhooks=[_hook("desk", webhook_receiver)]))
    queue = Queue(KEYS.delivery_queue, connection=client)
    other = Lane(client, KEYS, runtime.config.webhooks[0], "a-running-job", 1.0)
    assert other.acquire()
    run_batch(client, runtime, [make_item("wire", 1)])
    run_worker(runtime.config, client, burst=True, simple=True, roles=("deliveries",))
    (first,) = _parked_jobs(client)
    since = client.zscore(KEYS.webhook_parked("desk"), first.id)
    assert first.kwargs["parked_since"] * 1000 == pytest.approx(since, abs=1)
    run_batch(client, runtime, [make_item("wire", 2)])
    run_worker(runtime.config, client, burst=True, simple=True, roles=("deliveries",))  # parks behind it
    assert len(_parked_jobs(client)) == 2 and webhook_receiver.received == []

    # The first one's scheduled time comes (an hour on), the lane still taken.
    client.zrem(ScheduledJobRegistry(queue=queue).key, first.id)
    queue.enqueue_job(first)
    run_worker(runtime.config, client, burst=True, simple=True, roles=("deliveries",))

    again = _parked_jobs(client)
    assert first.id not in [j.id for j in again] and len(again) == 2
    assert again[0].kwargs["parked_since"] == first.kwargs["parked_since"]  # still first in line
    other.release()
    run_worker(runtime.config, client, burst=True, simple=True, roles=("deliveries",))
    assert [r["headers"]["webhook-id"] for r in webhook_receiver.delivered] == _published_ids(client)


def _parked_jobs(client: redis.Redis) -> list[Job]:
    return [Job.fetch(job_id, connection=client) for job_id in _parked(client)]


@pytest.mark.parametrize("left", [1, 0])
def test_a_job_parked_or_continued_goes_on_with_the_retries_it_had_left(
    client: redis.Redis, redis_url: str, webhook_receiver: WebhookReceiver, left: int
) -> None:
    """A parked or continued job is a new RQ job: with a fresh retry schedule, a receiver that kept failing
    while its lanes stayed busy would have had its messages retried for ever, never dead-lettered."""
    runtime = configure(make_config(redis_url, [], worker={"delivery_slice": 0.05},
                                    webhooks=[_hook("desk", webhook_receiver, retry_intervals=[1, 2, 3])]))
    queue = Queue(KEYS.delivery_queue, connection=client)
    other = Lane(client, KEYS, runtime.config.webhooks[0], "a-running-job", 1.0)
    assert other.acquire()
    run_batch(client, runtime, [make_item("wire", n) for n in range(3)])
    (job,) = queue.get_jobs()
    job.retries_left = left  # as RQ leaves it after two (or three) failed runs
    job.kwargs = {**job.kwargs, "deferred_since": 1_700_000_000.0}  # and the receiver once asked it to wait
    job.save()

    run_worker(runtime.config, client, burst=True, simple=True, roles=("deliveries",))
    (parked,) = _parked_jobs(client)
    # Next interval 3 s, as RQ picks it; or none left (RQ keeps no count then: found by QA, the job carrying
    # these messages on next started the schedule afresh).
    assert retries_left(parked) == left and (not left or parked.retry_intervals == [1, 2, 3])
    assert parked.kwargs["deferred_since"] == 1_700_000_000.0

    _slow(webhook_receiver, 0.1, [], "desk")  # each POST past the slice: the job hands the rest on
    other.release()
    queue.remove(parked.id)  # run it alone, to catch the job it hands the rest to
    worker = FreezingWorker([queue], connection=client)
    worker.execute_job(parked, queue)
    (continued,) = queue.get_jobs()
    assert re.search(r"-c\d+$", continued.id)
    assert (retries_left(continued), len(continued.args[1])) == (left, 2)
    assert continued.kwargs == {"deferred_since": 1_700_000_000.0}  # how long its messages may still wait


def test_a_burst_worker_runs_the_jobs_parked_behind_a_lane_whose_holder_died(
    client: redis.Redis, redis_url: str, webhook_receiver: WebhookReceiver
) -> None:
    """``run --once`` (a burst worker, no watchdog) used to leave them for an hour."""
    runtime = configure(make_config(redis_url, [], webhooks=[_hook("desk", webhook_receiver)]))
    holder = Lane(client, KEYS, runtime.config.webhooks[0], "a-job-of-a-killed-worker", 1.0)
    assert holder.acquire()
    run_batch(client, runtime, [make_item("wire", n) for n in range(2)])
    run_worker(runtime.config, client, burst=True, simple=True, roles=("deliveries",))
    assert len(_parked_jobs(client)) == 1 and webhook_receiver.received == []
    client.zadd(KEYS.webhook_lanes("desk"), {holder.job_id: (time.time() - 1) * 1000})  # its lease ran out

    run_worker(runtime.config, client, burst=True, simple=True, roles=("deliveries",))

    assert [r["headers"]["webhook-id"] for r in webhook_receiver.delivered] == _published_ids(client)


def test_a_woken_job_that_finds_its_receiver_asked_to_wait_gives_its_lane_back(
    client: redis.Redis, redis_url: str, webhook_receiver: WebhookReceiver
) -> None:
    """Found by QA: it returned (put off) still holding the lane handed to it, and its webhook's other jobs
    parked behind a job that had ended, until the lease ran out."""
    # Its messages may wait as long as its retries would take (60 s), so a 30 s wait is waited.
    runtime = configure(make_config(redis_url, [], webhooks=[_hook("desk", webhook_receiver, retry_intervals=[60])]))
    other = Lane(client, KEYS, runtime.config.webhooks[0], "a-running-job", 1.0)
    assert other.acquire()
    run_batch(client, runtime, [make_item("wire", 1)])
    run_worker(runtime.config, client, burst=True, simple=True, roles=("deliveries",))
    (parked,) = _parked_jobs(client)
    client.set(KEYS.webhook_hold("desk"), repr(time.time() + 30))  # a 429 answered meanwhile
    other.release()  # hands the lane to the parked job, queued now
    assert [m.decode() for m in client.zrange(KEYS.webhook_lanes("desk"), 0, -1)] == [parked.id]

    run_worker(runtime.config, client, burst=True, simple=True, roles=("deliveries",))

    assert client.zcard(KEYS.webhook_lanes("desk")) == 0
    assert webhook_receiver.received == []  # put off until the receiver's time, as it asked


def test_a_lane_handed_to_a_queued_job_is_kept_for_it_however_long_the_queue(client: redis.Redis) -> None:
    """Found by QA: behind many slow webhooks' jobs, one delivery worker took longer than a running job's
    lease to reach a continued job; its lane went to a later job, and the webhook's order was broken."""
    holder = _lane(client, "job-1")
    assert holder.acquire()
    with client.pipeline() as pipe:
        holder.hand_over(pipe, "job-1-c1")
        pipe.execute()
    _park(client, holder, "parked-a")  # no lane free: parked

    lease_end = (client.zscore(KEYS.webhook_lanes("desk"), "job-1-c1") or 0) / 1000
    assert lease_end - time.time() > 10 * holder.lease  # an hour, where a running job's is slice + timeout + 10 s
    assert _parked(client) == ["parked-a"]


def test_the_watchdog_queues_a_parked_job_given_a_lane_by_a_worker_that_died_before_queuing_it(
    client: redis.Redis,
) -> None:
    """Found by QA (a SIGKILL between the two steps of a hand-over): the lane was the parked job's, but the job
    stayed scheduled an hour on, and its webhook's deliveries with it."""
    queue = Queue(KEYS.delivery_queue, connection=client)
    holder = _lane(client, "job-1")
    assert holder.acquire()
    _park(client, holder, "parked-a")
    _park(client, holder, "parked-b")
    client.zpopmin(KEYS.webhook_parked("desk"))  # the release's first step, for parked-a; its worker died then
    with client.pipeline() as pipe:
        holder.hand_over(pipe, "parked-a")
        pipe.execute()
    assert queue.get_job_ids() == []

    assert fill_free_lanes(client, KEYS, [holder.webhook]) == 1

    assert queue.get_job_ids() == ["parked-a"]
    assert _parked(client) == ["parked-b"]
    assert fill_free_lanes(client, KEYS, [holder.webhook]) == 0


@pytest.mark.parametrize("put_off", [False, True])
def test_jobs_park_in_the_order_of_their_batches_whatever_order_they_start_in(
    client: redis.Redis, redis_url: str, webhook_receiver: WebhookReceiver, put_off: bool
) -> None:
    """Two workers race, or a batch a 429 put off comes back: the later batch's job may start (and park)
    first. Found by QA: parked in the order they started, the webhook got the later batch first."""
    runtime = configure(make_config(redis_url, [], webhooks=[_hook("desk", webhook_receiver, retry_intervals=[600])]))
    queue = Queue(KEYS.delivery_queue, connection=client)
    other = Lane(client, KEYS, runtime.config.webhooks[0], "a-running-job", 1.0)
    assert other.acquire()
    run_batch(client, runtime, [make_item("wire", 1)])
    time.sleep(0.01)
    run_batch(client, runtime, [make_item("wire", 2)])
    first, second = queue.get_jobs()
    if put_off:
        first.kwargs = {**first.kwargs, "deferred_since": time.time() - 100}  # its messages waited since then
        first.save()
    queue.remove(first.id)
    queue.enqueue_job(first)  # now behind the second batch's job

    run_worker(runtime.config, client, burst=True, simple=True, roles=("deliveries",))

    assert [j.args[1] for j in _parked_jobs(client)] == [first.args[1], second.args[1]]
    other.release()
    run_worker(runtime.config, client, burst=True, simple=True, roles=("deliveries",))
    assert [r["headers"]["webhook-id"] for r in webhook_receiver.delivered] == _published_ids(client)
