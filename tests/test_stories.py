"""Story merging on a real Redis: updates as new versions on stream and channels, and retention expiry."""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import redis

from livebrief.config import WorkerConfig
from livebrief.models import Entry
from tests.conftest import make_config
from tests.helpers import make_item
from worker import records
from worker.jobs import run_batch
from worker.prepare import prepare
from worker.records import _STORY_ZDICT, decode_story
from worker.runtime import configure
from worker.stories import MAX_STORIES_PER_TERM, IndexView, candidate_story_ids, plan_batch, term_candidates

STRIKE_TITLE = "Missile strike destroys fuel depot near Dnipro, regional governor says"
STRIKE_TEXT = ("A Russian missile strike destroyed a fuel depot near Dnipro overnight, the regional governor said. "
               "Firefighters fought the blaze for hours and nearby homes were evacuated as a precaution.")


def wire_copy(feed: str, n: int) -> object:
    return make_item(feed, n, title=STRIKE_TITLE, text=STRIKE_TEXT, url=f"https://{feed}.example/dnipro")


def test_a_second_outlet_publishes_version_2_with_both_sources_on_stream_and_topic_channel(
    client: redis.Redis, redis_url: str
) -> None:
    runtime = configure(make_config(redis_url, []))
    run_batch(client, runtime, [wire_copy("wire-a", 1)])
    pubsub = client.pubsub()
    pubsub.subscribe(runtime.keys.topic_channel("strikes"))
    pubsub.get_message(timeout=1)

    run_batch(client, runtime, [wire_copy("paper-b", 1)])

    versions = [Entry.model_validate_json(f[b"entry"]) for _, f in client.xrange(runtime.keys.entries_stream)]
    assert [(e.version, e.status) for e in versions] == [(1, "new"), (2, "updated")]
    assert versions[0].id == versions[1].id
    assert sorted(s.feed for s in versions[1].sources) == ["paper-b", "wire-a"]
    message = pubsub.get_message(timeout=2)
    assert message is not None
    on_channel = Entry.model_validate_json(message["data"])
    assert (on_channel.id, on_channel.version, len(on_channel.sources)) == (versions[0].id, 2, 2)


def test_the_next_day_of_a_daily_summary_is_a_new_entry_not_an_update(client: redis.Redis, redis_url: str) -> None:
    # Same feed, same words but the day's number: a near-duplicate before, so day 101 went out as
    # version 2 of day 100's entry, its headline never shown.
    runtime = configure(make_config(redis_url, []))
    lead = "The main developments of the conflict, from the front lines, the talks and the aid convoys."
    for day in (100, 101):
        run_batch(client, runtime, [make_item("daily", day, title=f"Conflict diary: key events, day {day}", text=lead)])

    versions = [Entry.model_validate_json(f[b"entry"]) for _, f in client.xrange(runtime.keys.entries_stream)]
    assert [(e.headline, e.version, e.status) for e in versions] == [
        ("Conflict diary: key events, day 100", 1, "new"), ("Conflict diary: key events, day 101", 1, "new")]


def test_a_worker_with_a_tiny_story_cache_merges_the_same_and_keeps_the_cache_that_small(
    client: redis.Redis, redis_url: str
) -> None:
    """``worker.story_cache`` trades memory for speed only: a story the cache no longer holds is read back."""
    runtime = configure(make_config(redis_url, [], worker={"story_cache": 1}))
    try:
        run_batch(client, runtime, [wire_copy("wire-a", 1)])
        run_batch(client, runtime, [make_item("other", n) for n in range(3)])  # pushes the story out
        run_batch(client, runtime, [wire_copy("paper-b", 1)])
        assert len(records._stories._handles) <= 1
    finally:
        records.cache_stories(WorkerConfig().story_cache)

    versions = [Entry.model_validate_json(f[b"entry"]) for _, f in client.xrange(runtime.keys.entries_stream)]
    joined = [e for e in versions if e.version == 2]
    assert len(joined) == 1
    assert sorted(s.feed for s in joined[0].sources) == ["paper-b", "wire-a"]


