"""Webhooks: Standard Webhooks signatures, topic filters, retries, dead letters and replay, on real parts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import cast

import pytest
import redis
import yaml
from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry

from feeds.status import prometheus, read_counters
from livebrief.config import Config
from livebrief.ingest import enqueue_batches, enqueue_new_items
from livebrief.keys import Keys, job_id_part
from livebrief.queues import LivebriefQueue
from livebrief.recovery import recover_abandoned
from livebrief.redis_client import connect, retry_options
from livebrief.workers import run_worker
from tests.conftest import REPO, TEST_SECRET, WebhookReceiver, make_config
from tests.helpers import make_item
from worker import marks
from worker.jobs import run_batch
from worker.notify import (
    BUSY_DEFAULT_SECONDS,
    BUSY_MAX_SECONDS,
    BUSY_MIN_SECONDS,
    DeliveryMarks,
    busy_wait,
    enqueue_delivery_batch,
    render_message,
    render_payload,
    sign,
    verify,
)
from worker.runtime import configure

KEYS = Keys("livebrief")


def test_signature_matches_the_standard_webhooks_test_vector() -> None:
    # The example in the Standard Webhooks specification.
    assert sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                b'{"test": 2432232314}') == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_verify_rejects_tampered_body_wrong_secret_and_stale_timestamp() -> None:
    body = b'{"a":1}'
    now = 1_700_000_000
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(now),
               "webhook-signature": sign(TEST_SECRET, "msg_1", now, body)}
    assert verify(TEST_SECRET, headers, body, now=now)
    assert not verify(TEST_SECRET, headers, b'{"a":2}', now=now)
    assert not verify("whsec_" + "b3RoZXItc2VjcmV0LW90aGVyLXNlY3JldA==", headers, body, now=now)
    assert not verify(TEST_SECRET, headers, body, now=now + 3600)


def _config(redis_url: str, receiver: WebhookReceiver, **hook: object) -> Config:
    return make_config(redis_url, [], webhooks=[
        {"id": "desk", "url": receiver.url, "secret": TEST_SECRET, "retry_intervals": [1, 1, 1], **hook},
    ])


def _config_file(tmp_path: Path, config: Config) -> Path:
    """``config``'s webhooks as a config file, for the CLI run in a subprocess."""
    path = tmp_path / "lb.yaml"
    path.write_text(yaml.safe_dump({"topics_file": str(REPO / "config" / "topics.yaml"), "feeds": [],
                                    "webhooks": [w.model_dump(mode="json") for w in config.webhooks]}))
    return path


def test_webhook_receives_only_entries_of_its_topics(
    client: redis.Redis, redis_url: str, webhook_receiver: WebhookReceiver
) -> None:
    runtime = configure(_config(redis_url, webhook_receiver, topics=["strikes"]))
    strike = make_item("wire", 1, title="Missile strike destroys bridge in Kharkiv region",
                       text="A missile strike destroyed a road bridge in the Kharkiv region overnight, officials said.")
    other = make_item("wire", 2)
    run_batch(client, runtime, [strike, other])
    assert [job.description for job in Queue(KEYS.delivery_queue, connection=client).get_jobs()] == [
        "deliveries to desk: 1"]

    run_worker(runtime.config, client, burst=True, simple=True)

    assert [r["body"]["data"]["headline"] for r in webhook_receiver.delivered] == [
        "Missile strike destroys bridge in Kharkiv region"]
    assert webhook_receiver.delivered[0]["body"]["type"] == "entry.created"


def test_down_receiver_gets_every_delivery_once_after_it_returns(
    client: redis.Redis, redis_url: str, webhook_receiver: WebhookReceiver
) -> None:
    runtime = configure(_config(redis_url, webhook_receiver))
    webhook_receiver.stop()  # down: connection refused
    run_batch(client, runtime, [make_item("wire", n) for n in range(4)])
    run_worker(runtime.config, client, burst=True, simple=True)  # first attempts fail
    webhook_receiver.status = 503
    webhook_receiver.start()  # back, but still failing
    time.sleep(1.2)
    run_worker(runtime.config, client, burst=True, simple=True)  # second attempts: 503
    webhook_receiver.status = 200
    time.sleep(1.2)

    run_worker(runtime.config, client, burst=True, simple=True)  # third attempts succeed

    ids = [r["headers"]["webhook-id"] for r in webhook_receiver.delivered]
    assert len(ids) == 4 and len(set(ids)) == 4
    # One delivery job carries the batch's 4 entries and stops at the first failure: one 503, not four.
    assert sum(1 for r in webhook_receiver.received if r["answered"] == 503) == 1
    assert client.llen(KEYS.deadletter) == 0


