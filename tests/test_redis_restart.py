"""A Redis restart under a running poller and worker: both reconnect and carry on, and so does RQ's scheduler;
a delivery worker whose Redis restarts mid-job carries on (or, stopped, finishes its job) without posting a
message twice; `livebrief run` keeps starting the workers that exit while Redis is down."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import redis
import structlog
import yaml

from livebrief.errors import WorkerExitedError
from livebrief.feedserver import FeedServer
from livebrief.redis_server import EmbeddedRedis, answers, free_port
from livebrief.supervisor import WorkerProcesses
from tests.conftest import REPO, TEST_SECRET, WebhookReceiver, make_config
from tests.helpers import make_item, rss, stop_session, stream_headlines, until
from worker.jobs import run_batch
from worker.runtime import configure


def wait_for_headline(url: str, headline: str, timeout: float) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=1)
    return until(lambda: headline in stream_headlines(client), timeout)


def start_run(tmp_path: Path, feed_server: FeedServer, redis_url: str,
              webhooks: list[dict[str, object]] | None = None) -> subprocess.Popen[bytes]:
    """`livebrief run` with one worker, following one feed that first holds one item."""
    feed_server.set("/r.xml", rss([("g1", "Harbour authority reopens northern pier")]))
    config = tmp_path / "lb.yaml"
    config.write_text(yaml.safe_dump({
        "topics_file": str(REPO / "config" / "topics.yaml"),
        "feeds": [{"id": "r", "name": "R", "url": feed_server.url("/r.xml"), "interval": 1}],
        "webhooks": webhooks or [],
        "polling": {"allow_private": True, "backoff_base": 1},
    }))
    return subprocess.Popen([sys.executable, "-m", "livebrief.cli", "run", "--workers", "1", "--config", str(config)],
                            env={**os.environ, "REDIS_URL": redis_url}, cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_poller_and_worker_ride_out_a_redis_restart(tmp_path: Path, feed_server: FeedServer) -> None:
    server = EmbeddedRedis().start()
    run = start_run(tmp_path, feed_server, server.url)
    try:
        assert wait_for_headline(server.url, "Harbour authority reopens northern pier", 30)
        server.stop()
        time.sleep(2)  # down for a while; both sides see connection errors
        server = EmbeddedRedis(port=server.port).start()
        feed_server.set("/r.xml", rss([("g2", "Regional library extends opening hours"),
                                       ("g1", "Harbour authority reopens northern pier")]))

        assert wait_for_headline(server.url, "Regional library extends opening hours", 60)
        assert run.poll() is None, "livebrief run exited instead of reconnecting"
    finally:
        stop_session(run)
        server.stop()


def test_a_webhook_retry_due_during_a_long_outage_is_sent_soon_after_redis_returns(
    tmp_path: Path, feed_server: FeedServer, webhook_receiver: WebhookReceiver,
) -> None:
    # Kept on disk across the restart (AOF), as a production Redis would keep the scheduled retry.
    durable = ["--appendonly", "yes", "--dir", str(tmp_path)]
    server = EmbeddedRedis(extra_args=durable).start()
    webhook_receiver.statuses = [500]
    run = start_run(tmp_path, feed_server, server.url, [
        {"id": "desk", "url": webhook_receiver.url, "secret": TEST_SECRET, "retry_intervals": [20]}])
    try:
        assert until(lambda: len(webhook_receiver.received) == 1, 30), "the first delivery was never tried"
        time.sleep(2)  # the failure is recorded and its retry scheduled, 20 s on
        server.stop()
        # Longer than a one-shot command's retries (~33 s): RQ's scheduler process used to exit meanwhile,
        # and RQ starts it again only at its next maintenance, up to 10 minutes later.
        time.sleep(40)
        server = EmbeddedRedis(port=server.port, extra_args=durable).start()

        assert until(lambda: len(webhook_receiver.delivered) == 1, 25), "the retry was not sent after the outage"
        assert run.poll() is None
    finally:
        stop_session(run)
        server.stop()


def test_run_stops_on_sigterm_while_redis_is_down(tmp_path: Path, feed_server: FeedServer) -> None:
    server = EmbeddedRedis().start()
    run = start_run(tmp_path, feed_server, server.url)
    try:
        assert wait_for_headline(server.url, "Harbour authority reopens northern pier", 30)
        server.stop()
        time.sleep(2)  # every process is now retrying

        os.killpg(run.pid, signal.SIGTERM)

        # Not a speed figure: it exits at once; a process that retried a refused connect again and again
        # (as one version did) never got here.
        run.wait(30)
    finally:
        if run.poll() is None:
            stop_session(run)
        server.stop()


def test_run_stops_on_sigterm_while_redis_is_frozen(tmp_path: Path, feed_server: FeedServer) -> None:
    """A Redis that accepts connections but never answers: stopped with SIGSTOP, as a frozen server or a
    partition that drops packets looks to its clients. They waited for a reply without end (RQ's workers for
    415 s), so SIGTERM did not stop `livebrief run` or its workers."""
    server = EmbeddedRedis().start()
    run = start_run(tmp_path, feed_server, server.url)
    assert server.process is not None
    try:
        assert wait_for_headline(server.url, "Harbour authority reopens northern pier", 30)
        os.kill(server.process.pid, signal.SIGSTOP)
        time.sleep(2)  # every process now waits on a reply, or will at its next command

        os.killpg(run.pid, signal.SIGTERM)

        # Not a speed figure: each process gives up waiting once its reply is overdue; before, none did.
        run.wait(60)
        assert not [p for p in psutil.process_iter(["cmdline"]) if str(tmp_path) in " ".join(p.info["cmdline"] or [])]
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
        if run.poll() is None:
            stop_session(run)
        server.stop()


class _OutageMidJob:
    """Five messages queued for one webhook on a Redis kept on disk, and a delivery worker (``livebrief work
    --queues deliveries``) posting them; Redis stops as the receiver gets the second POST, back 3 s later."""

    def __init__(self, tmp_path: Path, receiver: WebhookReceiver) -> None:
        self.durable = ["--appendonly", "yes", "--dir", str(tmp_path)]
        self.server = EmbeddedRedis(extra_args=self.durable).start()
        self.restarted: list[EmbeddedRedis] = []
        self.stopped = threading.Event()
        self.receiver = receiver
        config = make_config(self.server.url, [], webhooks=[
            {"id": "desk", "url": receiver.url, "secret": TEST_SECRET, "retry_intervals": [1, 1, 1]}])
        client = redis.Redis.from_url(self.server.url)
        run_batch(client, configure(config), [make_item("wire", n) for n in range(5)])
        client.close()
        path = tmp_path / "lb.yaml"
        path.write_text(yaml.safe_dump({"topics_file": str(REPO / "config" / "topics.yaml"), "feeds": [],
                                        "webhooks": [w.model_dump(mode="json") for w in config.webhooks]}))
        receiver.on_post = self._stop_redis_at_the_second
        self.worker_env = {**os.environ, "REDIS_URL": self.server.url, "LIVEBRIEF_CONFIG": str(path)}
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "livebrief.cli", "work", "--queues", "deliveries"], env=self.worker_env,
            cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _stop_redis_at_the_second(self, number: int) -> None:
        if number == 2:
            self.server.stop()
            self.stopped.set()
            threading.Thread(target=self._restart_later, daemon=True).start()

    def _restart_later(self) -> None:
        time.sleep(3)
        self.restarted.append(EmbeddedRedis(port=self.server.port, extra_args=self.durable).start())

    def posted(self) -> list[str]:
        return [r["headers"]["webhook-id"] for r in self.receiver.received]

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):  # its session already ended
            stop_session(self.worker)
        for each in (self.server, *self.restarted):
            each.stop()


def test_a_delivery_worker_rides_out_a_redis_restart_mid_job_and_sends_each_message_once(
    tmp_path: Path, webhook_receiver: WebhookReceiver,
) -> None:
    """The worker's next command needs a new connection while Redis refuses them: redis-py connected it
    without retrying, and RQ quit on the error, with three messages undelivered; the mark of the message
    posted during the outage was lost with its connection, so the job's retry would have posted it again."""
    outage = _OutageMidJob(tmp_path, webhook_receiver)
    try:
        assert until(lambda: len(webhook_receiver.delivered) >= 5, 60), "the worker stopped delivering"
        time.sleep(2)  # a message posted twice would have come by now (retries 1 s apart)

        assert outage.worker.poll() is None, "the worker quit"
        assert len(outage.posted()) == 5 and len(set(outage.posted())) == 5
    finally:
        outage.close()


