"""``livebrief tail``: print entries as they are published, or from an earlier point, read from the stream."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import redis
import yaml

from livebrief.config import read_utf8
from livebrief.errors import ConfigError, UsageError
from livebrief.keys import Keys
from livebrief.models import Entry
from livebrief.numbers import ascii_int

_ID_PART_LIMIT = 2**64  # each part of a stream id is an unsigned 64-bit number in Redis


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


def check_since(value: str) -> str:
    """``value`` when the stream can be read after it: ``$`` (from now on), ``0`` (all history), or an entry
    id ``MS-SEQ`` or ``MS`` (``MS`` being a Unix time in milliseconds); raises ``UsageError`` otherwise, which
    Redis would answer with an error only once the command runs."""
    if value == "$":
        return value
    parts = value.split("-")
    numbers = [ascii_int(part, max_digits=20) for part in parts]
    if len(parts) > 2 or any(n is None or n >= _ID_PART_LIMIT or part != part.strip()
                             for n, part in zip(numbers, parts, strict=True)):
        raise UsageError(f"--since takes a stream id: 0 for all history, an id printed before (MS-SEQ), "
                         f"or MS, a Unix time in milliseconds; not {value!r}")
    return value


def read_stream(
    client: redis.Redis, keys: Keys, since: str, topic: str | None, follow: bool = True,
    stop: Callable[[], bool] | None = None,
) -> Iterator[tuple[str, Entry]]:
    """Entries from the durable stream after ``since`` (an entry id, ``0`` for all, ``$`` for those added from
    now on). Each read asks for what follows the last entry given, so a client that retries a lost Redis (a
    restart, a Sentinel failover; ``livebrief tail``'s never stops retrying) goes on with nothing missed or given twice,
    which a pub/sub subscriber cannot promise: messages published while it reconnects are gone."""
    last = _last_id(client, keys) if since == "$" else since
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


def _last_id(client: redis.Redis, keys: Keys) -> str:
    """The id of the stream's newest entry: ``$`` sent again after a reconnect would skip whatever was added
    while the client was away."""
    newest = cast(list[tuple[bytes, Any]], client.xrevrange(keys.entries_stream, count=1))
    return newest[0][0].decode() if newest else "0"


def entry_json(entry: Entry, stream_id: str | None = None) -> str:
    """The entry's JSON, with ``stream_id`` (its id on the stream, to read on from with ``--since``) when given:
    an extra field, which the entry schema allows and ``Entry`` ignores."""
    fields = entry.model_dump(mode="json")
    if stream_id is not None:
        fields["stream_id"] = stream_id
    return json.dumps(fields, ensure_ascii=False)


def check_topic(topic: str, topics_path: Path) -> None:
    """``UsageError`` when the topics file the workers read (when this machine has it) defines no ``topic``:
    a typo would print nothing, forever."""
    try:
        data = yaml.safe_load(read_utf8(topics_path))
    except (OSError, ConfigError, yaml.YAMLError):
        return  # a subscriber's machine may not have the workers' topics file
    names = data.get("topics") if isinstance(data, dict) else None
    if isinstance(names, dict) and topic not in names:
        raise UsageError(f"--topic {topic!r} is not a topic of {topics_path}: {', '.join(map(str, names))}")