def test_a_delivery_batch_failing_midway_resumes_after_what_it_delivered(
    client: redis.Redis, redis_url: str, webhook_receiver: WebhookReceiver
) -> None:
    runtime = configure(_config(redis_url, webhook_receiver))
    webhook_receiver.statuses = [200, 200, 500]  # the third POST of the batch fails
    run_batch(client, runtime, [make_item("wire", n) for n in range(5)])
    run_worker(runtime.config, client, burst=True, simple=True)
    assert len(webhook_receiver.delivered) == 2
    time.sleep(1.2)

    run_worker(runtime.config, client, burst=True, simple=True)  # the retry

    ids = [r["headers"]["webhook-id"] for r in webhook_receiver.delivered]
    assert len(ids) == 5 and len(set(ids)) == 5  # each once: the first two were not sent again
    assert len(webhook_receiver.received) == 6
    published = [json.loads(f[b"entry"]) for _, f in client.xrange(KEYS.entries_stream)]
    assert ids == [f"msg_{e['id']}_v{e['version']}" for e in published]  # in the order they were published
    assert client.llen(KEYS.deadletter) == 0


def _published_ids(client: redis.Redis) -> list[str]:
    return [f"msg_{e['id']}_v{e['version']}" for e in
            (json.loads(f[b"entry"]) for _, f in client.xrange(KEYS.entries_stream))]


def test_deliveries_are_remembered_as_packed_marks_and_no_job_sends_one_twice(
    client: redis.Redis, redis_url: str, webhook_receiver: WebhookReceiver
) -> None:
    """A delivery is remembered as a 64-bit mark in a generation's intset (8 bytes), not as a string key
    of its own (~130 bytes for seen_ttl); and any later job carrying the same message, a replay run twice
    say, skips it."""
    runtime = configure(_config(redis_url, webhook_receiver))
    run_batch(client, runtime, [make_item("wire", n) for n in range(30)])
    run_worker(runtime.config, client, burst=True, simple=True)
    assert len(webhook_receiver.delivered) == 30

    assert list(client.scan_iter(match="livebrief:delivered:*")) == []
    sets = list(client.scan_iter(match="livebrief:dmark:*"))
    assert sum(client.scard(key) for key in sets) == 30
    ttl = runtime.config.worker.seen_ttl
    for key in sets:
        assert client.object("encoding", key) == b"intset"
        generation = int(key.decode().split(":")[2])
        assert client.expiretime(key) == marks.expires_at(generation, ttl)

    published = client.xrange(KEYS.entries_stream)
    messages = [(msg_id, fields[b"entry"].decode())
                for msg_id, (_, fields) in zip(_published_ids(client), published, strict=True)]
    queue = Queue(KEYS.delivery_queue, connection=client)
    with client.pipeline() as pipe:  # the first ten again, as a second replay of them would queue them
        enqueue_delivery_batch(queue, runtime.config.webhooks[0], messages[:10], pipe, 60)
        pipe.execute()
    run_worker(runtime.config, client, burst=True, simple=True)
    assert len(webhook_receiver.received) == 30


def test_a_delivery_marked_as_earlier_versions_marked_it_is_not_sent_again(
    client: redis.Redis, redis_url: str, webhook_receiver: WebhookReceiver
) -> None:
    """Deliveries marked before an upgrade (a string key each) still count until those keys expire."""
    runtime = configure(_config(redis_url, webhook_receiver))
    webhook_receiver.status = 500
    run_batch(client, runtime, [make_item("wire", n) for n in range(3)])
    run_worker(runtime.config, client, burst=True, simple=True)  # the first attempt fails
    first = _published_ids(client)[0]
    client.set(KEYS.legacy_delivered(f"desk:{first}"), "1", ex=3600)
    webhook_receiver.status = 200
    time.sleep(1.2)

    run_worker(runtime.config, client, burst=True, simple=True)  # the retry

    assert [r["headers"]["webhook-id"] for r in webhook_receiver.delivered] == _published_ids(client)[1:]


