"""The long-term memory of what was published: one 64-bit mark per item and per exact key.

Within the story retention (2 days by default) the index keeps, per item, a seen mark naming its story
(``worker/packed_index.py``): an update or a kill needs the story it belongs to. Past the retention the
story is gone and only "already published" is left to know, for ``seen_ttl`` (7 days by default). That is
a membership test, and Redis stores small sets of integers as packed arrays ("intset", up to
``set-max-intset-entries``: 512 by default, 4,096 in the embedded server): 8 bytes a member instead of
~120 bytes a string key with a TTL.
A URL or guid is only ever asked "published already?" (an item that repeats one is dropped, not joined to
a story), so it has a mark and nothing else, from the start. So the marks are 64-bit hashes in sets
sharded by their top bits (4,096 shards, so a shard stays an intset up to ~2 million marks per generation
at Redis's default, ~16 million in the embedded server) and grouped by generation: a mark written in
generation ``g = floor(t / seen_ttl)`` is looked up in ``g`` and ``g - 1`` and its set expires at the end
of ``g + 1``. An item is thus remembered for at least ``seen_ttl`` and at most twice that.

Webhook deliveries are remembered the same way, in sets of their own (``P:dmark:``): a message delivered to
a webhook is only ever asked "delivered already?", by a retry or a replay, and a string key per delivery
(what earlier versions kept, ``P:delivered:``) cost ~130 bytes per delivery for ``seen_ttl``.

The hashes are 64-bit: two different items share a mark with probability ~n^2 / 2^65 (one in a billion
at 190,000 marks per generation); the cost of a collision is one item taken as already published.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable

SHARD_BITS = 12
_SHARD_SHIFT = 64 - SHARD_BITS


def seen_mark(item_id: str, content_hash: str) -> int:
    """The mark of an item with this content (a changed item is a new mark)."""
    digest = hashlib.blake2b(f"{item_id} {content_hash}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def delivery_mark(webhook_id: str, msg_id: str) -> int:
    """The mark of one message (``webhook-id``) delivered to one webhook."""
    digest = hashlib.blake2b(f"{webhook_id} {msg_id}".encode(), digest_size=8, person=b"delivery").digest()
    return int.from_bytes(digest, "big", signed=True)


def exact_mark(kind: str, digest: str) -> int:
    """The mark of a canonical URL or a guid; ``digest`` is already a hash (hex), so its bits are used."""
    value = int(digest[:16], 16) ^ (0 if kind == "url" else 0x5A5A5A5A5A5A5A5A)
    return value - (1 << 64) if value >= 1 << 63 else value


def shard(mark: int) -> int:
    """Which of the 4,096 sets of a generation holds ``mark``."""
    return (mark & 0xFFFF_FFFF_FFFF_FFFF) >> _SHARD_SHIFT


def generation(timestamp: float, seen_ttl: int) -> int:
    return int(timestamp // seen_ttl)


def expires_at(gen: int, seen_ttl: int) -> int:
    """Unix time at which a generation's sets are dropped: the end of the next generation."""
    return (gen + 2) * seen_ttl


# Which marks exist, in the current generation or the one before. ARGV: m x (key in the current generation,
# key in the previous one, member); returns m flags, 1 where the mark exists. Used for published items'
# marks (worker/publish.py) and for deliveries' (worker/notify.py): one EVAL for all of a batch's marks
# costs the caller about a third of two SISMEMBERs each on a pipeline.
REMEMBERED_LUA = """
local out = {}
for k = 1, #ARGV, 3 do
  local m = ARGV[k + 2]
  out[#out + 1] = (redis.call('SISMEMBER', ARGV[k], m) == 1 or redis.call('SISMEMBER', ARGV[k + 1], m) == 1)
                  and 1 or 0
end
return out
"""


def mark_args(
    marks: Iterable[int], set_key: Callable[[int, int], str], generations: tuple[int, ...]
) -> list[str | int]:
    """Per mark: the set that would hold it in each of ``generations`` (``set_key(generation, shard)``), then
    the mark: ``REMEMBERED_LUA``'s ARGV with two generations, and the marks check of the commit script."""
    args: list[str | int] = []
    for member in marks:
        at = shard(member)
        args += [*(set_key(g, at) for g in generations), member]
    return args