def test_an_item_repeating_a_published_url_or_guid_is_dropped_in_later_batches_and_its_own(
    client: redis.Redis, redis_url: str
) -> None:
    """Unrelated texts, so only the exact keys can tell: a URL that canonicalises to a published one, a
    guid published before, and a URL an earlier item of the same batch has."""
    runtime = configure(make_config(redis_url, []))
    first = make_item("wire-a", 1, url="https://wire-a.example/story?id=1")
    run_batch(client, runtime, [first])
    tracked = make_item("paper-b", 2, url="https://wire-a.example/story?id=1&utm_source=feed")
    reguided = make_item("paper-c", 3).model_copy(update={"guid": first.guid})
    fresh, twin = make_item("paper-d", 4, url="https://paper-d.example/x"), make_item("paper-e", 5, url="https://paper-d.example/x")

    plan = run_batch(client, runtime, [tracked, reguided, fresh, twin])

    assert plan.outcomes == {tracked.id: "exact_duplicate", reguided.id: "exact_duplicate",
                             fresh.id: "new_story", twin.id: "exact_duplicate"}
    assert len(plan.published) == 1


def test_stories_older_than_the_retention_are_forgotten(client: redis.Redis, redis_url: str) -> None:
    runtime = configure(make_config(redis_url, [], worker={"story_retention": 1}))
    run_batch(client, runtime, [wire_copy("wire-a", 1)])
    assert client.keys(f"{runtime.keys.prefix}:story:*")
    assert client.keys(f"{runtime.keys.packed_index}:[0-9]*")

    time.sleep(1.6)  # the story's index keys expire with it
    assert not client.keys(f"{runtime.keys.prefix}:story:*")
    assert not client.keys(f"{runtime.keys.packed_index}:[0-9]*")
    run_batch(client, runtime, [wire_copy("paper-b", 1)])

    entries = [Entry.model_validate_json(f[b"entry"]) for _, f in client.xrange(runtime.keys.entries_stream)]
    assert [e.version for e in entries] == [1, 1]
    assert entries[0].id != entries[1].id


def _dictionary_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, -15, zdict=_STORY_ZDICT)
    return b"\x01" + packer.compress(data) + packer.flush()


@pytest.mark.parametrize("earlier", [lambda data: zlib.compress(data, 1), _dictionary_deflate],
                         ids=["plain-zlib", "one-dictionary-stream"])
def test_a_story_stored_by_an_earlier_format_is_still_read_and_updated(
    client: redis.Redis, redis_url: str, earlier: Callable[[bytes], bytes]
) -> None:
    """Records were one compressed JSON document before head and body were split; an upgraded worker
    reads them."""
    runtime = configure(make_config(redis_url, []))
    run_batch(client, runtime, [wire_copy("wire-a", 1)])
    (key,) = client.keys(f"{runtime.keys.prefix}:story:*")
    stored = client.get(key)
    assert stored is not None and stored[:1] == b"\x02"
    client.set(key, earlier(decode_story(stored).record.model_dump_json().encode()), keepttl=True)

    run_batch(client, runtime, [wire_copy("paper-b", 1)])

    versions = [Entry.model_validate_json(f[b"entry"]) for _, f in client.xrange(runtime.keys.entries_stream)]
    assert [(e.version, len(e.sources)) for e in versions] == [(1, 1), (2, 2)]
    assert client.get(key)[:1] == b"\x02"  # rewritten in the current format


