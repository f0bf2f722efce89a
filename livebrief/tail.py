"""``livebrief tail``: print entries as a subscriber sees them (pub/sub), or catch up from the stream."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, cast

import redis

from livebrief.keys import Keys
from livebrief.models import Entry


def format_entry(entry: Entry) -> str:
    """One readable block per entry version."""
    marks = {"new": "NEW", "updated": f"UPDATE v{entry.version}", "withdrawn": f"WITHDRAWN v{entry.version}"}
    mark = marks[entry.status]
    topics = ",".join(entry.topics) or "-"
    names = ", ".join(s.name for s in entry.sources)
    lines = [f"[{mark}] [{topics}] {entry.headline}"]
    if entry.summary:
        lines.append(f"    {entry.summary}")
    lines.append(f"    sources: {names}   id={entry.id}")
    return "\n".join(lines)


def subscribe(client: redis.Redis, keys: Keys, topic: str | None) -> Iterator[Entry]:
    """Live entries from the topic channel (or all), as any Redis subscriber receives them."""
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(keys.topic_channel(topic) if topic else keys.all_channel)
    try:
        for message in pubsub.listen():
            if message["type"] == "message":
                yield Entry.model_validate_json(message["data"])
    finally:
        pubsub.close()


def read_stream(
    client: redis.Redis, keys: Keys, since: str, topic: str | None, follow: bool = True,
    stop: Callable[[], bool] | None = None,
) -> Iterator[tuple[str, Entry]]:
    """Entries from the durable stream after ``since`` (an entry id, ``0`` for all, ``$`` for new only)."""
    last = since
    while True:
        response = cast(list[Any], client.xread({keys.entries_stream: last}, count=500, block=1000 if follow else None))
        if not response:
            if not follow or (stop and stop()):
                return
            continue
        for message_id, fields in response[0][1]:
            last = message_id.decode() if isinstance(message_id, bytes) else message_id
            entry = Entry.model_validate_json(fields[b"entry"])
            if topic is None or topic in entry.topics:
                yield last, entry


def entry_json(entry: Entry) -> str:
    return json.dumps(entry.model_dump(mode="json"), ensure_ascii=False)
