"""The story index's small entries, packed: per LSH bucket its latest story, per published item its seen mark.

Each was a string key with a TTL (``P:lsh:<band>:<bucket>``, ``P:seen:<item>``), ~105 and ~136 bytes in
Redis for a ~21-byte story id or a ~40-byte mark: the key, its object and its expiry cost more than the
value. As fields of small hashes, which Redis keeps as packed arrays ("listpack", up to
``hash-max-listpack-entries`` fields of at most ``hash-max-listpack-value`` bytes: 512 and 64 by default),
they cost ~35-60 bytes (``benchmarks/bench_memory.py``).

A field cannot expire on its own before Redis 7.4, so the hashes are grouped by **generation**, as the
long-term marks are (``worker/marks.py``): generation ``g = floor(t / period)`` with ``period`` half the
story retention; an entry is written into the current generation, read from the current one and the two
before (and the next one, see ``LUA_FUNCTIONS``; the newest wins), and a generation's hashes expire at the
end of ``g + 2``. An entry is thus kept for 1 to 1.5 retentions (1.25 on average) where a string key was
kept for one.

How many hashes a generation has follows its volume, with no setting: **linear hashing**. A generation
starts with ``BASE`` hashes; whenever it holds more than ``LOAD`` fields per hash on average, the next hash
in turn is split in two (its fields whose slot now addresses the new hash move there), so no hash outgrows
the listpack limit and a small installation keeps few hashes. Its level and split pointer live in the
generation's meta hash ``P:ix:<g>``, with its field count and its write count (which the commit's check
compares, to look again only where another worker wrote since the read); the data hashes are
``P:ix:<g>:<n>``.
All of it runs inside Lua (``LUA_FUNCTIONS``): the batch's read script and the commit script, so a split
is atomic with the writes that caused it and a reader always addresses a consistent layout.

Fields: an item's own id (a 20-hex-digit hash); a bucket's 64-bit hash as a decimal integer (a listpack
stores it in 9 bytes; two buckets sharing one could only offer a wrong candidate story, which the
signature check then rejects). A field's *slot*, which picks its hash, is the first 32 bits of its SHA-1,
computed here and, when a split moves it, again in Lua (``redis.sha1hex``).

Upgrading from the string keys: the first commit of this version sets ``P:ix:since``. On an installation
that had published before (its stream exists), it holds the time until which the old keys may still
exist (now + the retention); batches read the old keys too until then, read only, so an update or a
kill of an item published before the upgrade still finds its story.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple, cast

import redis

from livebrief.keys import Keys

BASE = 16  # hashes a generation starts with
LOAD = 32  # mean fields per hash before the next split (a hash then holds ~21-64: listpack at any default)
GENERATIONS = 3  # read: the current generation and the two before it
PERIODS = 2  # generations per story retention


class IndexField(NamedTuple):
    """A field of the packed index, and the slot that picks its hash in a generation."""

    name: str
    slot: int


def _field(name: str) -> IndexField:
    return IndexField(name, int.from_bytes(hashlib.sha1(name.encode()).digest()[:4], "big"))


def item_field(item_id: str) -> IndexField:
    """Where an item's seen mark (``worker.stories.SeenMark``) is kept."""
    return _field(item_id)


# A batch names each of its buckets twice (read, then write), and copies of a story share theirs.
@lru_cache(maxsize=65536)
def bucket_field(band: int, bucket: str) -> IndexField:
    """Where an LSH bucket's latest story id is kept."""
    digest = hashlib.blake2b(f"{band} {bucket}".encode(), digest_size=8, person=b"lsh").digest()
    return _field(str(int.from_bytes(digest, "big", signed=True)))