def test_a_stored_story_reads_its_head_at_once_and_its_body_on_first_use(
    client: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scoring reads status, feeds, features and signature; the entry is parsed only for a story joined."""
    runtime = configure(make_config(redis_url, []))
    run_batch(client, runtime, [wire_copy("wire-a", 1)])
    run_batch(client, runtime, [wire_copy("paper-b", 1)])
    (key,) = client.keys(f"{runtime.keys.prefix}:story:*")
    stored = client.get(key)
    assert stored is not None
    written = decode_story(stored).record  # cached as this worker wrote it
    monkeypatch.setattr(records, "_stories", records._StoryCache(8))  # another worker: nothing cached

    handle = decode_story(stored)

    assert handle._record is None
    assert (handle.status, handle.feeds) == ("updated", ["wire-a", "paper-b"])
    assert handle.features == written.features and handle.signature == written.signature
    assert handle.record == written
    assert [s.feed for s in handle.record.entry.sources] == ["wire-a", "paper-b"]


def test_a_story_started_and_joined_in_one_batch_is_stored_as_joined(
    client: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each item's would-be story is built and packed before the commit (``worker/publish.py``, ``_Fresh``);
    one joined in the same batch must be stored as joined, not as built."""
    runtime = configure(make_config(redis_url, []))
    first, second = wire_copy("wire-a", 1), wire_copy("paper-b", 1)

    plan = run_batch(client, runtime, [first, second])

    assert plan.outcomes == {first.id: "new_story", second.id: "near_duplicate"}
    (key,) = client.keys(f"{runtime.keys.prefix}:story:*")
    monkeypatch.setattr(records, "_stories", records._StoryCache(8))  # another worker: nothing cached
    stored = decode_story(client.get(key)).record
    assert [s.feed for s in stored.entry.sources] == ["wire-a", "paper-b"]
    assert stored.items == [first.id, second.id]
    (entry,) = [Entry.model_validate_json(f[b"entry"]) for _, f in client.xrange(runtime.keys.entries_stream)]
    assert stored.entry == entry and entry.version == 1


def test_a_batch_publishes_its_entries_in_the_order_of_its_items(client: redis.Redis, redis_url: str) -> None:
    runtime = configure(make_config(redis_url, []))
    items = [make_item("wire-a", n) for n in range(8)]

    run_batch(client, runtime, items)

    published = [Entry.model_validate_json(f[b"entry"]) for _, f in client.xrange(runtime.keys.entries_stream)]
    assert [e.sources[0].url for e in published] == [item.url for item in items]


def test_a_story_is_a_candidate_when_listed_under_two_of_the_items_index_terms() -> None:
    terms = {"kharkiv": ["s1", "s2"], "shelling": ["s1", "s3"], "governor": ["s2"], "mayor": ["s4"]}

    assert term_candidates(["kharkiv", "shelling", "mayor"], terms) == ["s1"]


def test_an_item_with_a_single_index_term_finds_every_story_listed_under_it() -> None:
    terms = {"kharkiv": ["s1", "s2"], "shelling": ["s1"]}

    assert term_candidates(["kharkiv"], terms) == ["s1", "s2"]
    assert term_candidates([], terms) == []


def test_the_commit_reads_no_story_met_under_one_index_term_only() -> None:
    """Every candidate costs a record read and a check in the commit: one met under a single term of
    the item's is not among them (it almost never scores as the same story)."""
    item = make_item("paper-b", 2, title=STRIKE_TITLE, text=STRIKE_TEXT)
    p = prepare(item, configure(make_config("redis://127.0.0.1:9", [])).topics, WorkerConfig())
    first, second, *_ = p.terms
    view = IndexView(terms={first: ["s-two-terms", "s-one-term"], second: ["s-two-terms"]})

    assert candidate_story_ids([p], view) == {"s-two-terms"}


def test_a_new_story_goes_first_in_its_terms_lists_which_keep_the_most_recent_eight() -> None:
    p = prepare(make_item("paper-b", 3, title=STRIKE_TITLE, text=STRIKE_TEXT),
                configure(make_config("redis://127.0.0.1:9", [])).topics, WorkerConfig())
    first, second, *_ = p.terms
    view = IndexView(terms={first: [f"s{n}" for n in range(MAX_STORIES_PER_TERM)], second: ["s0"]})

    plan = plan_batch([p], view, WorkerConfig(), datetime.now(UTC))

    (story_id,) = plan.published
    assert plan.terms[first] == [story_id, *(f"s{n}" for n in range(MAX_STORIES_PER_TERM - 1))]
    assert plan.terms[second] == [story_id, "s0"]


def test_planning_leaves_the_index_view_as_it_was_read() -> None:
    """Planning is pure: the view (the index as read) stays as it was. The plan shares the view's term lists
    instead of copying them, so it must never change one in place."""
    topics = configure(make_config("redis://127.0.0.1:9", [])).topics
    items = [prepare(make_item(f"paper-{n}", n, title=STRIKE_TITLE, text=STRIKE_TEXT), topics, WorkerConfig())
             for n in range(3)]
    first, second, *_ = items[0].terms
    view = IndexView(terms={first: [f"s{n}" for n in range(MAX_STORIES_PER_TERM)], second: ["s0", "s1"]})
    before = {term: list(ids) for term, ids in view.terms.items()}

    plan = plan_batch(items, view, WorkerConfig(), datetime.now(UTC))

    assert len(plan.published) == 1 and plan.terms[first][0] in plan.published  # the copies joined one story
    assert view.terms == before
