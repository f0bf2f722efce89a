"""The packed index (worker/packed_index.py): items' seen marks and LSH buckets as fields of small hashes,
per generation, split as they fill; read from the string keys of earlier versions after an upgrade."""

from __future__ import annotations

import time

import pytest
import redis

from livebrief.models import Entry
from tests.conftest import make_config
from tests.helpers import make_item
from tests.test_stories import wire_copy
from worker import packed_index, publish
from worker.jobs import run_batch
from worker.packed_index import BASE, LOAD, bucket_field, item_field, read_fields
from worker.prepare import prepare
from worker.runtime import configure


def _data_hashes(client: redis.Redis, prefix: str) -> list[bytes]:
    return [k for k in client.keys(f"{prefix}:[0-9]*") if k.count(b":") == 3]


def test_a_generation_splits_its_hashes_as_it_fills_and_every_entry_is_found_after(
    client: redis.Redis, redis_url: str
) -> None:
    runtime = configure(make_config(redis_url, []))
    items = [make_item(f"feed{n % 7}", n) for n in range(1200)]
    for start in range(0, len(items), 50):
        run_batch(client, runtime, items[start : start + 50])
    prefix = runtime.keys.packed_index

    hashes = _data_hashes(client, prefix)
    assert len(hashes) > 4 * BASE  # ~5,000 fields: split well past the 16 hashes a generation starts with
    sizes = [client.hlen(k) for k in hashes]
    assert max(sizes) <= 2 * LOAD
    assert {client.object("encoding", k) for k in hashes} == {b"listpack"}
    (meta,) = [k for k in client.keys(f"{prefix}:[0-9]*") if k.count(b":") == 2]
    assert int(client.hget(meta, "fields") or 0) == sum(sizes)

    # Every item's mark and bucket is where a reader looks for it, after all those splits.
    marks = read_fields(client, runtime.keys, runtime.config.worker.story_retention,
                        [item_field(item.id) for item in items])
    assert all(marks)
    buckets = {b for item in items for b in prepare(item, runtime.topics, runtime.config.worker).buckets}
    assert all(read_fields(client, runtime.keys, runtime.config.worker.story_retention,
                           [bucket_field(*b) for b in buckets]))
    again = run_batch(client, runtime, items[:50])
    assert set(again.outcomes.values()) == {"seen"}
    assert client.get(runtime.keys.packed_index_since) == b"0"  # a new installation: no earlier keys


def test_an_entry_is_read_for_one_to_one_and_a_half_retentions(client: redis.Redis, redis_url: str) -> None:
    retention = 3600
    runtime = configure(make_config(redis_url, [], worker={"story_retention": retention}))
    item = make_item("wire", 1)
    written = time.time()
    run_batch(client, runtime, [item])
    period = retention / packed_index.PERIODS

    def found(at: float) -> bool:
        return read_fields(client, runtime.keys, retention, [item_field(item.id)], now=at)[0] is not None

    # Read in the generation it was written in and the two after; the third after no longer looks there.
    assert found(written) and found(written + period) and found(written + 2 * period)
    assert not found(written + 3 * period)
    for key in client.keys(f"{runtime.keys.packed_index}:[0-9]*"):
        assert retention * 1000 - 5000 <= client.pttl(key) <= 1.5 * retention * 1000


def test_after_an_upgrade_an_update_still_finds_its_story_through_the_earlier_keys(
    client: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An installation upgraded from the string keys (``P:seen:<item>``, ``P:lsh:<band>:<bucket>``): an
    item published before the upgrade and changed after it is an update of its story, not a duplicate."""
    runtime = configure(make_config(redis_url, []))
    keys, retention = runtime.keys, runtime.config.worker.story_retention
    first = wire_copy("wire-a", 1)
    run_batch(client, runtime, [first])
    # As an earlier version would have left it: the same entries as string keys, no packed index.
    (mark,) = read_fields(client, keys, retention, [item_field(first.id)])
    assert mark is not None
    story_id = mark.decode().split()[1]
    client.set(keys.seen(first.id), mark, ex=retention)
    for band, bucket in prepare(first, runtime.topics, runtime.config.worker).buckets:
        client.set(keys.lsh(band, bucket), story_id, ex=retention)
    client.delete(*client.keys(f"{keys.packed_index}:*"))
    monkeypatch.setattr(publish, "_legacy", publish._LegacyKeys())  # a worker of the new version starting

    changed = first.model_copy(update={"title": first.title + " as toll rises",
                                       "content_hash": first.content_hash + "x"})
    plan = run_batch(client, runtime, [changed])

    assert plan.outcomes == {first.id: "content_changed"}
    versions = [Entry.model_validate_json(f[b"entry"]) for _, f in client.xrange(keys.entries_stream)]
    assert [(e.id, e.version) for e in versions] == [(story_id, 1), (story_id, 2)]
    # Until one retention from now, batches read the earlier keys too; the entry is now in the packed index.
    assert time.time() + retention - 60 < float(client.get(keys.packed_index_since) or 0)
    assert read_fields(client, keys, retention, [item_field(first.id)])[0] is not None


# Another worker's write of one field, as its commit script makes it (the same Lua), with the new stamp that
# every commit sets (``worker/publish.py``).
_ANOTHER_WORKERS_WRITE = packed_index.LUA_FUNCTIONS + """
ix_write(ARGV[1], tonumber(ARGV[2]), ARGV[3], 5)
redis.call('SET', ARGV[4], 'theirs')
"""


@pytest.mark.parametrize("ahead", [0, 1], ids=["same-generation", "next-generation"])
def test_a_commit_sees_a_field_another_worker_wrote_since_its_read(
    client: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch, ahead: int
) -> None:
    """Between this batch's read and its commit, another worker publishes the same item and writes its seen
    mark (in this generation, or in the next one: a worker whose clock is ahead, or a batch decided just
    after a generation ended). The commit must notice, decide again and publish nothing."""
    runtime = configure(make_config(redis_url, []))
    keys, retention = runtime.keys, runtime.config.worker.story_retention
    item = make_item("wire", 1)
    field = item_field(item.id)
    real_plan = publish.plan_batch
    calls: list[int] = []

    def plan_then_lose_the_race(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 1:
            gen = packed_index.generation(time.time(), retention) + ahead
            mark = f"{item.content_hash} s-theirs"
            client.eval(_ANOTHER_WORKERS_WRITE, 0, keys.packed_index, gen, 60_000, keys.commit_stamp,
                        *packed_index.write_args([(field, mark)]))
        return real_plan(*args, **kwargs)

    monkeypatch.setattr(publish, "plan_batch", plan_then_lose_the_race)
    plan = run_batch(client, runtime, [item])

    assert len(calls) == 2
    assert plan.outcomes == {item.id: "seen"}
    assert client.xlen(keys.entries_stream) == 0
