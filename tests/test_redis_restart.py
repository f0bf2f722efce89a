"""A Redis restart under a running poller and worker: both reconnect and carry on, and so does RQ's scheduler;
a delivery worker restarted under mid-job carries on without sending a message twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import redis
import yaml

from livebrief.feedserver import FeedServer
from livebrief.redis_server import EmbeddedRedis
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


def test_a_delivery_worker_rides_out_a_redis_restart_mid_job_and_sends_each_message_once(
    tmp_path: Path, webhook_receiver: WebhookReceiver,
) -> None:
    """Redis stops as the receiver gets the second of five POSTs and is back 3 s later. The worker's next
    command needs a new connection while Redis refuses them: redis-py connected it without retrying, and RQ
    quit on the error, with three messages undelivered; the mark of the message posted during the outage
    was lost with its connection, so the job's retry would have posted it again."""
    durable = ["--appendonly", "yes", "--dir", str(tmp_path)]
    server = EmbeddedRedis(extra_args=durable).start()
    config = make_config(server.url, [], webhooks=[
        {"id": "desk", "url": webhook_receiver.url, "secret": TEST_SECRET, "retry_intervals": [1, 1, 1]}])
    client = redis.Redis.from_url(server.url)
    run_batch(client, configure(config), [make_item("wire", n) for n in range(5)])
    client.close()
    path = tmp_path / "lb.yaml"
    path.write_text(yaml.safe_dump({"topics_file": str(REPO / "config" / "topics.yaml"), "feeds": [],
                                    "webhooks": [w.model_dump(mode="json") for w in config.webhooks]}))
    restarted: list[EmbeddedRedis] = []

    def restart_later() -> None:
        time.sleep(3)
        restarted.append(EmbeddedRedis(port=server.port, extra_args=durable).start())

    def stop_redis_at_the_second(number: int) -> None:
        if number == 2:
            server.stop()
            threading.Thread(target=restart_later, daemon=True).start()

    webhook_receiver.on_post = stop_redis_at_the_second
    worker = subprocess.Popen([sys.executable, "-m", "livebrief.cli", "work", "--queues", "deliveries"],
                              env={**os.environ, "REDIS_URL": server.url, "LIVEBRIEF_CONFIG": str(path)},
                              cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert until(lambda: len(webhook_receiver.delivered) >= 5, 60), "the worker stopped delivering"
        time.sleep(2)  # a message posted twice would have come by now (retries 1 s apart)

        assert worker.poll() is None, "the worker quit"
        ids = [r["headers"]["webhook-id"] for r in webhook_receiver.received]
        assert len(ids) == 5 and len(set(ids)) == 5
    finally:
        stop_session(worker)
        for each in (server, *restarted):
            each.stop()
