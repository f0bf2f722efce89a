"""End to end: `livebrief run --once` over real feeds on 127.0.0.1, a real Redis and real RQ workers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis
import yaml
from rq import Queue

from feeds.poller import _Enqueuer
from livebrief.feedserver import FeedServer
from livebrief.ingest import BACKLOG_JOBS, enqueue_fetches, enqueue_new_items
from livebrief.keys import Keys
from livebrief.models import Entry, Item
from livebrief.workers import run_worker
from tests.conftest import REPO, TEST_SECRET, WebhookReceiver, fixture_bytes, make_config
from tests.helpers import make_item, stop_session, until

KEYS = Keys("livebrief")


def serve_fixtures(server: FeedServer) -> list[dict[str, str]]:
    server.set("/a.xml", fixture_bytes("pipeline/wire-a.xml"), "application/rss+xml")
    server.set("/b.atom", fixture_bytes("pipeline/paper-b.atom"), "application/atom+xml")
    server.set("/c.json", fixture_bytes("pipeline/aid-c.json"), "application/feed+json")
    return [
        {"id": "wire-a", "name": "Wire A", "url": server.url("/a.xml")},
        {"id": "paper-b", "name": "Paper B", "url": server.url("/b.atom")},
        {"id": "aid-c", "name": "Aid Desk C", "url": server.url("/c.json")},
    ]


def write_config(tmp_path: Path, feeds: list[dict[str, str]], webhooks: list[dict[str, Any]] | None = None) -> Path:
    path = tmp_path / "livebrief.yaml"
    path.write_text(yaml.safe_dump({
        "topics_file": str(REPO / "config" / "topics.yaml"),
        "feeds": feeds,
        "webhooks": webhooks or [],
        "polling": {"allow_private": True, "timeout": 10},
    }))
    return path


def run_once(config: Path, redis_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_URL": redis_url, "LIVEBRIEF_LOG_JSON": "1"}
    return subprocess.run(
        [sys.executable, "-m", "livebrief.cli", "run", "--once", "--config", str(config)],
        env=env, capture_output=True, text=True, timeout=120, cwd=REPO,
    )


def stream_entries(client: redis.Redis) -> list[Entry]:
    return [Entry.model_validate_json(f[b"entry"]) for _, f in client.xrange(KEYS.entries_stream)]


def latest_versions(entries: list[Entry]) -> dict[str, Entry]:
    latest: dict[str, Entry] = {}
    for entry in entries:
        if entry.id not in latest or entry.version > latest[entry.id].version:
            latest[entry.id] = entry
    return latest


def drain(pubsub: redis.client.PubSub, seconds: float = 1.0) -> list[tuple[str, Entry]]:
    got = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if message and message["type"] == "message":
            got.append((message["channel"].decode(), Entry.model_validate_json(message["data"])))
    return got


def test_run_once_publishes_entries_to_stream_channels_and_webhook(
    tmp_path: Path, client: redis.Redis, redis_url: str, feed_server: FeedServer, webhook_receiver: WebhookReceiver
) -> None:
    feeds = serve_fixtures(feed_server)
    config = write_config(tmp_path, feeds, [
        {"id": "desk", "url": webhook_receiver.url, "secret": TEST_SECRET, "retry_intervals": [1]},
    ])
    pubsub = client.pubsub()
    pubsub.subscribe(KEYS.all_channel, KEYS.topic_channel("strikes"), KEYS.topic_channel("humanitarian"))
    drain(pubsub, 0.2)

    result = run_once(config, redis_url)

    assert result.returncode == 0, result.stderr
    entries = stream_entries(client)
    latest = latest_versions(entries)
    headlines = {e.headline for e in latest.values()}
    # 3 + 2 + 2 items, one of them a syndicated copy merged into its original.
    assert len(latest) == 6
    assert "Missile strike damages power station in Zaporizhzhia region" in headlines
    assert all(" - Wire A" not in h and "| Paper B" not in h for h in headlines)
    strike = next(e for e in latest.values() if e.headline.startswith("Missile strike"))
    assert "strikes" in strike.topics
    assert "Your browser" not in strike.summary and 0 < len(strike.summary) <= 280
    assert all(s.url is None or "utm_" not in s.url for e in latest.values() for s in e.sources)

    received = drain(pubsub)
    on_all = [e for ch, e in received if ch == KEYS.all_channel]
    on_strikes = [e for ch, e in received if ch == KEYS.topic_channel("strikes")]
    assert len(on_all) == len(entries)
    assert strike.id in {e.id for e in on_strikes}
    assert all("strikes" in e.topics for e in on_strikes)

    assert len(webhook_receiver.received) == len(entries)
    assert all(r["verified"] for r in webhook_receiver.received)
    ids = [r["headers"]["webhook-id"] for r in webhook_receiver.received]
    assert len(set(ids)) == len(ids)
    assert {r["body"]["data"]["id"] for r in webhook_receiver.received} == set(latest)


def test_second_run_over_unchanged_feeds_publishes_nothing(
    tmp_path: Path, client: redis.Redis, redis_url: str, feed_server: FeedServer
) -> None:
    feeds = serve_fixtures(feed_server)
    config = write_config(tmp_path, feeds)
    assert run_once(config, redis_url).returncode == 0
    published = client.xlen(KEYS.entries_stream)

    result = run_once(config, redis_url)

    assert result.returncode == 0, result.stderr
    assert client.xlen(KEYS.entries_stream) == published
    for path in ("/a.xml", "/b.atom", "/c.json"):
        assert feed_server.count(path, "200") == 1
        assert feed_server.count(path, "304") == 1


def test_same_story_in_two_feeds_is_one_entry_with_two_sources(
    tmp_path: Path, client: redis.Redis, redis_url: str, feed_server: FeedServer
) -> None:
    feeds = serve_fixtures(feed_server)
    assert run_once(write_config(tmp_path, feeds), redis_url).returncode == 0

    strikes = [e for e in stream_entries(client) if e.headline.startswith("Missile strike")]

    assert len({e.id for e in strikes}) == 1
    # Fetched in the same cycle, the two copies may share a job (one version with both sources) or not (a
    # second version adds the other source).
    assert [e.version for e in strikes] == list(range(1, len(strikes) + 1)) and len(strikes) <= 2
    assert strikes[0].status == "new" and all(e.status == "updated" for e in strikes[1:])
    assert sorted(s.name for s in strikes[-1].sources) == ["Paper B", "Wire A"]


CONSTANT_GUID_STORIES = [
    ("lviv-bridge", "Bridge in Lviv reopens to traffic after repairs to its supports"),
    ("odesa-grain", "Odesa port resumes grain exports as first ship leaves for Istanbul"),
    ("kharkiv-metro", "Kharkiv metro extends night service for residents sheltering underground"),
]


def _constant_guid_feed(count: int) -> str:
    """A CMS that gives every entry the site's home page as its guid; the newest entry first."""
    items = "".join(
        f"<item><title>{title}</title><link>https://cms.example/{slug}</link><guid>https://cms.example/</guid>"
        f"<description>{title}. The city council gave details on Monday.</description></item>"
        for slug, title in reversed(CONSTANT_GUID_STORIES[:count])
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>CMS</title>{items}</channel></rss>'


def test_entries_of_a_feed_that_gives_them_all_one_guid_are_each_their_own_story(
    tmp_path: Path, client: redis.Redis, redis_url: str, feed_server: FeedServer
) -> None:
    """Found by QA: each new entry of such a feed went out as an update of the first one's story, its
    headline replacing the earlier one, and the entries the first one shadowed were never published."""
    config = write_config(tmp_path, [{"id": "cms", "name": "CMS", "url": feed_server.url("/cms.xml")}])
    for count in (1, 2, 3):
        feed_server.set("/cms.xml", _constant_guid_feed(count), "application/rss+xml")
        result = run_once(config, redis_url)
        assert result.returncode == 0, result.stderr

    entries = stream_entries(client)
    assert sorted(e.headline for e in entries) == sorted(title for _, title in CONSTANT_GUID_STORIES)
    assert len({e.id for e in entries}) == 3
    assert all(e.version == 1 and e.status == "new" for e in entries)
    assert "entries share a guid" in result.stdout + result.stderr  # logged (feed_repaired), not silent


def test_classify_command_reads_and_writes_json_lines(redis_url: str) -> None:
    lines = [
        {"id": "x1", "title": "Missile strike hits apartment block, killing five civilians"},
        {"id": "x2", "title": "Bakery wins regional award", "text": "A family bakery won a prize."},
    ]
    result = subprocess.run(
        [sys.executable, "-m", "livebrief.cli", "classify"], input="\n".join(json.dumps(x) for x in lines),
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["id"] for o in out] == ["x1", "x2"]
    assert "strikes" in out[0]["topics"] and out[0]["evidence"]["strikes"]
    assert out[1]["topics"] == []
    assert set(out[1]["scores"]) >= {"talks", "strikes", "humanitarian"}


def test_a_large_fetch_is_split_into_jobs_that_publish_every_item_once(client: redis.Redis, redis_url: str) -> None:
    """A 60-item fetch becomes jobs of at most ``job_items`` (so several workers can share it), and a real RQ
    worker draining them publishes each item exactly once."""
    config = make_config(redis_url, [], worker={"job_items": 25})
    items = [make_item("big-feed", n) for n in range(60)]
    assert enqueue_new_items(client, config, "big-feed", items, now=time.time()) == 60

    jobs = Queue(KEYS.ingest_queue, connection=client).get_jobs()
    assert sorted(len(job.args[0]) for job in jobs) == [10, 25, 25]
    # What `rq info` and dashboards show: the feed and the count, not RQ's default repr of the items.
    assert sorted(job.description for job in jobs) == ["ingest big-feed: 10 items", *["ingest big-feed: 25 items"] * 2]
    run_worker(config, client, burst=True, simple=True)

    published = [Entry.model_validate_json(f[b"entry"]) for _, f in client.xrange(KEYS.entries_stream)]
    assert sorted(s.url for e in published for s in e.sources) == sorted(i.url for i in items)


def test_behind_a_backlog_a_fetch_is_queued_in_bigger_jobs_and_still_published_once(
    client: redis.Redis, redis_url: str
) -> None:
    """Behind a backlog (``BACKLOG_JOBS`` jobs waiting) a fetch goes in jobs of ``busy_job_items``: fewer jobs,
    less RQ work per item. Every item of the three fetches is published once."""
    config = make_config(redis_url, [], worker={"job_items": 25, "busy_job_items": 100})
    first = [make_item("feed-a", n) for n in range(25 * (BACKLOG_JOBS - 1))]
    second = [make_item("feed-b", n) for n in range(60)]
    third = [make_item("feed-c", n) for n in range(60)]
    enqueue_new_items(client, config, "feed-a", first, now=time.time())
    assert enqueue_new_items(client, config, "feed-b", second, now=time.time()) == 60  # one job short
    assert enqueue_new_items(client, config, "feed-c", third, now=time.time()) == 60  # behind the backlog

    sizes: dict[str, list[int]] = {}
    for job in Queue(KEYS.ingest_queue, connection=client).get_jobs():
        sizes.setdefault(job.description.split(":")[0], []).append(len(job.args[0]))
    assert sizes == {"ingest feed-a": [25] * (BACKLOG_JOBS - 1), "ingest feed-b": [25, 25, 10],
                     "ingest feed-c": [60]}
    run_worker(config, client, burst=True, simple=True)

    published = [Entry.model_validate_json(f[b"entry"]) for _, f in client.xrange(KEYS.entries_stream)]
    assert sorted(s.url for e in published for s in e.sources) == sorted(i.url for i in first + second + third)


def test_fetches_queued_together_share_jobs_and_each_item_is_published_once(
    client: redis.Redis, redis_url: str
) -> None:
    """Several fetches' new items go in shared jobs, in the order given; each fetch's count and "shown" marks are
    its own, so a second pass over the same items queues none."""
    config = make_config(redis_url, [], worker={"job_items": 25})
    fetches = [(f"feed-{n}", [make_item(f"feed-{n}", k) for k in range(n % 3)]) for n in range(30)]
    expected = [item for _, items in fetches for item in items]

    assert enqueue_fetches(client, config, fetches, time.time()) == [n % 3 for n in range(30)]

    jobs = sorted(Queue(KEYS.ingest_queue, connection=client).get_jobs(), key=lambda job: job.enqueued_at)
    assert [len(job.args[0]) for job in jobs] == [25, 5]  # 30 items of 20 fetches, not 20 jobs
    assert [raw["id"] for job in jobs for raw in job.args[0]] == [item.id for item in expected]
    assert jobs[0].description == "ingest 20-feeds: 25 items"
    assert enqueue_fetches(client, config, fetches, time.time()) == [0] * 30
    run_worker(config, client, burst=True, simple=True)

    published = [Entry.model_validate_json(f[b"entry"]) for _, f in client.xrange(KEYS.entries_stream)]
    assert sorted(s.url for e in published for s in e.sources) == sorted(i.url for i in expected)


def test_the_poller_gathers_fetches_that_finish_while_an_enqueue_is_in_flight() -> None:
    """The first fetch is queued at once; those that finish meanwhile go together in the next enqueue; a failed
    enqueue raises in every fetch it held."""
    calls: list[list[str]] = []
    release = threading.Event()

    def enqueue(fetches: Sequence[tuple[str, list[Item]]]) -> list[int]:
        calls.append([feed_id for feed_id, _ in fetches])
        if len(calls) == 1:
            release.wait(5)  # in flight while the others finish
        if len(calls) == 3:
            raise redis.ConnectionError("Redis went away")
        return [len(items) for _, items in fetches]

    async def scenario() -> tuple[list[int], list[BaseException | int]]:
        enqueuer = _Enqueuer(enqueue)
        first = asyncio.create_task(enqueuer.add("a", [make_item("a", 1)]))
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(enqueuer.add(f, [make_item(f, 1), make_item(f, 2)])) for f in "bcd"]
        await asyncio.sleep(0.05)
        release.set()
        counts = [await first, *[await task for task in rest]]
        failing = [asyncio.create_task(enqueuer.add(f, [])) for f in "ef"]
        outcomes = await asyncio.gather(*failing, return_exceptions=True)
        await enqueuer.idle()
        return counts, list(outcomes)

    counts, outcomes = asyncio.run(scenario())

    assert calls == [["a"], ["b", "c", "d"], ["e", "f"]]
    assert counts == [1, 2, 2, 2]
    assert all(isinstance(o, redis.ConnectionError) for o in outcomes)


