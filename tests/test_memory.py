"""What the index remembers, for how long, and how compactly: long-term marks past the story retention,
and each feed's set of the items it has shown; what RQ keeps of finished jobs; what a worker keeps from
its garbage collector."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import time
import weakref
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.job import Job

from livebrief.ingest import enqueue_new_items
from livebrief.keys import Keys
from livebrief.models import Entry
from livebrief.redis_server import MARK_SET_INTSET_ENTRIES
from livebrief.workers import run_worker, settle_heap
from tests.conftest import REPO, TEST_SECRET, WebhookReceiver, make_config
from tests.helpers import make_item
from tests.test_pipeline import write_config
from tests.test_stories import wire_copy
from worker.jobs import run_batch
from worker.runtime import configure


def _stream_ids(client: redis.Redis, stream: str) -> list[str]:
    return [Entry.model_validate_json(f[b"entry"]).id for _, f in client.xrange(stream)]


def test_an_item_is_still_known_after_its_story_is_forgotten(client: redis.Redis, redis_url: str) -> None:
    """Past the story retention the story keys are gone; the long-term marks still say the item, and its
    URL, were published, so a feed re-offering the item (or another outlet its URL) publishes nothing."""
    runtime = configure(make_config(redis_url, [], worker={"story_retention": 1}))
    run_batch(client, runtime, [wire_copy("wire-a", 1)])
    assert client.keys(f"{runtime.keys.packed_index}:[0-9]*")
    time.sleep(1.6)  # index entries are kept 1 to 1.5 retentions (worker/packed_index.py)
    assert not client.keys(f"{runtime.keys.prefix}:story:*")
    assert not client.keys(f"{runtime.keys.packed_index}:[0-9]*")  # items' seen marks, buckets

    same_url = make_item("paper-b", 9, title="Depot fire in Dnipro: what we know",
                         text="Officials gave new figures on Tuesday.", url="https://wire-a.example/dnipro")
    plan = run_batch(client, runtime, [wire_copy("wire-a", 1), same_url])

    assert sorted(plan.outcomes.values()) == ["exact_duplicate", "seen"]
    assert len(_stream_ids(client, runtime.keys.entries_stream)) == 1


def test_long_term_marks_are_forgotten_after_two_generations(client: redis.Redis, redis_url: str) -> None:
    runtime = configure(make_config(redis_url, [], worker={"story_retention": 1, "seen_ttl": 1}))
    run_batch(client, runtime, [wire_copy("wire-a", 1)])

    time.sleep(2.2)  # generations of 1 s: the mark's set expired at the end of the next generation
    run_batch(client, runtime, [wire_copy("wire-a", 1)])

    assert len(_stream_ids(client, runtime.keys.entries_stream)) == 2


def test_long_term_marks_are_packed_integer_sets(client: redis.Redis, redis_url: str) -> None:
    runtime = configure(make_config(redis_url, []))
    run_batch(client, runtime, [make_item("wire-a", n) for n in range(40)])

    sets = client.keys(f"{runtime.keys.prefix}:mark:*")
    assert sum(client.scard(key) for key in sets) == 120  # each item's mark, its URL's and its guid's
    assert {client.object("encoding", key) for key in sets} == {b"intset"}


def test_the_embedded_redis_keeps_a_busy_generations_mark_sets_packed(client: redis.Redis) -> None:
    """Past Redis's default of 512 members a set of integers becomes a hash table, ~8x the memory; the
    embedded server keeps a shard packed to MARK_SET_INTSET_ENTRIES members (a generation of millions)."""
    assert client.config_get("set-max-intset-entries") == {
        "set-max-intset-entries": str(MARK_SET_INTSET_ENTRIES)
    }
    client.sadd("busy-shard", *range(-1500, 1500))
    assert client.object("encoding", "busy-shard") == b"intset"


def test_a_feed_forgets_items_it_no_longer_shows_after_the_story_retention(
    client: redis.Redis, redis_url: str
) -> None:
    config = make_config(redis_url, [], worker={"story_retention": 3600})
    kept, dropped = make_item("f", 1), make_item("f", 2)
    assert enqueue_new_items(client, config, "f", [kept, dropped], now=1_000_000.0) == 2

    # Two hours later the feed shows only ``kept``: ``dropped`` has been gone longer than the retention.
    assert enqueue_new_items(client, config, "f", [kept], now=1_007_200.0) == 0

    members = {m.decode() for m in client.zrange(Keys(config.prefix).feed_items("f"), 0, -1)}
    assert members == {f"{kept.id}:{kept.content_hash}"}


def test_finished_jobs_and_their_payloads_are_kept_only_finished_job_ttl(
    client: redis.Redis, redis_url: str, webhook_receiver: WebhookReceiver
) -> None:
    """A finished RQ job keeps its payload (the items, the entries to deliver) as long as RQ keeps the job:
    ``worker.finished_job_ttl``, for ingest and delivery jobs alike, not RQ's own 500 s or more."""
    config = make_config(redis_url, [], worker={"finished_job_ttl": 7}, webhooks=[
        {"id": "desk", "url": webhook_receiver.url, "secret": TEST_SECRET},
    ])
    enqueue_new_items(client, config, "wire-a", [make_item("wire-a", n) for n in range(3)], time.time())

    run_worker(config, client, burst=True, simple=True)  # the ingest job, then the delivery job it queued

    assert len(webhook_receiver.delivered) == 3
    jobs = [key.decode() for key in client.scan_iter(match="rq:job:*")]
    assert sorted(key.split(":")[2].split("-")[0] for key in jobs) == ["delivery", "ingest"]
    assert all(0 < client.ttl(key) <= 7 for key in jobs)


