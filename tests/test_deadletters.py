"""Specifications of the dead-letter list (worker/deadletters.py): bounded, counted, taken oldest first."""

from __future__ import annotations

import json

import redis

from feeds.status import read_counters
from livebrief.keys import Keys
from worker import deadletters

KEYS = Keys("livebrief")


def messages(*ids: str) -> list[tuple[str, str]]:
    """(webhook-id, entry JSON) pairs, as a delivery job carries them."""
    return [(i, "{}") for i in ids]


def stored(client: redis.Redis) -> list[str]:
    """Delivery ids in the list, newest first."""
    return [json.loads(raw)["delivery"] for raw in client.lrange(KEYS.deadletter, 0, -1)]


def test_past_the_bound_the_oldest_are_dropped_and_counted_for_their_own_webhook(client: redis.Redis) -> None:
    assert deadletters.push(client, KEYS, "a", messages("a1", "a2"), "500", 3) == {}
    assert deadletters.push(client, KEYS, "b", messages("b1", "b2"), "500", 3) == {"a": 1}  # the oldest, a1, goes
    assert stored(client) == ["b2", "b1", "a2"]
    assert deadletters.push(client, KEYS, "c", messages("c1", "c2", "c3", "c4"), "500", 3) == {"a": 1, "b": 2, "c": 1}
    assert stored(client) == ["c4", "c3", "c2"]
    assert deadletters.push(client, KEYS, "d", messages("d1"), "500", 0) == {}  # 0: no bound
    assert client.llen(KEYS.deadletter) == 4
    counters = read_counters(client, KEYS)
    assert counters.dead_letters == {"a": 2, "b": 2, "c": 4, "d": 1}
    assert counters.dead_letters_dropped == {"a": 2, "b": 2, "c": 1}


def test_a_letter_written_in_another_key_order_is_still_counted_for_its_webhook(client: redis.Redis) -> None:
    client.lpush(KEYS.deadletter, json.dumps({"delivery": "x1", "webhook": "old", "entry": "{}"}))
    assert deadletters.counts(client, KEYS) == {"old": 1}
    assert deadletters.push(client, KEYS, "a", messages("a1"), "500", 1) == {"old": 1}


def test_letters_are_taken_oldest_first_across_chunks_and_the_others_keep_their_order(client: redis.Redis) -> None:
    total = 2 * deadletters.CHUNK + 500  # three chunks
    for n in range(total):
        deadletters.push(client, KEYS, "ab"[n % 2], messages(f"m{n}"), "500", 0)
    seen: list[str] = []
    taken = deadletters.take(client, KEYS, lambda webhook: webhook == "a",
                             lambda pipe, batch: seen.extend(letter["delivery"] for letter in batch))
    assert taken == total // 2
    assert seen == [f"m{n}" for n in range(0, total, 2)]  # oldest first
    assert stored(client) == [f"m{n}" for n in reversed(range(1, total, 2))]
    assert deadletters.counts(client, KEYS) == {"b": total // 2}


def test_letters_pushed_while_taking_are_left_alone(client: redis.Redis) -> None:
    for n in range(3 * deadletters.CHUNK):
        deadletters.push(client, KEYS, "a", messages(f"m{n}"), "500", 0)

    def meanwhile(pipe: redis.client.Pipeline, batch: list[deadletters.Letter]) -> None:
        # A failing delivery dead-letters new messages at the head, as the list is taken from the tail.
        pipe.lpush(KEYS.deadletter, json.dumps({"webhook": "new", "delivery": f"n{len(batch)}", "entry": "{}"}))

    assert deadletters.take(client, KEYS, lambda webhook: webhook == "a", meanwhile) == 3 * deadletters.CHUNK
    assert deadletters.counts(client, KEYS) == {"new": 3}


def test_clear_deletes_one_webhooks_letters_or_all(client: redis.Redis) -> None:
    deadletters.push(client, KEYS, "a", messages("a1", "a2"), "500", 0)
    deadletters.push(client, KEYS, "gone", messages("g1"), "500", 0)
    deadletters.push(client, KEYS, "a", messages("a3"), "500", 0)
    assert deadletters.clear(client, KEYS, "a") == 3
    assert stored(client) == ["g1"]
    assert deadletters.clear(client, KEYS, "nobody") == 0
    assert deadletters.clear(client, KEYS, None) == 1
    assert not client.exists(KEYS.deadletter)