def period_ms(retention: int) -> int:
    return max(1, retention * 1000 // PERIODS)


def generation(timestamp: float, retention: int) -> int:
    return int(timestamp * 1000) // period_ms(retention)


def ttl_ms(timestamp: float, retention: int) -> int:
    """How long a generation's hashes are kept from ``timestamp``: to the end of the last generation that
    reads it. Relative, not a time of day, so a batch decided at a given ``now`` (tests replay past days)
    keeps its entries as long as one decided at the present."""
    gen = generation(timestamp, retention)
    return (gen + GENERATIONS) * period_ms(retention) - int(timestamp * 1000)


# Lua shared by the read script below and the commit script (worker/publish.py). A generation's layout
# (``meta``): {level, split pointer, fields, writes}; it has BASE * 2^level + split hashes.
LUA_FUNCTIONS = f"""
local IX_BASE, IX_LOAD, IX_GENERATIONS = {BASE}, {LOAD}, {GENERATIONS}
local function ix_meta(prefix, gen)
  local name = prefix .. ':' .. gen
  local m = redis.call('HMGET', name, 'level', 'split', 'fields', 'writes')
  local level = tonumber(m[1]) or 0
  return {{name = name, stem = name .. ':', level = level, size = IX_BASE * 2 ^ level,
           split = tonumber(m[2]) or 0, fields = tonumber(m[3]) or 0, writes = tonumber(m[4]) or 0}}
end
local function ix_key(meta, slot)
  local at = slot % meta.size
  if at < meta.split then at = slot % (2 * meta.size) end
  return meta.stem .. at
end
-- The layouts of the generations read at generation gen, newest first: the next one too, which a worker
-- whose clock is a little ahead (or a batch decided just after this one) may have begun; so two workers
-- deciding on one entry across a generation's end still see each other's write (as worker/marks.py does).
local function ix_layouts(prefix, gen)
  local metas = {{}}
  for back = -1, IX_GENERATIONS - 1 do metas[back + 2] = ix_meta(prefix, gen - back) end
  return metas
end
-- The newest value of a field in the generations read and where it was found (1: the newest), or false, 0.
local function ix_lookup(metas, field, slot)
  for k = 1, #metas do
    if metas[k].fields > 0 then
      local value = redis.call('HGET', ix_key(metas[k], slot), field)
      if value then return value, k end
    end
  end
  return false, 0
end
-- Whether a field still has the value a read found (``at``, as ix_lookup returned it, and ``expected``),
-- given the layouts then and now: only the generations written since (their ``writes`` differ; an
-- expired one reads 0) can have changed, so only those are looked at, from the newest down to ``at``.
local function ix_unchanged(before, now, field, slot, at, expected)
  for k = 1, (at == 0 and #now or at) do
    if now[k].writes ~= before[k] then
      local value = now[k].fields > 0 and redis.call('HGET', ix_key(now[k], slot), field)
      if value then return value == expected end
      if k == at then return false end
    end
  end
  return true
end
-- The commit's check, ARGV from ``at`` as ``check_args`` wrote it: whether every field read still has the
-- value the read found; and where its arguments end.
local function ix_check(prefix, gen, at)
  local now, before, written = ix_layouts(prefix, gen), {{}}, false
  for k = 1, #now do
    before[k] = tonumber(ARGV[at + k - 1])
    written = written or before[k] ~= now[k].writes
  end
  at = at + #now
  local stop = at + 1 + 4 * tonumber(ARGV[at])
  if written then  -- else no field can have changed: nothing to look at
    for f = at + 1, stop - 1, 4 do
      if not ix_unchanged(before, now, ARGV[f], tonumber(ARGV[f + 1]), tonumber(ARGV[f + 2]), ARGV[f + 3]) then
        return false, stop
      end
    end
  end
  return true, stop
end
local function ix_split(meta, ttl_ms)
  local from, to = meta.stem .. meta.split, meta.stem .. (meta.split + meta.size)
  local all = redis.call('HGETALL', from)
  local moved, names = {{}}, {{}}
  for k = 1, #all, 2 do
    if tonumber(string.sub(redis.sha1hex(all[k]), 1, 8), 16) % (2 * meta.size) ~= meta.split then
      moved[#moved + 1] = all[k]
      moved[#moved + 1] = all[k + 1]
      names[#names + 1] = all[k]
    end
  end
  if #names > 0 then
    redis.call('HSET', to, unpack(moved))
    redis.call('PEXPIRE', to, ttl_ms)
    redis.call('HDEL', from, unpack(names))
  end
  meta.split = meta.split + 1
  if meta.split == meta.size then meta.level, meta.size, meta.split = meta.level + 1, 2 * meta.size, 0 end
end
-- Set fields in generation gen, splitting as it fills: ARGV from ``at`` as ``write_args`` wrote it (their
-- count, then field, slot, value each); returns where they end.
local function ix_write(prefix, gen, ttl_ms, at)
  local stop = at + 1 + 3 * tonumber(ARGV[at])
  if stop == at + 1 then return stop end
  local meta = ix_meta(prefix, gen)
  local touched = {{}}
  for k = at + 1, stop - 1, 3 do
    local key = ix_key(meta, tonumber(ARGV[k + 1]))
    meta.fields = meta.fields + redis.call('HSET', key, ARGV[k], ARGV[k + 2])
    touched[key] = true
    while meta.fields > IX_LOAD * (meta.size + meta.split) do ix_split(meta, ttl_ms) end
  end
  for key in pairs(touched) do redis.call('PEXPIRE', key, ttl_ms) end
  redis.call('HSET', meta.name, 'level', meta.level, 'split', meta.split, 'fields', meta.fields,
             'writes', meta.writes + 1)
  redis.call('PEXPIRE', meta.name, ttl_ms)
  return stop
end
"""

# The values of fields, newest generation first. ARGV: prefix, generation, then (field, slot) pairs; returns
# the write count of each generation read (``GENERATIONS + 1``), then per field where its value was found
# (0: nowhere) and the value (nil).
READ_LUA = LUA_FUNCTIONS + """
local metas = ix_layouts(ARGV[1], tonumber(ARGV[2]))
local out = {}
for k = 1, #metas do out[k] = metas[k].writes end
for k = 3, #ARGV, 2 do
  local value, at = ix_lookup(metas, ARGV[k], tonumber(ARGV[k + 1]))
  out[#out + 1] = at
  out[#out + 1] = value
end
return out
"""


@dataclass
class IndexRead:
    """What a batch read of the packed index: each field's value and where it was found, and each
    generation's write count, which the commit script's check starts from."""

    values: list[bytes | None]
    found_at: list[int]
    writes: list[int]

    @classmethod
    def of(cls, reply: list[bytes | int | None]) -> IndexRead:
        head = GENERATIONS + 1
        return cls(cast(list[bytes | None], reply[head + 1 :: 2]), cast(list[int], reply[head::2]),
                   cast(list[int], reply[:head]))


def read_args(prefix: str, gen: int, fields: list[IndexField]) -> list[str | int]:
    args: list[str | int] = [prefix, gen]
    for f in fields:
        args += [f.name, f.slot]
    return args


def check_args(fields: list[IndexField], read: IndexRead) -> list[str | bytes | int]:
    """``ix_check``'s arguments: each generation's write count as read, the fields' count, then per field
    (field, slot, where found, value)."""
    args: list[str | bytes | int] = [*read.writes, len(fields)]
    for f, at, value in zip(fields, read.found_at, read.values, strict=True):
        args += [f.name, f.slot, at, b"" if value is None else value]
    return args


def write_args(writes: list[tuple[IndexField, str]]) -> list[str | int]:
    """``ix_write``'s arguments: the fields' count, then per field (field, slot, value)."""
    args: list[str | int] = [len(writes)]
    for f, value in writes:
        args += [f.name, f.slot, value]
    return args


def read_fields(client: redis.Redis, keys: Keys, retention: int, fields: list[IndexField],
                now: float | None = None) -> list[bytes | None]:
    """The values of ``fields`` as a batch at ``now`` would read them (one EVAL; a batch reads its fields
    in a pipeline with the rest of the index, ``worker/publish.py``). Redis holds an EVAL while writes are
    paused (CLIENT PAUSE WRITE), since a script may write."""
    gen = generation(time.time() if now is None else now, retention)
    args = cast(list[str], read_args(keys.packed_index, gen, fields))
    return IndexRead.of(cast(list[bytes | int | None], client.eval(READ_LUA, 0, *args))).values