def test_a_delivery_worker_stopped_while_redis_is_down_finishes_its_job_when_redis_returns(
    tmp_path: Path, webhook_receiver: WebhookReceiver,
) -> None:
    """SIGTERM is a warm shutdown: the worker finishes its job, which needs Redis to mark what it posted.
    Giving up at the signal left the message posted during the outage unmarked, posted again by the job's
    retry; and RQ's handler, writing the stop to Redis, raised its error into the job. The job, having
    posted for longer than a slice, hands its last messages to a job that a later worker runs."""
    outage = _OutageMidJob(tmp_path, webhook_receiver)
    try:
        assert outage.stopped.wait(60)
        time.sleep(1)
        outage.worker.terminate()
        assert outage.worker.wait(60) == 0

        later = subprocess.run([sys.executable, "-m", "livebrief.cli", "work", "--burst", "--queues", "deliveries"],
                               env=outage.worker_env, cwd=REPO, capture_output=True, text=True, timeout=120)
        assert later.returncode == 0, later.stderr
        assert len(outage.posted()) == 5 and len(set(outage.posted())) == 5
    finally:
        outage.close()


def test_run_keeps_starting_a_worker_that_died_while_redis_is_down(tmp_path: Path, feed_server: FeedServer) -> None:
    """A worker started while Redis is down exits at once (it never reached it). Counted as quick exits,
    three of them stopped `livebrief run` ~7 s into an outage that the rest of it rides out."""
    durable = ["--appendonly", "yes", "--dir", str(tmp_path)]
    server = EmbeddedRedis(extra_args=durable).start()
    run = start_run(tmp_path, feed_server, server.url)
    try:
        assert wait_for_headline(server.url, "Harbour authority reopens northern pier", 30)
        workers = [p for p in psutil.Process(run.pid).children() if "work" in p.cmdline()]
        server.stop()
        for worker in workers:
            worker.kill()
        time.sleep(20)  # three restarts and more: each exits at once
        assert run.poll() is None, "livebrief run stopped"

        server = EmbeddedRedis(port=server.port, extra_args=durable).start()
        feed_server.set("/r.xml", rss([("g2", "Regional library extends opening hours"),
                                       ("g1", "Harbour authority reopens northern pier")]))
        assert wait_for_headline(server.url, "Regional library extends opening hours", 60)
    finally:
        stop_session(run)
        server.stop()


def test_workers_exiting_at_once_while_redis_is_down_are_started_again_without_end(tmp_path: Path) -> None:
    """What `livebrief run` does with its workers while Redis is down (`livebrief/supervisor.py`): each
    exits at once, and is started again; three such exits in a row used to stop `run` with an error."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    config = tmp_path / "lb.yaml"
    config.write_text(yaml.safe_dump({"topics_file": str(REPO / "config" / "topics.yaml"), "feeds": []}))
    workers = WorkerProcesses([["--queues", "ingest"]], {**os.environ, "REDIS_URL": url,
                                                        "LIVEBRIEF_CONFIG": str(config)}, lambda: answers(url))
    errors: list[WorkerExitedError] = []
    done = threading.Event()
    watcher = threading.Thread(target=workers.watch, args=(done, errors.append), daemon=True)
    with structlog.testing.capture_logs() as logs:
        workers.start()
        watcher.start()
        # Not a timing figure: long enough for three quick exits with the old pauses (1 s, 2 s), and more.
        until(lambda: errors, 15)
        done.set()
        watcher.join()
        workers.stop()

    assert errors == []
    assert sum(1 for line in logs if line["event"] == "worker_exited_redis_down") >= 2
