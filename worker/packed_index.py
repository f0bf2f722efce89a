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
generation's meta hash ``P:ix:<g>`` (with its field count); the data hashes are ``P:ix:<g>:<n>`` (hex).
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
from typing import cast

import redis

from livebrief.keys import Keys

BASE = 16  # hashes a generation starts with
LOAD = 64  # mean fields per hash before the next split (a hash then holds ~43-128: listpack at the default)
GENERATIONS = 3  # read: the current generation and the two before it
PERIODS = 2  # generations per story retention


@dataclass(frozen=True)
class IndexField:
    """A field of the packed index, and the slot that picks its hash in a generation."""

    name: str
    slot: int


def _field(name: str) -> IndexField:
    return IndexField(name, int(hashlib.sha1(name.encode()).hexdigest()[:8], 16))


def item_field(item_id: str) -> IndexField:
    """Where an item's seen mark (``worker.stories.SeenMark``) is kept."""
    return _field(item_id)


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
# (``meta``): {level, split pointer, fields}; it has BASE * 2^level + split hashes.
LUA_FUNCTIONS = f"""
local IX_BASE, IX_LOAD, IX_GENERATIONS = {BASE}, {LOAD}, {GENERATIONS}
local function ix_meta(prefix, gen)
  local m = redis.call('HMGET', prefix .. ':' .. gen, 'level', 'split', 'fields')
  return {{tonumber(m[1]) or 0, tonumber(m[2]) or 0, tonumber(m[3]) or 0}}
end
local function ix_key(prefix, gen, meta, slot)
  local size = IX_BASE * 2 ^ meta[1]
  local at = slot % size
  if at < meta[2] then at = slot % (2 * size) end
  return prefix .. ':' .. gen .. ':' .. string.format('%x', at)
end
-- The layouts of the generations read at generation gen: the next one too, which a worker whose clock is
-- a little ahead (or a batch decided just after this one) may have begun; so two workers deciding on one
-- entry across a generation's end still see each other's write (worker/marks.py does the same).
local function ix_layouts(prefix, gen)
  local metas = {{}}
  for back = -1, IX_GENERATIONS - 1 do metas[back + 2] = ix_meta(prefix, gen - back) end
  return metas
end
-- The newest value of a field in the generations read, or false.
local function ix_lookup(prefix, gen, metas, field, slot)
  for back = -1, IX_GENERATIONS - 1 do
    local meta = metas[back + 2]
    if meta[3] > 0 then
      local value = redis.call('HGET', ix_key(prefix, gen - back, meta, slot), field)
      if value then return value end
    end
  end
  return false
end
local function ix_split(prefix, gen, meta, ttl_ms)
  local size = IX_BASE * 2 ^ meta[1]
  local from = prefix .. ':' .. gen .. ':' .. string.format('%x', meta[2])
  local to = prefix .. ':' .. gen .. ':' .. string.format('%x', meta[2] + size)
  local all = redis.call('HGETALL', from)
  local moved, names = {{}}, {{}}
  for k = 1, #all, 2 do
    if tonumber(string.sub(redis.sha1hex(all[k]), 1, 8), 16) % (2 * size) ~= meta[2] then
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
  meta[2] = meta[2] + 1
  if meta[2] == size then meta[1], meta[2] = meta[1] + 1, 0 end
end
-- Set fields (a flat list: field, slot, value, ...) in generation gen, splitting as it fills.
local function ix_write(prefix, gen, ttl_ms, entries)
  if #entries == 0 then return end
  local meta = ix_meta(prefix, gen)
  local touched = {{}}
  for k = 1, #entries, 3 do
    local key = ix_key(prefix, gen, meta, tonumber(entries[k + 1]))
    meta[3] = meta[3] + redis.call('HSET', key, entries[k], entries[k + 2])
    touched[key] = true
    while meta[3] > IX_LOAD * (IX_BASE * 2 ^ meta[1] + meta[2]) do ix_split(prefix, gen, meta, ttl_ms) end
  end
  for key in pairs(touched) do redis.call('PEXPIRE', key, ttl_ms) end
  local name = prefix .. ':' .. gen
  redis.call('HSET', name, 'level', meta[1], 'split', meta[2], 'fields', meta[3])
  redis.call('PEXPIRE', name, ttl_ms)
end
"""

# The values of fields, newest generation first. ARGV: prefix, generation, then (field, slot) pairs; returns
# one value per field, nil where it has none.
READ_LUA = LUA_FUNCTIONS + """
local prefix, gen = ARGV[1], tonumber(ARGV[2])
local metas = ix_layouts(prefix, gen)
local out = {}
for k = 3, #ARGV, 2 do out[#out + 1] = ix_lookup(prefix, gen, metas, ARGV[k], tonumber(ARGV[k + 1])) end
return out
"""


def read_args(prefix: str, gen: int, fields: list[IndexField]) -> list[str | int]:
    args: list[str | int] = [prefix, gen]
    for f in fields:
        args += [f.name, f.slot]
    return args


def check_args(reads: list[tuple[IndexField, bytes | None]]) -> list[str | bytes | int]:
    """Per field read, (field, slot, present, value) for the commit script's check, after their count."""
    args: list[str | bytes | int] = [len(reads)]
    for f, value in reads:
        args += [f.name, f.slot, "0" if value is None else "1", b"" if value is None else value]
    return args


def write_args(writes: list[tuple[IndexField, str]]) -> list[str | int]:
    args: list[str | int] = [len(writes)]
    for f, value in writes:
        args += [f.name, f.slot, value]
    return args


def read_fields(client: redis.Redis, keys: Keys, retention: int, fields: list[IndexField],
                now: float | None = None) -> list[bytes | None]:
    """The values of ``fields`` as a batch at ``now`` would read them (one EVAL; a batch reads its fields
    in a pipeline with the rest of the index, ``worker/publish.py``)."""
    gen = generation(time.time() if now is None else now, retention)
    args = cast(list[str], read_args(keys.packed_index, gen, fields))
    return cast(list[bytes | None], client.eval(READ_LUA, 0, *args))
