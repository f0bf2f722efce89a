"""Wire input (IPTC ninjs), corrections, kills and embargoes, through a real Redis and real RQ workers."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import redis

from feeds.parse import parse_feed
from livebrief.models import Entry, Item
from livebrief.workers import run_worker
from tests.conftest import TEST_SECRET, WebhookReceiver, fixture_bytes, make_config
from tests.helpers import make_item
from worker.jobs import run_batch
from worker.runtime import Runtime, configure

FETCHED = datetime(2022, 3, 29, 7, 0, tzinfo=UTC)


def wire_items(name: str) -> list[Item]:
    return parse_feed(fixture_bytes(f"wire/{name}"), feed_id="wire", outlet="Wire Service", fetched=FETCHED).items


def stream(client: redis.Redis, runtime: Runtime) -> list[Entry]:
    return [Entry.model_validate_json(f[b"entry"]) for _, f in client.xrange(runtime.keys.entries_stream)]


def test_ninjs_items_parse_with_wire_fields() -> None:
    items = wire_items("ninjs-v1.json")

    assert [i.title for i in items] == ["Missile strike hits port warehouse in Odesa",
                                        "Delegations arrive in Istanbul for peace talks"]  # the picture is skipped
    strike = items[0]
    assert strike.guid == "urn:newsml:wire.example:20220329:strike-odesa"
    assert (strike.version, strike.pubstatus, strike.urgency) == (1, "usable", 2)
    assert strike.subjects == ["armed conflict"] and strike.located == "Odesa"
    assert strike.published == datetime(2022, 3, 29, 6, 0, tzinfo=UTC)


def test_ninjs_uri_is_the_identity_across_versions() -> None:
    v1 = {i.guid: i for i in wire_items("ninjs-v1.json")}
    v2 = {i.guid: i for i in wire_items("ninjs-v2.json")}
    uri = "urn:newsml:wire.example:20220329:strike-odesa"
    assert v1[uri].id == v2[uri].id
    assert v1[uri].content_hash != v2[uri].content_hash


def test_new_wire_version_updates_its_entry(client: redis.Redis, redis_url: str) -> None:
    runtime = configure(make_config(redis_url, []))
    run_batch(client, runtime, wire_items("ninjs-v1.json"))
    run_batch(client, runtime, wire_items("ninjs-v2.json")[:1])

    strike = [e for e in stream(client, runtime) if "Odesa" in e.headline]
    assert [(e.version, e.status) for e in strike] == [(1, "new"), (2, "updated")]
    assert strike[1].headline == "Missile strike on Odesa port warehouse wounds two"
    assert "wounding two workers" in strike[1].summary
    assert len({e.id for e in strike}) == 1


def test_older_version_arriving_late_changes_nothing(client: redis.Redis, redis_url: str) -> None:
    runtime = configure(make_config(redis_url, []))
    run_batch(client, runtime, wire_items("ninjs-v2.json")[:1])
    plan = run_batch(client, runtime, wire_items("ninjs-v1.json")[:1])

    assert list(plan.outcomes.values()) == ["stale_version"]
    assert len(stream(client, runtime)) == 1


def test_kill_publishes_a_withdrawal_to_stream_channel_and_webhook(
    client: redis.Redis, redis_url: str, webhook_receiver: WebhookReceiver
) -> None:
    runtime = configure(make_config(redis_url, [], webhooks=[
        {"id": "desk", "url": webhook_receiver.url, "secret": TEST_SECRET, "topics": ["talks"]}]))
    run_batch(client, runtime, wire_items("ninjs-v1.json"))
    pubsub = client.pubsub()
    pubsub.subscribe(runtime.keys.topic_channel("talks"))
    pubsub.get_message(timeout=1)

    run_batch(client, runtime, wire_items("ninjs-v2.json")[1:])
    run_worker(runtime.config, client, burst=True, simple=True)

    talks = [e for e in stream(client, runtime) if "Istanbul" in e.headline]
    assert [(e.version, e.status) for e in talks] == [(1, "new"), (2, "withdrawn")]
    assert talks[1].summary == ""
    message = pubsub.get_message(timeout=2)
    assert message is not None and Entry.model_validate_json(message["data"]).status == "withdrawn"
    types = [r["body"]["type"] for r in webhook_receiver.delivered]
    assert types == ["entry.created", "entry.withdrawn"]


def test_a_webhook_gets_only_the_events_it_asked_for(
    client: redis.Redis, redis_url: str, webhook_receiver: WebhookReceiver
) -> None:
    # A Slack channel, say, that wants new entries and withdrawals but not every correction.
    runtime = configure(make_config(redis_url, [], webhooks=[
        {"id": "desk", "url": webhook_receiver.url, "secret": TEST_SECRET,
         "events": ["entry.created", "entry.withdrawn"]}]))
    run_batch(client, runtime, wire_items("ninjs-v1.json"))
    run_batch(client, runtime, wire_items("ninjs-v2.json"))  # an update of one story, a kill of another
    run_worker(runtime.config, client, burst=True, simple=True)

    published = stream(client, runtime)
    assert "updated" in {e.status for e in published}
    wanted = [f"msg_{e.id}_v{e.version}" for e in published if e.status != "updated"]
    assert [r["headers"]["webhook-id"] for r in webhook_receiver.delivered] == wanted
    assert [r["body"]["type"] for r in webhook_receiver.delivered][-1] == "entry.withdrawn"


def test_a_webhook_taking_content_updates_skips_versions_that_only_add_a_source(
    client: redis.Redis, redis_url: str, webhook_receiver: WebhookReceiver
) -> None:
    runtime = configure(make_config(redis_url, [], webhooks=[
        {"id": "desk", "url": webhook_receiver.url, "secret": TEST_SECRET, "updates": "content"}]))
    first = next(i for i in wire_items("ninjs-v1.json") if "Odesa" in i.title)
    run_batch(client, runtime, [first])
    run_batch(client, runtime, [make_item("agency", 1, title=first.title, text=first.text)])  # joins: a source more
    run_batch(client, runtime, wire_items("ninjs-v2.json")[:1])  # the wire corrects it: a new headline
    run_worker(runtime.config, client, burst=True, simple=True)

    versions = stream(client, runtime)
    assert [(e.version, len(e.sources), e.headline == versions[0].headline) for e in versions] == [
        (1, 1, True), (2, 2, True), (3, 2, False)]
    assert [r["headers"]["webhook-id"] for r in webhook_receiver.delivered] == [
        f"msg_{versions[0].id}_v1", f"msg_{versions[0].id}_v3"]


def test_kill_of_one_source_keeps_the_story_without_it(client: redis.Redis, redis_url: str) -> None:
    runtime = configure(make_config(redis_url, []))
    original = wire_items("ninjs-v1.json")[0]
    syndicated = make_item("paper", 1, title="Missile strike hits port warehouse in Odesa - Paper",
                           text=original.text, url="https://paper.example/odesa")
    run_batch(client, runtime, [original, syndicated])
    kill = syndicated.model_copy(update={"pubstatus": "canceled", "content_hash": "killed"})

    run_batch(client, runtime, [kill])

    last = stream(client, runtime)[-1]
    assert last.status == "updated"
    assert [s.name for s in last.sources] == ["Wire Service"]


def test_immaterial_edit_is_remembered_but_not_republished(client: redis.Redis, redis_url: str) -> None:
    runtime = configure(make_config(redis_url, []))
    item = make_item("wire", 1)
    run_batch(client, runtime, [item])
    edited = item.model_copy(update={"text": item.text + "\nYour browser doesn't support HTML5 audio",
                                     "content_hash": "edited"})

    plan = run_batch(client, runtime, [edited])

    assert list(plan.outcomes.values()) == ["unchanged_content"]
    assert len(stream(client, runtime)) == 1


def test_embargoed_item_waits_until_the_embargo_ends(client: redis.Redis, redis_url: str) -> None:
    runtime = configure(make_config(redis_url, []))
    until = datetime.now(UTC) + timedelta(seconds=2)
    item = make_item("wire", 7).model_copy(update={"embargoed": until})

    run_batch(client, runtime, [item])
    run_worker(runtime.config, client, burst=True, simple=True)
    assert client.xlen(runtime.keys.entries_stream) == 0

    time.sleep(max(0.0, (until - datetime.now(UTC)).total_seconds()) + 0.3)
    run_worker(runtime.config, client, burst=True, simple=True)  # the scheduler releases the held batch
    entries = stream(client, runtime)
    assert [e.headline for e in entries] == [item.title]


def test_ninjs_page_reports_a_cursor_for_the_next_request() -> None:
    parsed = parse_feed(fixture_bytes("wire/ninjs-v2.json"), feed_id="wire", outlet="W", fetched=FETCHED)
    assert parsed.format == "ninjs"
    assert parsed.cursor == "2022-03-29T06:45:00+00:00"
    single = json.dumps(json.loads(fixture_bytes("wire/ninjs-v1.json"))["items"][0]).encode()
    assert len(parse_feed(single, feed_id="wire", outlet="W", fetched=FETCHED).items) == 1