def _queues_served_by_run(client: redis.Redis, config: Path, redis_url: str, *args: str) -> list[list[str]]:
    """The queues of each worker ``livebrief run *args`` starts (with one ingest worker), sorted."""
    from rq import Worker

    run = subprocess.Popen(
        [sys.executable, "-m", "livebrief.cli", "run", "--workers", "1", *args, "--config", str(config)],
        env={**os.environ, "REDIS_URL": redis_url}, cwd=REPO, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        serving: list[list[str]] = []
        give_up = time.monotonic() + 60
        while len(serving) < 3 and time.monotonic() < give_up:
            time.sleep(0.3)
            serving = [w.queue_names() for w in Worker.all(connection=client)]
        return sorted(serving)
    finally:
        stop_session(run, 30)


def test_run_starts_the_ingest_and_delivery_workers_asked_for(
    tmp_path: Path, client: redis.Redis, redis_url: str
) -> None:
    serving = _queues_served_by_run(client, write_config(tmp_path, []), redis_url, "--delivery-workers", "2")
    assert serving == [[KEYS.delivery_queue]] * 2 + [[KEYS.ingest_queue]]


def test_run_gives_several_webhooks_two_delivery_workers(tmp_path: Path, client: redis.Redis, redis_url: str) -> None:
    """So that a slow receiver, holding one of them (its lane), does not hold up the others' entries."""
    hooks = [{"id": name, "url": f"http://127.0.0.1:9/{name}", "secret": TEST_SECRET} for name in ("a", "b")]
    serving = _queues_served_by_run(client, write_config(tmp_path, [], hooks), redis_url)
    assert serving == [[KEYS.delivery_queue]] * 2 + [[KEYS.ingest_queue]]


def _run_forever(config: Path, redis_url: str, *args: str) -> subprocess.Popen[str]:
    """``livebrief run`` writing its log to ``run.log`` beside ``config``: a worker's RQ scheduler process
    left behind by a SIGKILL would hold a pipe open after run exits."""
    return subprocess.Popen(
        [sys.executable, "-m", "livebrief.cli", "run", *args, "--config", str(config)],
        env={**os.environ, "REDIS_URL": redis_url}, cwd=REPO, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=(config.parent / "run.log").open("w"), text=True,
    )


def _live_workers(client: redis.Redis) -> dict[int, list[str]]:
    """pid -> queues of the registered workers whose process is alive (a killed one stays registered)."""
    from rq import Worker

    alive = {}
    for worker in Worker.all(connection=client):
        if worker.pid and os.path.exists(f"/proc/{worker.pid}"):
            alive[worker.pid] = worker.queue_names()
    return alive


def test_run_starts_again_a_worker_that_died(tmp_path: Path, client: redis.Redis, redis_url: str) -> None:
    run = _run_forever(write_config(tmp_path, []), redis_url, "--workers", "1", "--delivery-workers", "1")
    try:
        assert until(lambda: len(_live_workers(client)) == 2, 60)
        ingest = next(pid for pid, queues in _live_workers(client).items() if queues == [KEYS.ingest_queue])
        os.kill(ingest, signal.SIGKILL)

        def replaced() -> bool:
            workers = _live_workers(client)
            return ingest not in workers and sorted(workers.values()) == [[KEYS.delivery_queue], [KEYS.ingest_queue]]

        assert until(replaced, 60)
        assert run.poll() is None
    finally:
        stop_session(run, 30)


def test_run_stops_with_an_error_when_its_workers_keep_failing(
    tmp_path: Path, client: redis.Redis, redis_url: str
) -> None:
    topics = tmp_path / "topics.yaml"
    topics.write_text((REPO / "config" / "topics.yaml").read_text())
    config = write_config(tmp_path, [])
    config.write_text(config.read_text().replace(str(REPO / "config" / "topics.yaml"), str(topics)))
    run = _run_forever(config, redis_url, "--workers", "1", "--delivery-workers", "0")
    try:
        assert until(lambda: len(_live_workers(client)) == 1, 60)
        # Broken after run checked it: every worker started from now on exits at once.
        topics.write_text("topics:\n  strikes:\n    phrases: ['re:(unclosed']\n")
        for pid in _live_workers(client):
            os.kill(pid, signal.SIGKILL)
        run.wait(90)
    finally:
        with contextlib.suppress(ProcessLookupError):  # also ends the killed worker's RQ scheduler process
            stop_session(run, 30)
    assert run.returncode == 2
    assert "exited 3 times in a row soon after starting" in (tmp_path / "run.log").read_text()
    assert _live_workers(client) == {}


def test_run_with_a_broken_topics_file_says_so_before_polling_anything(
    tmp_path: Path, client: redis.Redis, redis_url: str, feed_server: FeedServer
) -> None:
    feed_server.set("/wire.xml", fixture_bytes("pipeline/wire-a.xml"))
    topics = tmp_path / "topics.yaml"
    topics.write_text("topics:\n  strikes:\n    phrases: ['re:(unclosed']\n")
    config = write_config(tmp_path, [{"id": "wire", "url": feed_server.url("/wire.xml"), "name": "Wire"}])
    config.write_text(config.read_text().replace(str(REPO / "config" / "topics.yaml"), str(topics)))
    for args in (["--once"], []):
        run = _run_forever(config, redis_url, *args)
        try:
            run.wait(60)
        finally:
            with contextlib.suppress(ProcessLookupError):  # nothing of its session is left
                stop_session(run, 30)
        assert run.returncode == 2 and str(topics) in (tmp_path / "run.log").read_text()
    assert client.keys(f"{KEYS.prefix}*") == [] and _live_workers(client) == {}
