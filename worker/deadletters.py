"""The dead-letter list (``P:deadletter``): webhook messages that will not be posted unless someone asks.

A message goes there after its last retry, or past its webhook's ``max_age`` (``worker/notify.py``). Each
letter is the JSON of ``{"webhook", "delivery", "entry", "error", "failed_at"}``, newest first. The list
keeps the newest ``worker.dead_letters_max``: a push past that drops the oldest, and counts them per webhook
in the same call (``push``), so a receiver gone for good cannot grow Redis without end.

``take`` goes through the letters oldest first, a chunk at a time, and removes those it picks in the same
MULTI as what the caller does with them (re-queue them: ``livebrief webhooks replay``); ``clear`` deletes.
Neither reads the whole list at once nor scans it once per letter: at the default bound the list holds
~100 MB, and removing letters one LREM at a time took QA 2 min 41 s.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import redis
import structlog

from livebrief.keys import DEAD_LETTERS, DEAD_LETTERS_DROPPED, Keys, counter_field

log = structlog.get_logger(__name__)
__all__ = ["Letter", "counts", "clear", "push", "take"]

Letter = dict[str, Any]
CHUNK = 1000  # letters read per round trip
# Letters are written by json.dumps with the webhook first, and webhook ids need no escaping (letters,
# digits, '.', '_', '-'): its id is read without parsing the ~1 KB letter.
_WEBHOOK_FIRST = re.compile(rb'^\{"webhook": "([^"\\]*)"')

# Push the letters (ARGV[4..]) and count them (ARGV[2]); past ARGV[1] letters (0: no bound), drop the oldest
# and count those per webhook (ARGV[3] .. webhook): one call, so no letter is dropped uncounted.
_PUSH_LUA = """
local n = redis.call('LPUSH', KEYS[1], unpack(ARGV, 4))
redis.call('HINCRBY', KEYS[2], ARGV[2], #ARGV - 3)
local most = tonumber(ARGV[1])
if most == 0 or n <= most then return {} end
local by_webhook = {}
for _, raw in ipairs(redis.call('LRANGE', KEYS[1], most, -1)) do
  local webhook = string.match(raw, '^{"webhook": "([^"\\\\]*)"')
  if not webhook then
    local ok, letter = pcall(cjson.decode, raw)
    webhook = ok and type(letter) == 'table' and type(letter.webhook) == 'string' and letter.webhook or '?'
  end
  by_webhook[webhook] = (by_webhook[webhook] or 0) + 1
end
redis.call('LTRIM', KEYS[1], 0, most - 1)
local dropped = {}
for webhook, count in pairs(by_webhook) do
  redis.call('HINCRBY', KEYS[2], ARGV[3] .. webhook, count)
  table.insert(dropped, webhook)
  table.insert(dropped, count)
end
return dropped
"""

# ARGV: (index from the tail, SHA-1 of the letter) pairs: the digest, not the ~1 KB letter, is sent back.
# Each letter still at its index becomes a placeholder, and one pass from the tail removes them all,
# stopping at the last: an LREM per letter would scan the list once each. Indices from the tail do not move
# as letters are pushed at the head; a letter no longer at its index (another replay, a trim) is left.
_PLACEHOLDER = "livebrief:taken"  # no letter is this: each is a JSON object
_TAKE_LUA = f"""
local taken = 0
for i = 1, #ARGV, 2 do
  local letter = redis.call('LINDEX', KEYS[1], ARGV[i])
  if letter and redis.sha1hex(letter) == ARGV[i + 1] then
    redis.call('LSET', KEYS[1], ARGV[i], '{_PLACEHOLDER}')
    taken = taken + 1
  end
end
if taken > 0 then redis.call('LREM', KEYS[1], -taken, '{_PLACEHOLDER}') end
return taken
"""


def push(connection: redis.Redis, keys: Keys, webhook_id: str, messages: Sequence[Sequence[str]], error: str,
         most: int, also: Callable[[redis.client.Pipeline], object] | None = None) -> dict[str, int]:
    """Put ``webhook_id``'s ``messages`` ((webhook-id, entry JSON) pairs), failed with ``error``, first in the
    list, which keeps the ``most`` newest (0: all; ``worker.dead_letters_max``), with what ``also`` queues on
    the same MULTI; returns how many older letters were dropped, per webhook."""
    failed_at = datetime.now(UTC).isoformat()
    letters = [{"webhook": webhook_id, "delivery": msg_id, "entry": entry_json, "error": error, "failed_at": failed_at}
               for msg_id, entry_json in messages]
    with connection.pipeline() as pipe:
        pipe.multi()
        if also is not None:
            also(pipe)
        pipe.eval(_PUSH_LUA, 2, keys.deadletter, keys.counters, str(most),
                  counter_field(DEAD_LETTERS, webhook_id), counter_field(DEAD_LETTERS_DROPPED, ""),
                  *(json.dumps(letter) for letter in letters))
        reply = cast(list[bytes | int], pipe.execute()[-1])
    dropped = {cast(bytes, reply[i]).decode(): int(reply[i + 1]) for i in range(0, len(reply), 2)}
    if dropped:
        log.warning("dead_letters_dropped", dropped=dropped, kept=most,
                    hint="replay or clear the dead letters, or raise worker.dead_letters_max")
    return dropped


def _webhook(raw: bytes) -> str:
    """The webhook of a stored letter."""
    found = _WEBHOOK_FIRST.match(raw)
    return found.group(1).decode() if found else str(json.loads(raw).get("webhook", "?"))


def _chunk(client: redis.Redis, keys: Keys, end: int) -> list[tuple[int, bytes]]:
    """(index from the tail, raw letter) of up to ``CHUNK`` letters, oldest first, the oldest at ``end``."""
    raws = cast(list[bytes], client.lrange(keys.deadletter, end - CHUNK + 1, end))
    return [(end - offset, raw) for offset, raw in enumerate(reversed(raws))]


def counts(client: redis.Redis, keys: Keys) -> Counter[str]:
    """Letters waiting, per webhook."""
    found: Counter[str] = Counter()
    end = -1
    while chunk := _chunk(client, keys, end):
        found.update(_webhook(raw) for _, raw in chunk)
        end -= len(chunk)
    return found


def take(client: redis.Redis, keys: Keys, pick: Callable[[str], bool],
         act: Callable[[redis.client.Pipeline, list[Letter]], object] | None = None) -> int:
    """Remove the letters of the webhooks ``pick`` accepts, oldest first, each chunk in one MULTI with what
    ``act`` queues for them; returns how many were removed."""
    taken = 0
    end = -1
    while chunk := _chunk(client, keys, end):
        picked = [(index, raw) for index, raw in chunk if pick(_webhook(raw))]
        removed = 0
        if picked:
            with client.pipeline() as pipe:
                pipe.multi()
                if act is not None:
                    act(pipe, [json.loads(raw) for _, raw in picked])
                pairs = [part for index, raw in picked
                         for part in (str(index), hashlib.sha1(raw, usedforsecurity=False).hexdigest())]
                pipe.eval(_TAKE_LUA, 1, keys.deadletter, *pairs)
                removed = int(pipe.execute()[-1])
            taken += removed
        end -= len(chunk) - removed  # the letters removed no longer count from the tail
    return taken


def clear(client: redis.Redis, keys: Keys, webhook_id: str | None) -> int:
    """Delete the letters (all, or one webhook's, configured or not); returns how many were deleted."""
    if webhook_id is None:
        with client.pipeline() as pipe:  # MULTI: what is counted is what is deleted
            pipe.llen(keys.deadletter)
            pipe.delete(keys.deadletter)
            return int(pipe.execute()[0])
    return take(client, keys, lambda webhook: webhook == webhook_id)