def test_a_delivery_worker_killed_midway_sends_again_only_the_message_it_was_posting(
    tmp_path: Path, client: redis.Redis, redis_url: str, webhook_receiver: WebhookReceiver
) -> None:
    """Each POST is marked delivered as soon as it is answered, not when the job ends: a worker that dies
    mid-job (SIGKILL, no chance to clean up) leaves the marks of what it delivered, so the retry resumes
    there. Only the POST in flight, which the receiver got but the worker never saw answered, goes twice."""
    runtime = configure(_config(redis_url, webhook_receiver, retry_intervals=[0]))
    run_batch(client, runtime, [make_item("wire", n) for n in range(5)])
    env = {**os.environ, "REDIS_URL": redis_url, "LIVEBRIEF_CONFIG": str(_config_file(tmp_path, runtime.config))}
    command = [sys.executable, "-m", "livebrief.cli", "work", "--burst", "--queues", "deliveries"]
    worker = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill_at_the_third(number: int) -> None:
        if number == 3:
            worker.kill()
            worker.wait(10)

    webhook_receiver.on_post = kill_at_the_third
    assert worker.wait(60) == -9
    webhook_receiver.on_post = None
    assert len(webhook_receiver.received) == 3

    rerun = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)

    assert rerun.returncode == 0, rerun.stderr
    ids = [r["headers"]["webhook-id"] for r in webhook_receiver.received]
    published = [json.loads(f[b"entry"]) for _, f in client.xrange(KEYS.entries_stream)]
    order = [f"msg_{e['id']}_v{e['version']}" for e in published]
    assert ids == [*order[:3], *order[2:]]  # the first two were not sent again
    assert client.llen(KEYS.deadletter) == 0
    # Counted with the marks: the message POSTed twice counts once, as delivered.
    assert read_counters(client, KEYS).delivered == {"desk": 5}


def test_a_message_marked_delivered_by_two_racing_jobs_counts_once(client: redis.Redis) -> None:
    marks = DeliveryMarks(client, KEYS, "desk", 7 * 86400)
    for msg_id in ("msg_s1_v1", "msg_s1_v1", "msg_s2_v1"):  # the first twice: two jobs both posted it
        marks.add(msg_id)
    marks.close()

    assert read_counters(client, KEYS).delivered == {"desk": 2}


def test_marks_a_slow_receiver_spreads_over_more_than_the_health_check_interval_are_all_read(
    client: redis.Redis, redis_url: str
) -> None:
    # The client PINGs a connection idle for health_check_interval before its next command; between two
    # marks of a slow receiver's job that PING read an earlier mark's reply, the connection was dropped with
    # the other replies, and close() waited for them until the job's timeout.
    checked = connect(redis_url, **{**retry_options(), "health_check_interval": 1})
    marks = DeliveryMarks(checked, KEYS, "slow", 7 * 86400)
    marks.add("msg_s1_v1")
    time.sleep(1.5)
    marks.add("msg_s2_v1")
    closed = threading.Thread(target=marks.close, daemon=True)
    closed.start()
    closed.join(10)

    assert not closed.is_alive()
    assert read_counters(client, KEYS).delivered == {"slow": 2}
    checked.close()

