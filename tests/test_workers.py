"""The RQ worker class livebrief runs (``livebrief.workers.FreezingWorker``) skips round trips that repeat
what it wrote a moment before; what RQ and its tools read of a worker stays as RQ would leave it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import zlib
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest
import redis
import yaml
from rq import Queue, get_current_job
from rq.job import Job
from rq.suspension import resume, suspend
from rq.worker import WorkerStatus

from livebrief.workers import FreezingWorker
from tests.conftest import REPO
from tests.helpers import until


def test_a_worker_between_short_jobs_keeps_its_record_as_rq_would(client: redis.Redis) -> None:
    """Twenty jobs with a 5 s timeout: while each runs, RQ shortens the worker's TTL to the job's (65 s).
    Afterwards, waiting for work, the worker must be listed as idle, with a fresh heartbeat and at least
    RQ's worker TTL to live, however many of its heartbeats and state writes were skipped."""
    queue = Queue("workers-test", connection=client)
    jobs = [queue.enqueue(len, "abc", job_timeout=5) for _ in range(20)]
    worker = FreezingWorker([queue], connection=client)
    seen: dict[str, object] = {}

    def look_while_idle() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(j.get_status(refresh=True) != "finished" for j in jobs):
            time.sleep(0.05)
        time.sleep(0.3)  # back in the dequeue loop, waiting
        record = client.hgetall(worker.key)
        seen["ttl"] = client.ttl(worker.key)
        seen["state"] = record.get(b"state", b"").decode()
        heartbeat = record.get(b"last_heartbeat", b"").decode()
        seen["age"] = (datetime.now(UTC) - datetime.fromisoformat(heartbeat.replace("Z", "+00:00"))).total_seconds()

    probe = threading.Thread(target=look_while_idle)
    probe.start()
    worker.work(burst=False, max_idle_time=3, logging_level="WARNING")  # ends after 3 s without a job
    probe.join()

    assert [j.get_status(refresh=True) for j in jobs] == ["finished"] * 20
    assert seen["state"] == WorkerStatus.IDLE
    assert isinstance(seen["ttl"], int) and seen["ttl"] >= worker.worker_ttl
    assert isinstance(seen["age"], float) and seen["age"] < 2.0


def test_a_suspended_worker_takes_no_job(client: redis.Redis) -> None:
    queue = Queue("workers-test", connection=client)
    job = queue.enqueue(len, "abc")
    suspend(client)
    try:
        FreezingWorker([queue], connection=client).work(burst=True, logging_level="WARNING")
        assert job.get_status(refresh=True) == "queued"
    finally:
        resume(client)
    FreezingWorker([queue], connection=client).work(burst=True, logging_level="WARNING")
    assert job.get_status(refresh=True) == "finished"


def test_a_finished_job_keeps_its_payload_as_read_and_a_replaced_one_is_saved_anew(client: redis.Redis) -> None:
    """RQ saves a job again as it finishes; the worker writes back the payload's bytes as it read them
    (here compressed at another level than RQ's, as another RQ version might), not compressed once more.
    A payload replaced while the job ran is saved as replaced."""
    queue = Queue("workers-test", connection=client)
    kept, replaced = queue.enqueue(len, "abc"), queue.enqueue(_replace_own_arguments, "abc")
    for job in (kept, replaced):
        client.hset(job.key, "data", zlib.compress(zlib.decompress(client.hget(job.key, "data")), 1))
    read = {job.id: client.hget(job.key, "data") for job in (kept, replaced)}
    FreezingWorker([queue], connection=client).work(burst=True, logging_level="WARNING")

    assert kept.get_status(refresh=True) == "finished" and kept.return_value() == 3
    assert client.hget(kept.key, "data") == read[kept.id]
    assert replaced.get_status(refresh=True) == "finished"
    stored = client.hget(replaced.key, "data")
    assert stored != read[replaced.id]
    assert Job.fetch(replaced.id, connection=client).args == ("replaced",)


def _replace_own_arguments(text: str) -> int:
    job = get_current_job()
    assert job is not None
    job.args = ("replaced",)
    return len(text)


@pytest.mark.parametrize("fork", [False, True])
def test_a_worker_killed_with_sigkill_takes_its_scheduler_process_with_it(
    tmp_path: Path, redis_url: str, fork: bool
) -> None:
    """RQ forks a scheduler process beside each worker; a worker killed with SIGKILL left it running, orphaned,
    until its Redis connection failed, while ``livebrief run`` started a new worker and scheduler beside it."""
    config = tmp_path / "lb.yaml"
    config.write_text(yaml.safe_dump({"topics_file": str(REPO / "config" / "topics.yaml"), "feeds": []}))
    command = [sys.executable, "-m", "livebrief.cli", "work", "--config", str(config), *(["--fork"] if fork else [])]
    worker = subprocess.Popen(command, env={**os.environ, "REDIS_URL": redis_url}, cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    scheduler: list[psutil.Process] = []
    try:
        process = psutil.Process(worker.pid)
        assert until(lambda: len(process.children()) == 1, 30), "the worker never started its scheduler"
        scheduler = process.children()

        worker.kill()
        worker.wait(10)

        _, alive = psutil.wait_procs(scheduler, timeout=15)
        assert alive == [], "the scheduler outlived its worker"
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
        for child in scheduler:
            if child.is_running():
                child.kill()