def test_a_worker_freezes_what_each_job_keeps_and_traps_no_garbage(
    tmp_path: Path, client: redis.Redis, redis_url: str
) -> None:
    """After each job the worker collects and freezes what is left (``FreezingWorker``), so the collector
    never rescans the caches. Freezing must not trap garbage: a cycle that became unreachable after it was
    frozen would never be freed. A probe job, run last by the same ``livebrief work`` process, unfreezes
    and collects."""
    config = make_config(redis_url, [])
    for feed in range(12):
        items = [make_item(f"wire-{feed}", n) for n in range(25)]
        enqueue_new_items(client, config, f"wire-{feed}", items, time.time())
    probe = Queue(Keys(config.prefix).ingest_queue, connection=client).enqueue("tests.helpers.garbage_probe")
    env = {**os.environ, "REDIS_URL": redis_url, "LIVEBRIEF_CONFIG": str(write_config(tmp_path, []))}

    run = subprocess.run([sys.executable, "-m", "livebrief.cli", "work", "--burst"], env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=120)

    assert run.returncode == 0, run.stderr
    assert len(_stream_ids(client, Keys(config.prefix).entries_stream)) == 300
    report = Job.fetch(probe.id, connection=client).return_value()
    # What the twelve ingest jobs kept (cached stories, classifier look-ups) was frozen; what is left for the
    # collector is what the probe's job made, mostly importing its module (~3,500 objects here; ~15,400
    # when the jobs' leftovers are not frozen).
    assert report["unfrozen"] < 8_000
    assert report["unreachable"] < 50  # and almost none of what was frozen had become garbage (~26 here)


class _Node:
    """A container that can hold a reference cycle and be watched through a weak reference."""

    def __init__(self) -> None:
        self.other: _Node | None = None


@pytest.mark.parametrize("promoted", [False, True], ids=["young", "promoted-to-the-oldest-generation"])
def test_settling_the_heap_collects_the_jobs_cycles_before_freezing(promoted: bool) -> None:
    """``settle_heap`` collects only the young generations (a full collection empties CPython's free lists,
    which costs the next job), unless the job left objects in the oldest one: a cycle there, frozen
    uncollected, would never be freed."""
    automatic = gc.isenabled()
    gc.disable()  # only the collections this test makes
    gc.collect()
    gc.freeze()
    try:
        a, b = _Node(), _Node()
        a.other, b.other = b, a
        watch = weakref.ref(a)
        if promoted:
            gc.collect(1)  # as a long job's automatic collections do: the survivors move to the oldest generation
            assert any(o is a for o in gc.get_objects(generation=2))
        del a, b
        assert watch() is not None  # a cycle: only the collector frees it

        settle_heap()

        assert watch() is None
    finally:
        gc.unfreeze()
        if automatic:
            gc.enable()