def test_exhausted_deliveries_are_dead_lettered_and_replayed_by_the_cli(
    tmp_path: Path, client: redis.Redis, redis_url: str, webhook_receiver: WebhookReceiver
) -> None:
    runtime = configure(_config(redis_url, webhook_receiver, retry_intervals=[1]))
    webhook_receiver.status = 500
    run_batch(client, runtime, [make_item("wire", n) for n in range(3)])
    (job,) = Queue(KEYS.delivery_queue, connection=client).get_jobs()
    run_worker(runtime.config, client, burst=True, simple=True)
    time.sleep(1.2)
    run_worker(runtime.config, client, burst=True, simple=True)  # the last retry fails too
    assert client.llen(KEYS.deadletter) == 3
    first_ids = {json.loads(raw)["delivery"] for raw in client.lrange(KEYS.deadletter, 0, -1)}
    assert {r["headers"]["webhook-id"] for r in webhook_receiver.received} <= first_ids

    webhook_receiver.status = 200
    path = _config_file(tmp_path, runtime.config)
    env = {**os.environ, "REDIS_URL": redis_url}
    metrics = subprocess.run([sys.executable, "-m", "livebrief.cli", "metrics", "--config", str(path)],
                             env=env, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert 'livebrief_webhook_dead_letters_total{webhook="desk"} 3' in metrics.stdout
    assert "livebrief_dead_letters 3" in metrics.stdout
    assert "livebrief_webhook_deliveries_total{" not in metrics.stdout
    listing = subprocess.run([sys.executable, "-m", "livebrief.cli", "webhooks", "--config", str(path)],
                             env=env, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert "dead-lettered=3" in listing.stdout
    replay = subprocess.run([sys.executable, "-m", "livebrief.cli", "webhooks", "replay", "--config", str(path)],
                            env=env, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert replay.returncode == 0, replay.stderr
    assert "re-queued 3" in replay.stdout
    run_worker(runtime.config, client, burst=True, simple=True)

    delivered = [r["headers"]["webhook-id"] for r in webhook_receiver.delivered]
    assert sorted(delivered) == sorted(first_ids)  # same webhook-id on replay: receivers can dedupe
    assert delivered == [msg_id for msg_id, _ in job.args[1]]  # and in the order they were published
    assert client.llen(KEYS.deadletter) == 0
    counters = read_counters(client, KEYS)
    assert (counters.delivered, counters.dead_letters) == ({"desk": 3}, {"desk": 3})


def test_messages_past_max_age_are_dead_lettered_not_posted_and_a_replay_posts_them_however_late(
    tmp_path: Path, client: redis.Redis, redis_url: str, webhook_receiver: WebhookReceiver
) -> None:
    runtime = configure(_config(redis_url, webhook_receiver, max_age=1))
    run_batch(client, runtime, [make_item("wire", n) for n in range(3)])
    (job,) = Queue(KEYS.delivery_queue, connection=client).get_jobs()
    ids = [msg_id for msg_id, _ in job.args[1]]
    time.sleep(1.2)  # the receiver fell behind: its worker comes too late for these
    run_worker(runtime.config, client, burst=True, simple=True)
    assert webhook_receiver.received == []
    letters = [json.loads(raw) for raw in client.lrange(KEYS.deadletter, 0, -1)]
    assert sorted(letter["delivery"] for letter in letters) == sorted(ids)
    assert all("max_age" in letter["error"] for letter in letters)
    assert read_counters(client, KEYS).dead_letters == {"desk": 3}

    env = {**os.environ, "REDIS_URL": redis_url}
    replay = subprocess.run([sys.executable, "-m", "livebrief.cli", "webhooks", "replay", "--config",
                             str(_config_file(tmp_path, runtime.config))],
                            env=env, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert "re-queued 3" in replay.stdout, replay.stdout + replay.stderr
    time.sleep(1.2)  # still behind: a replay is posted however late (QA: they expired again)
    run_worker(runtime.config, client, burst=True, simple=True)
    assert [r["headers"]["webhook-id"] for r in webhook_receiver.delivered] == ids  # in order, oldest first
    assert client.llen(KEYS.deadletter) == 0


def test_a_job_with_late_and_fresh_messages_dead_letters_the_late_and_posts_the_fresh_in_order(
    client: redis.Redis, redis_url: str, webhook_receiver: WebhookReceiver
) -> None:
    runtime = configure(_config(redis_url, webhook_receiver, max_age=60))
    run_batch(client, runtime, [make_item("wire", n) for n in range(4)])
    (job,) = Queue(KEYS.delivery_queue, connection=client).get_jobs()
    messages = [list(m) for m in job.args[1]]
    for message in messages[:2]:  # published two minutes ago
        entry = json.loads(message[1])
        entry["updated"] = datetime.fromtimestamp(time.time() - 120).astimezone().isoformat()
        message[1] = json.dumps(entry)
    job.delete()
    with client.pipeline() as pipe:
        enqueue_delivery_batch(LivebriefQueue.deliveries(KEYS, client), runtime.config.webhooks[0], messages, pipe, 60)
        pipe.execute()
    run_worker(runtime.config, client, burst=True, simple=True)  # the job, then the one it hands the fresh to
    assert [r["headers"]["webhook-id"] for r in webhook_receiver.delivered] == [m[0] for m in messages[2:]]
    assert sorted(json.loads(raw)["delivery"] for raw in client.lrange(KEYS.deadletter, 0, -1)) == sorted(
        m[0] for m in messages[:2])
    assert client.zcard(KEYS.webhook_lanes("desk")) == 0  # the lane handed on was freed at the end


def test_past_dead_letters_max_the_oldest_dead_letters_are_dropped_and_counted(
    tmp_path: Path, client: redis.Redis, redis_url: str, webhook_receiver: WebhookReceiver
) -> None:
    config = make_config(redis_url, [], worker={"dead_letters_max": 2}, webhooks=[
        {"id": "desk", "url": webhook_receiver.url, "secret": TEST_SECRET, "retry_intervals": [1]}])
    runtime = configure(config)
    webhook_receiver.status = 500
    run_batch(client, runtime, [make_item("wire", n) for n in range(3)])
    (job,) = Queue(KEYS.delivery_queue, connection=client).get_jobs()
    first, *newer = [msg_id for msg_id, _ in job.args[1]]
    run_worker(runtime.config, client, burst=True, simple=True)
    time.sleep(1.2)
    run_worker(runtime.config, client, burst=True, simple=True)  # the last retry fails: 3 dead letters
    kept = [json.loads(raw)["delivery"] for raw in client.lrange(KEYS.deadletter, 0, -1)]
    assert sorted(kept) == sorted(newer) and first not in kept
    counters = read_counters(client, KEYS)
    assert (counters.dead_letters, counters.dead_letters_dropped) == ({"desk": 3}, {"desk": 1})

    path = _config_file(tmp_path, runtime.config)
    env = {**os.environ, "REDIS_URL": redis_url}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "livebrief.cli", *args, "--config", str(path)],
                              env=env, capture_output=True, text=True, timeout=60, cwd=REPO)

    listing = cli("webhooks")
    assert "dead-lettered=2 dead-letters-dropped=1" in listing.stdout, listing.stdout + listing.stderr
    assert 'livebrief_webhook_dead_letters_dropped_total{webhook="desk"} 1' in cli("metrics").stdout

    typo = cli("webhooks", "clear", "--webhook", "dsek")
    assert typo.returncode == 2 and "no webhook 'dsek'" in typo.stderr and client.llen(KEYS.deadletter) == 2
    path.write_text(path.read_text().replace("id: desk", "id: newsdesk"))  # the webhook renamed
    assert "desk                     (not configured)" in cli("webhooks").stdout  # found, so it can be cleared
    cleared = cli("webhooks", "clear", "--webhook", "desk")
    assert "deleted 2 dead-lettered deliveries" in cleared.stdout, cleared.stdout + cleared.stderr
    assert client.llen(KEYS.deadletter) == 0


def _wait_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


def test_a_receiver_asking_to_wait_gets_the_rest_after_its_retry_after_without_a_retry_used(
    client: redis.Redis, redis_url: str, webhook_receiver: WebhookReceiver
) -> None:
    # A first retry would be due after 1 s; a wait is put off (no retry used) while the messages have waited
    # no longer than the retries would take (5 s here)
    runtime = configure(_config(redis_url, webhook_receiver, retry_intervals=[1, 1, 3]))
    webhook_receiver.statuses = [200, 429]  # the second POST: "too many requests"
    # 4 s: the check below runs 1.3 s after the answer, and a loaded machine may take seconds to start a worker
    webhook_receiver.retry_after = "4"
    run_batch(client, runtime, [make_item("wire", n) for n in range(4)])
    (job,) = Queue(KEYS.delivery_queue, connection=client).get_jobs()

    run_worker(runtime.config, client, burst=True, simple=True)
    assert [r["answered"] for r in webhook_receiver.received] == [200, 429]
    asked = webhook_receiver.received[1]["at"]
    assert job.get_status() == "finished"  # put off, not failed: no retry used
    _wait_until(asked + 1.3)
    run_worker(runtime.config, client, burst=True, simple=True)  # a retry would be due by now; the wait is not
    assert len(webhook_receiver.received) == 2

    give_up = time.time() + 8
    while len(webhook_receiver.delivered) < 4 and time.time() < give_up:
        run_worker(runtime.config, client, burst=True, simple=True)
        time.sleep(0.2)

    assert webhook_receiver.received[2]["at"] - asked >= 4.0
    ids = [r["headers"]["webhook-id"] for r in webhook_receiver.delivered]
    assert ids == _published_ids(client)  # each once, in the order published
    assert client.llen(KEYS.deadletter) == 0
    assert not FailedJobRegistry(KEYS.delivery_queue, connection=client).get_job_ids()
    counters = read_counters(client, KEYS)
    assert (counters.delivered, counters.deferred) == ({"desk": 4}, {"desk": 1})
    assert 'livebrief_webhook_deferrals_total{webhook="desk"} 1' in prometheus([], {}, 0, counters, 0)


def test_jobs_for_a_webhook_that_asked_to_wait_do_not_call_it_before_the_wait_ends(
    tmp_path: Path, client: redis.Redis, redis_url: str, webhook_receiver: WebhookReceiver
) -> None:
    runtime = configure(_config(redis_url, webhook_receiver))
    webhook_receiver.statuses = [503]  # a 503 with Retry-After is a wait too; answered to the first POST only
    webhook_receiver.retry_after = "2"
    run_batch(client, runtime, [make_item("wire", n) for n in range(3)])
    run_batch(client, runtime, [make_item("wire", n) for n in range(3, 6)])
    assert len(Queue(KEYS.delivery_queue, connection=client).get_jobs()) == 2

    run_worker(runtime.config, client, burst=True, simple=True)  # the second job finds the webhook held
    assert [r["answered"] for r in webhook_receiver.received] == [503]
    held = float(client.get(KEYS.webhook_hold("desk")) or 0)
    assert held - webhook_receiver.received[0]["at"] >= 1.9
    listing = subprocess.run([sys.executable, "-m", "livebrief.cli", "webhooks", "--config",
                              str(_config_file(tmp_path, runtime.config))], env={**os.environ, "REDIS_URL": redis_url},
                             capture_output=True, text=True, timeout=60, cwd=REPO)
    assert "waiting-until=" in listing.stdout, listing.stderr

    _wait_until(held + 1.1)
    run_worker(runtime.config, client, burst=True, simple=True)

    assert all(r["at"] >= held for r in webhook_receiver.received[1:])
    ids = [r["headers"]["webhook-id"] for r in webhook_receiver.delivered]
    assert ids == _published_ids(client)  # both jobs waited, and came back in the order they were queued
    assert read_counters(client, KEYS).deferred == {"desk": 2}


def test_a_receiver_that_never_stops_asking_to_wait_is_dead_lettered_after_the_retry_schedule(
    client: redis.Redis, redis_url: str, webhook_receiver: WebhookReceiver
) -> None:
    # Waiting is bounded by the retry schedule: here 2 s of waits, then the two retries, then dead letters.
    runtime = configure(_config(redis_url, webhook_receiver, retry_intervals=[1, 1]))
    webhook_receiver.status = 429
    webhook_receiver.retry_after = "1"
    run_batch(client, runtime, [make_item("wire", n) for n in range(2)])
    give_up = time.time() + 20
    while client.llen(KEYS.deadletter) < 2 and time.time() < give_up:
        run_worker(runtime.config, client, burst=True, simple=True)
        time.sleep(0.3)

    assert client.llen(KEYS.deadletter) == 2
    assert webhook_receiver.delivered == []
    counters = read_counters(client, KEYS)
    assert counters.dead_letters == {"desk": 2} and counters.deferred.get("desk", 0) >= 1
    # Each call was for the first message of the job: a wait or a failure stops it.
    assert {r["headers"]["webhook-id"] for r in webhook_receiver.received} == {_published_ids(client)[0]}


def test_how_long_an_answer_asks_deliveries_to_wait() -> None:
    now = 1_700_000_000.0
    assert busy_wait(429, "3", now) == 3.0
    assert busy_wait(429, None, now) == BUSY_DEFAULT_SECONDS  # "too many requests" always waits
    assert busy_wait(429, "soon", now) == BUSY_DEFAULT_SECONDS
    assert busy_wait(429, "0", now) == BUSY_MIN_SECONDS
    assert busy_wait(429, "86400", now) == BUSY_MAX_SECONDS
    assert busy_wait(503, "Tue, 14 Nov 2023 22:13:50 GMT", now) == 30.0  # an HTTP date: 30 s after ``now``
    assert busy_wait(503, None, now) is None  # a plain 503 is a failure: retried on the schedule
    assert busy_wait(500, "3", now) is None
    assert busy_wait(200, None, now) is None


def test_watchdog_thread_recovers_an_abandoned_delivery_and_runs_its_failure_callback(
    client: redis.Redis, redis_url: str, webhook_receiver: WebhookReceiver
) -> None:
    """The recovery watchdog runs in a thread; a delivery job carries a failure callback, which RQ would
    time with SIGALRM, impossible outside the main thread (this killed the watchdog once)."""
    runtime = configure(_config(redis_url, webhook_receiver, retry_intervals=[]))
    run_batch(client, runtime, [make_item("wire", 1)])
    queue = Queue(KEYS.delivery_queue, connection=client)
    job_id = queue.get_job_ids()[0]
    queue.remove(job_id)
    registry = StartedJobRegistry(queue=queue)
    client.zadd(registry.key, {f"{job_id}:gone": time.time() + 600})  # started by a worker now dead
    results: list[object] = []
    thread = threading.Thread(target=lambda: results.append(recover_abandoned(client, KEYS, [queue.name])))
    thread.start()
    thread.join(30)

    assert results == [1]
    assert registry.get_job_ids(cleanup=False) == []
    assert client.llen(KEYS.deadletter) == 1  # no retries left: the callback dead-lettered it


def test_slack_payload_is_a_text_message_with_sources(redis_url: str, webhook_receiver: WebhookReceiver) -> None:
    from livebrief.models import Entry, Source

    config = make_config(redis_url, [], webhooks=[{"id": "s", "url": webhook_receiver.url, "format": "slack"}])
    entry = Entry(id="s1", version=2, status="updated", headline="Shelling hits Kharkiv", summary="Three killed.",
                  topics=["strikes"], sources=[Source(feed="a", name="Wire A", url="https://a.example/1")],
                  published=None, updated="2022-03-29T06:00:00Z")
    body = json.loads(render_payload(config.webhooks[0], entry))
    assert body["text"].startswith("*Update: Shelling hits Kharkiv*")
    assert "<https://a.example/1|Wire A>" in body["text"] and "#strikes" in body["text"]

    many = entry.model_copy(update={"sources": [Source(feed=f"f{n}", name=f"Wire {n}", url=f"https://{n}.example/1")
                                                for n in range(8)]})
    text = json.loads(render_payload(config.webhooks[0], many))["text"]
    assert "<https://4.example/1|Wire 4>" in text and "Wire 5" not in text  # the first five, in order
    assert "and 3 more" in text


def test_slack_shows_feed_text_literally_never_as_mentions_or_broken_links(redis_url: str) -> None:
    # Slack reads '&', '<' and '>' as control characters: unescaped, a feed could ping a channel.
    from livebrief.models import Entry, Source

    config = make_config(redis_url, [], webhooks=[{"id": "s", "url": "http://127.0.0.1:9/", "format": "slack"}])
    entry = Entry(id="s1", version=1, status="new", headline="AT&T shares > 5% <!here>",
                  summary="Kyiv <@U024BE7LH> said 3 < 5.", topics=[],
                  sources=[Source(feed="a", name="Wire <A> & Co", url="https://a.example/1?x=1&y=a|b")],
                  published=None, updated="2022-03-29T06:00:00Z")
    text = json.loads(render_payload(config.webhooks[0], entry))["text"]
    assert text.split("\n") == [
        "*AT&amp;T shares &gt; 5% &lt;!here&gt;*",
        "Kyiv &lt;@U024BE7LH&gt; said 3 &lt; 5.",
        "_<https://a.example/1?x=1&amp;y=a%7Cb|Wire &lt;A&gt; &amp; Co>_",
    ]

@pytest.mark.parametrize("fmt", ["standard", "slack"])
def test_a_queued_entry_renders_as_the_entry_itself_would(redis_url: str, fmt: str) -> None:
    """Deliveries render the entry JSON as queued (``render_message``) without rebuilding the ``Entry``; the
    body must be the same JSON value ``render_payload`` gives for the entry, for every status and for text
    outside ASCII, and its ``data`` the stream's JSON unchanged."""
    from livebrief.models import Entry, Source

    config = make_config(redis_url, [], webhooks=[{"id": "w", "url": "http://127.0.0.1:9/", "format": fmt,
                                                   "secret": TEST_SECRET}])
    webhook = config.webhooks[0]
    for status, updated in (("new", "2022-03-29T06:00:00Z"), ("updated", "2022-03-29T06:00:00.250000Z"),
                            ("withdrawn", "2022-03-29T06:00:00+00:00")):
        entry = Entry(id="s1", version=3, status=status, headline="Обстріл Харкова: «три загиблих»",
                      summary="Shelling hit Kharkiv – officials said 3 killed.", topics=["strikes", "humanitarian"],
                      sources=[Source(feed="a", name="Wire Ä", url="https://a.example/1?x=1&y=ü")],
                      published=None, updated=updated)
        stored = entry.model_dump_json()

        body = render_message(webhook, stored)

        assert json.loads(body) == json.loads(render_payload(webhook, entry))
        if fmt == "standard":
            assert body.endswith(b',"data":' + stored.encode() + b"}")


@pytest.mark.parametrize(("order", "expected"), [
    ("alternate", ["ingest", "delivery", "ingest", "delivery", "ingest", "delivery"]),
    ("ingest_first", ["ingest", "ingest", "ingest", "delivery", "delivery", "delivery"]),
])
def test_a_worker_on_both_queues_takes_them_in_the_configured_order(
    client: redis.Redis, redis_url: str, webhook_receiver: WebhookReceiver, order: str, expected: list[str]
) -> None:
    """With deliveries waiting behind a backlog of ingest jobs, ``alternate`` takes one after each ingest job;
    ``ingest_first`` lets them wait until the ingest queue is empty."""
    config = _config(redis_url, webhook_receiver)
    config = config.model_copy(update={"worker": config.worker.model_copy(update={"queue_order": order})})
    runtime = configure(config)
    for batch in range(3):  # three delivery jobs waiting
        run_batch(client, runtime, [make_item("wire", 10 * batch + n) for n in range(2)])
    enqueue_batches(Queue(KEYS.ingest_queue, connection=client),
                    [make_item("agency", n) for n in range(3)], config.worker, label="test", size=1)

    run_worker(config, client, burst=True, simple=True)

    jobs = [job for name in (KEYS.ingest_queue, KEYS.delivery_queue)
            for job in Job.fetch_many(FinishedJobRegistry(name, connection=client).get_job_ids(), connection=client)
            if job is not None]
    started = sorted(jobs, key=lambda job: cast(datetime, job.started_at))
    assert [job.id.split("-")[0] for job in started][:6] == expected
    assert len(webhook_receiver.delivered) == 9  # every entry delivered either way: 3 x 2, then 3 x 1


def test_feed_and_webhook_ids_with_dots_get_their_jobs(
    client: redis.Redis, redis_url: str, webhook_receiver: WebhookReceiver
) -> None:
    """Ids may hold '.', which RQ refuses in a job id, and two webhooks' ids may differ only by '.' and '_'
    (``job_id_part``): every item of a dotted feed is published, and each webhook gets every entry."""
    hook = {"url": webhook_receiver.url, "secret": TEST_SECRET, "retry_intervals": [1]}
    config = make_config(redis_url, [], webhooks=[{"id": "desk.a", **hook}, {"id": "desk_a", **hook}])
    items = [make_item("wire.eu_1", n) for n in range(3)]

    assert enqueue_new_items(client, config, "wire.eu_1", items, time.time()) == 3
    run_worker(config, client, burst=True, simple=True)

    assert client.xlen(KEYS.entries_stream) == 3
    assert len(webhook_receiver.delivered) == 6
    assert len({job_id_part(name) for name in ("a.b", "a_b", "a_ob", "a__b", "a-b")}) == 5
