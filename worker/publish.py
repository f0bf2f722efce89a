"""The atomic step: mark seen + update the story index + XADD + PUBLISH + enqueue webhook deliveries + count.

Optimistic concurrency, checked inside one Lua call: the batch reads the index (MGET, and the packed
index's fields through ``worker.packed_index.READ_LUA``), decides, and then
sends every key it read with the value it saw (a SHA-1 for story records). The script compares them
first and writes nothing when any differs; otherwise it writes everything. So two workers racing on
copies of one story cannot both create it: the loser's call reports a conflict, it re-reads the index
and joins the winner's story.
Because "seen" and "published" are written in the same call, a batch retried after a crash publishes
only what it had not published, and the delivery jobs are queued by that same call, so none is lost or
doubled either.

Workers take turns to commit (``_turn``): a batch waits for the turn before it reads, and its script ends
the turn. That only spares work (a conflict decides a batch again); the check above is what keeps the
index right, with or without a turn.

Every commit also sets the *stamp* (``Keys.commit_stamp``) to a random value of its own, and a batch reads
it first, with the index. A batch in its turn sends its commit without the check (the *stamp form*): the
script compares the stamp only. Unchanged, nothing has been committed since the read, so what was read is
still there, and the check would have compared ~20 values an item for nothing (~1/3 of the script's time,
and a third of its arguments: ``benchmarks/README.md``). Changed (another batch committed without the
turn, or this batch's turn lapsed), the script returns -2 without ending the turn and the batch sends the
*checked form* at once; a batch that has no turn sends that form from the start. Only commit scripts write
what a batch reads (besides expiry, which only ages a view as if it had been committed at its read); a
random stamp, not a counter, so that a failover that loses the last commits cannot bring back a value a
batch read.

Why not WATCH/MULTI: Redis 7.0 checks each newly watched key against every key the client already
watches, so WATCH costs time quadratic in the keys watched (measured: 300 keys 0.3 ms, 1,200 keys 4.5 ms);
a 50-item batch reads ~600 index keys and ~800 story keys. Comparing values is linear and detects exactly
what WATCH would (a change, a deletion, an expiry), except a rewrite to the same value, which could not
change a decision.

Round trips per batch: SET NX (the turn; one more each ms another batch has it), GET (the stamp), EVAL
(packed index), EVAL (``worker.marks.REMEMBERED_LUA``, long-term marks) and MGET (term lists) in one
pipeline, MGET (candidate stories), EVAL (``_COMMIT_LUA``; a second one when the stamp has changed). An
item's own long-term mark needs no check: one the batch did not find is written as its seen mark too,
which the check covers. A URL's or guid's mark is all the index keeps of it (``worker/marks.py``), so the
script checks that every such mark the batch did not find is still missing, in the generations either side
too (a worker racing this one may have just started the next one): two workers publishing one URL at once
cannot both win.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import cast

import redis
import structlog

from livebrief.config import WorkerConfig
from livebrief.errors import BatchConflictError
from livebrief.keys import BATCHES, CONFLICTS, ITEMS, VERSIONS, Keys, counter_field
from livebrief.models import Entry
from worker import packed_index
from worker.marks import REMEMBERED_LUA, expires_at, generation, mark_args, shard
from worker.packed_index import IndexField, bucket_field, item_field
from worker.prepare import Prepared
from worker.records import decode_story, pack_story, written_story
from worker.stories import BatchPlan, IndexView, SeenMark, StoryRecord, candidate_story_ids, new_story, plan_batch

log = structlog.get_logger(__name__)

MAX_ATTEMPTS = 50
# Turns (``Keys.commit_turn``): the workers' commits overlap in time, and at 1,000 items/s ~23 of every
# 100 attempts found a key changed by the other worker (mostly a term's list of recent stories, changed by
# a new story that really was a candidate), so the batch was read and decided again: ~5% of the load's CPU
# thrown away. A batch now waits for its turn before it reads and the commit script ends the turn, so
# commits follow one another: no conflicts in that benchmark, ~1.6 polls a batch. The check by value
# stays: a batch that waited TURN_WAIT in vain commits without a turn, and a turn whose worker died
# lapses after TURN_MS, safe either way. Four workers on two cores wait longer: with TURN_WAIT 50 ms,
# 21-22 conflicts per 100 attempts were left (57-58 without turns); with 200 ms, 0.3-1.6.
TURN_MS = 1000
TURN_WAIT = 0.2
TURN_POLL = 0.001  # a commit takes a few ms; a blocking wait (BLPOP) would need Redis 6 for its timeout
# Ends a turn only if it is still the batch's own (it may have lapsed and been taken by another): the commit
# script's way, and ``_turn``'s when a batch fails before its script ran.
_END_TURN_FN = """
local function end_turn(turn, token)
  if token ~= '' and redis.call('GET', turn) == token then redis.call('DEL', turn) end
end
"""
_END_TURN_LUA = _END_TURN_FN + "end_turn(KEYS[1], ARGV[1]) return 0"


@contextmanager
def _turn(client: redis.Redis, key: str) -> Iterator[str]:
    """Wait up to ``TURN_WAIT`` for the commit turn, and give its token ("" if none came) to the commit
    script, which ends the turn. Ended here if anything fails before the script has ended it."""
    token = f"{random.getrandbits(64):016x}"
    deadline = time.monotonic() + TURN_WAIT
    while not client.set(key, token, nx=True, px=TURN_MS):
        if time.monotonic() >= deadline:
            token = ""
            break
        time.sleep(TURN_POLL)
    try:
        yield token
    except BaseException:
        if token:
            try:
                client.eval(_END_TURN_LUA, 1, key, token)
            except redis.RedisError:  # Redis gone: the turn lapses after TURN_MS
                pass
        raise


# Called with each published entry, its JSON and whether it only changed sources (``BatchPlan.sources_only``),
# and a pipeline to queue delivery jobs on (recorded, then run by the commit script); returns the number of
# messages queued.
EnqueueDeliveries = Callable[[list[tuple[Entry, str, bool]], "redis.client.Pipeline"], int]


def _decode(value: bytes | None) -> str | None:
    return value.decode() if value is not None else None


@dataclass
class _Lookups:
    """Every index entry a batch must read, each once (the same one can be named by several items)."""

    terms: dict[str, str] = field(default_factory=dict)  # term list key (MGET) -> its term
    # packed index field -> ("seen", item id) or ("lsh", (band, bucket))
    fields: dict[IndexField, tuple[str, object]] = field(default_factory=dict)

    def legacy_keys(self, keys: Keys) -> list[str]:
        """The same entries as earlier versions kept them (string keys), in ``fields`` order."""
        return [keys.seen(ref) if kind == "seen" else keys.lsh(*ref)  # type: ignore[arg-type,misc]
                for kind, ref in self.fields.values()]


@dataclass
class _Fresh:
    """The story each item would start (``new_story``), built and packed before the batch waits for its turn.

    Most items of a batch start a story, and that story's first record depends on the item alone. Built
    and compressed under the turn, they took ~40 us an item of CPU that the other worker waited for: built
    before, the turn holds a sixth less of a batch's CPU (a probe, three alternated pairs: 31% of
    ``run_batch``'s against 38%). An item that joins a story instead wastes its record (~40 us, outside the
    turn). The plan uses a fresh record as it is, so it is known by identity. A new entry's ``updated`` is
    thus when its batch began to commit, a few ms before its turn came."""

    records: dict[str, StoryRecord] = field(default_factory=dict)  # item id -> its story
    packed: dict[int, bytes] = field(default_factory=dict)  # id(record) -> ``pack_story(record)``

    @classmethod
    def build(cls, prepared: list[Prepared], built_at: datetime) -> _Fresh:
        fresh = cls()
        for p in prepared:
            if not p.item.withdrawn:
                record = fresh.records[p.item.id] = new_story(p, built_at)
                fresh.packed[id(record)] = pack_story(record)
        return fresh

    def raw(self, record: StoryRecord) -> bytes | None:
        """``record`` packed, if it is one of these (``records`` keeps them alive: ids are not reused)."""
        return self.packed.get(id(record))


def _lookups(prepared: list[Prepared], keys: Keys) -> _Lookups:
    found = _Lookups()
    for p in prepared:
        found.fields[item_field(p.item.id)] = ("seen", p.item.id)
        for band, bucket in p.buckets:
            found.fields[bucket_field(band, bucket)] = ("lsh", (band, bucket))
        for term in p.terms:
            found.terms[keys.token(term)] = term
    return found


def _view(lookups: _Lookups, term_values: list[bytes | None], field_values: list[bytes | None],
          legacy_values: list[bytes | None] | None) -> IndexView:
    view = IndexView()
    for term, raw in zip(lookups.terms.values(), term_values, strict=True):
        if raw is not None:
            view.terms[term] = raw.decode().split()
    legacy = legacy_values or [None] * len(field_values)
    for (kind, ref), raw, old in zip(lookups.fields.values(), field_values, legacy, strict=True):
        value = _decode(raw if raw is not None else old)
        if value is None:
            continue
        if kind == "seen":
            view.seen[ref] = SeenMark.decode(value)  # type: ignore[index]
        else:
            view.lsh[ref] = value  # type: ignore[index]
    return view


class _LegacyKeys:
    """Whether the string keys of earlier versions may still hold index entries (``P:ix:since``), per prefix.

    Unknown until ``P:ix:since`` says: read them meanwhile. Once their time is past, never again."""

    def __init__(self) -> None:
        self._gone: set[str] = set()

    def may_exist(self, keys: Keys) -> bool:
        return keys.prefix not in self._gone

    def learn(self, keys: Keys, since: bytes | None, now: float) -> bool:
        """Whether they may exist, given ``P:ix:since`` as read (None: no batch of this version committed)."""
        if since is not None and float(since) <= now:
            self._gone.add(keys.prefix)
            return False
        return True


_legacy = _LegacyKeys()


# The atomic step as one command (one reply to parse instead of ~25 per item). ARGV, positional and
# binary-safe:
#   turn, token                              the commit turn's key and this batch's token ("": none),
#                                            ended (deleted if still its) whatever the script returns,
#                                            except -2
#   stamp, new_stamp                         the last commit's stamp (``Keys.commit_stamp``), which this
#                                            commit sets to new_stamp
#   prefix, gen                              the packed index (``worker.packed_index``) and the generation
#                                            the batch read it at
#   then either the *stamp form*:
#   "stamp", stamp_read                      the stamp as the batch read it ("": missing); changed since ->
#                                            return -2, nothing written, the turn kept for the checked form
#                                            that follows
#   or the *checked form*:
#   "checked"
#   r, then r x (key, present, value)        the keys read and what was seen: "1" and the value, "2" and
#                                            the value's SHA-1 (story records: echoing them back cost more
#                                            than the rest of the call), or "0" (missing); any
#                                            difference -> return -1, nothing written
#   check_args                               the packed index's fields read (ix_check reads them): the same
#                                            check, in the generations written since the read
#   a, then a x (key, key, key, member)      long-term marks of URLs and guids the batch did not find:
#                                            any now in one of those three sets -> return -1
#   and then, in both forms:
#   n, then n x (key, value, ttl)            SET key value EX ttl   (term lists, story records)
#   ttl, since, until, then write_args       the packed index's fields set in generation gen (ix_write), its
#                                            hashes expiring in ``ttl`` ms; ``since``, when missing, set to
#                                            ``until`` if the stream exists (earlier versions' keys), else 0
#   at, g, then g x (key, k, k x member)     SADD key members; EXPIREAT key at   (long-term marks)
#   stream, maxlen, m, then m x body         XADD stream MAXLEN ~ maxlen * entry body
#   c, then c x (channel, body number)       PUBLISH channel body   (body number: 1..m)
#   f, then f x (stats key, entries, first, lag sum, lags, last lag)   freshness counters, summed per feed
#                                            (a batch is mostly one feed's: per item, these hash commands
#                                            were a fifth of the script's calls)
#   counters, h, then h x (field, n)         HINCRBY counters field n   (items by outcome, batches, conflicts,
#                                            versions: counted with what they count, so a crash can neither
#                                            lose nor double them)
#   q, then q x (argc, argc x arg)           other commands, run as given (the delivery jobs RQ queues)
_COMMIT_LUA = packed_index.LUA_FUNCTIONS + _END_TURN_FN + """
local i = 1
local function take() local v = ARGV[i]; i = i + 1; return v end
local turn, token = take(), take()
local function finish(result)
  end_turn(turn, token)
  return result
end
local stamp, new_stamp = take(), take()
local ix_prefix, ix_gen = take(), tonumber(take())
if take() == 'stamp' then
  -- Nothing has been committed since the batch read the index: what it read is what is there.
  if (redis.call('GET', stamp) or '') ~= take() then return -2 end  -- the turn goes on: the checked form follows
else
  local reads = tonumber(take())
  local first = i
  local done = 0
  while done < reads do
    local count = math.min(reads - done, 500)
    local names = {}
    for k = 1, count do names[k] = ARGV[first + 3 * (done + k - 1)] end
    local values = redis.call('MGET', unpack(names))
    for k = 1, count do
      local at = first + 3 * (done + k - 1)
      local present, expected = ARGV[at + 1], ARGV[at + 2]
      if values[k] == false then
        if present ~= '0' then return finish(-1) end
      elseif present == '0' then
        return finish(-1)
      elseif present == '2' then
        if redis.sha1hex(values[k]) ~= expected then return finish(-1) end
      elseif values[k] ~= expected then
        return finish(-1)
      end
    end
    done = done + count
  end
  i = first + 3 * reads
  local unchanged
  unchanged, i = ix_check(ix_prefix, ix_gen, i)
  if not unchanged then return finish(-1) end
  for _ = 1, tonumber(take()) do
    local m = ARGV[i + 3]
    for k = i, i + 2 do
      if redis.call('SISMEMBER', ARGV[k], m) == 1 then return finish(-1) end
    end
    i = i + 4
  end
end
redis.call('SET', stamp, new_stamp)
for _ = 1, tonumber(take()) do
  local key, value, ttl = take(), take(), take()
  redis.call('SET', key, value, 'EX', ttl)
end
local ttl_ms, since, legacy_until = take(), take(), take()
i = ix_write(ix_prefix, ix_gen, ttl_ms, i)
local at = take()
for _ = 1, tonumber(take()) do
  local key, count = take(), tonumber(take())
  redis.call('SADD', key, unpack(ARGV, i, i + count - 1))
  redis.call('EXPIREAT', key, at)
  i = i + count
end
local stream, maxlen = take(), take()
if redis.call('EXISTS', since) == 0 then
  redis.call('SET', since, redis.call('EXISTS', stream) == 1 and legacy_until or '0')
end
local bodies = {}
for n = 1, tonumber(take()) do
  bodies[n] = take()
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'entry', bodies[n])
end
for _ = 1, tonumber(take()) do
  local channel, n = take(), tonumber(take())
  redis.call('PUBLISH', channel, bodies[n])
end
for _ = 1, tonumber(take()) do
  local key, entries, first, lag_sum, lags, last = take(), take(), take(), take(), take(), take()
  redis.call('HINCRBY', key, 'entries', entries)
  if first ~= '0' then redis.call('HINCRBY', key, 'first', first) end
  if lags ~= '0' then
    redis.call('HINCRBYFLOAT', key, 'lag_sum', lag_sum)
    redis.call('HINCRBY', key, 'lag_count', lags)
    redis.call('HSET', key, 'last_lag', last)
  end
end
local counters = take()
for _ = 1, tonumber(take()) do
  local field, n = take(), take()
  redis.call('HINCRBY', counters, field, n)
end
for _ = 1, tonumber(take()) do
  local argc = tonumber(take())
  redis.call(unpack(ARGV, i, i + argc - 1))
  i = i + argc
end
return finish(#bodies)
"""


def _read_args(reads: list[tuple[str, bytes | None, bool]]) -> list[str | bytes | int]:
    """The check part of ``_COMMIT_LUA``'s ARGV from (key, value seen, compare by digest) triples."""
    out: list[str | bytes | int] = [len(reads)]
    for name, value, digest in reads:
        if value is None:
            out += [name, "0", ""]
        elif digest:
            out += [name, "2", hashlib.sha1(value).hexdigest()]
        else:
            out += [name, "1", value]
    return out


_encoder = redis.connection.Encoder("utf-8", "strict", False)  # redis-py's own, for recorded commands


def _command_args(commands: list[tuple[tuple[object, ...], dict[str, object]]]) -> list[str | bytes | int]:
    """The last part of ``_COMMIT_LUA``'s ARGV: commands as a pipeline recorded them, encoded as redis-py would."""
    out: list[str | bytes | int] = [len(commands)]
    for args, _options in commands:
        out += [len(args), *(_encoder.encode(a) for a in args)]
    return out


def _write_args(plan: BatchPlan, bodies: list[str], keys: Keys, settings: WorkerConfig,
                gen: int, conflicts: int, now: float, fresh: _Fresh) -> list[str | bytes | int]:
    """The write part of ``_COMMIT_LUA``'s ARGV; ``bodies`` are the published entries' JSON, in
    ``plan.published`` order; ``gen`` is the current generation of long-term marks; ``conflicts`` the
    attempts this batch lost to other workers before this one; ``now`` the time the batch is decided at;
    ``fresh`` the new stories built before the turn."""
    story_ttl = settings.story_retention
    sets: list[str | bytes | int] = []
    for term, ids in plan.terms.items():
        sets += [keys.token(term), " ".join(ids), story_ttl]
    for story_id, record in (*plan.stored.items(), *plan.published.items()):
        sets += [keys.story(story_id), written_story(fresh.raw(record) or pack_story(record), record), story_ttl]
    # What names a story (its items' seen marks, its buckets) is kept as long as the stories; past that,
    # only the long-term marks.
    fields = [*((item_field(item_id), mark.encode()) for item_id, mark in plan.seen.items()),
              *((bucket_field(band, bucket), story_id) for (band, bucket), story_id in plan.lsh.items())]
    index = [packed_index.ttl_ms(now, story_ttl), keys.packed_index_since,
             f"{now + story_ttl:.0f}", *packed_index.write_args(fields)]
    publish: list[str | bytes | int] = []
    for n, record in enumerate(plan.published.values(), 1):
        for channel in (keys.all_channel, *(keys.topic_channel(t) for t in record.entry.topics)):
            publish += [channel, n]
    stats: list[str | bytes | int] = []
    for feed_id, (count, firsts, lag_sum, lags, last) in _freshness_by_feed(plan.freshness).items():
        stats += [keys.feed_stats(feed_id), count, firsts, f"{lag_sum:.3f}", lags, f"{last:.3f}"]
    by_set: dict[str, list[int]] = {}
    for member in plan.marks:
        by_set.setdefault(keys.mark_set(gen, shard(member)), []).append(member)
    marks: list[str | bytes | int] = [expires_at(gen, settings.seen_ttl), len(by_set)]
    for name, members in by_set.items():
        marks += [name, len(members), *members]
    counts = Counter(counter_field(ITEMS, outcome) for outcome in plan.outcomes.values())
    counts.update({BATCHES: 1, CONFLICTS: conflicts, VERSIONS: len(bodies)})
    counters: list[str | bytes | int] = [f for field, n in counts.items() if n for f in (field, n)]
    return [len(sets) // 3, *sets, *index, *marks, keys.entries_stream, settings.stream_maxlen, len(bodies), *bodies,
            len(publish) // 2, *publish, len(stats) // 6, *stats, keys.counters, len(counters) // 2, *counters]


_Tally = tuple[int, int, float, int, float]


def _freshness_by_feed(freshness: list[tuple[str, float | None, bool]]) -> dict[str, _Tally]:
    """Per feed: (sources published, first with their story, sum of known lags, known lags, last known lag)."""
    tallies: dict[str, _Tally] = {}
    for feed_id, lag, first in freshness:
        count, firsts, lag_sum, lags, last = tallies.get(feed_id, (0, 0, 0.0, 0, 0.0))
        if lag is not None and lag >= 0:
            lag_sum, lags, last = lag_sum + lag, lags + 1, lag
        tallies[feed_id] = (count + 1, firsts + int(first), lag_sum, lags, last)
    return tallies


def _commit(client: redis.Redis, args: list[str | bytes | int]) -> int:
    """``_COMMIT_LUA`` with these arguments: the number of entries published, -1 (a conflict) or -2 (the
    stamp changed). EVAL, not EVALSHA: the script text is small next to its arguments, and nothing can be
    missing from Redis's script cache after a restart."""
    return cast(int, client.eval(_COMMIT_LUA, 0, *cast(list[str], args)))


def commit_batch(
    client: redis.Redis,
    keys: Keys,
    prepared: list[Prepared],
    settings: WorkerConfig,
    enqueue_deliveries: EnqueueDeliveries | None = None,
    now: datetime | None = None,
) -> BatchPlan:
    """Decide and publish a batch atomically; retried on write conflicts with other workers."""
    if not prepared:
        return BatchPlan()
    lookups = _lookups(prepared, keys)
    fresh = _Fresh.build(prepared, now or datetime.now(UTC))
    fields = list(lookups.fields)
    # Every long-term mark the batch might already have: each item's, each exact key's.
    marks = [m for p in prepared for m in (p.seen_mark, *p.exact_marks)]
    exact_marks = {m for p in prepared for m in p.exact_marks}
    for attempt in range(1, MAX_ATTEMPTS + 1):
        with _turn(client, keys.commit_turn) as token:
            when = now or datetime.now(UTC)
            gen = generation(when.timestamp(), settings.seen_ttl)
            index_gen = packed_index.generation(when.timestamp(), settings.story_retention)
            # One round trip: the last commit's stamp, the index, and which long-term marks exist. The stamp
            # first: a commit that runs between it and the rest changes it.
            reader = client.pipeline(transaction=False)
            reader.get(keys.commit_stamp)
            reader.eval(packed_index.READ_LUA, 0,
                        *cast(list[str], packed_index.read_args(keys.packed_index, index_gen, fields)))
            reader.eval(REMEMBERED_LUA, 0, *cast(list[str], mark_args(marks, keys.mark_set, (gen, gen - 1))))
            if lookups.terms:
                reader.mget(list(lookups.terms))
            legacy = _legacy.may_exist(keys)
            if legacy:
                reader.get(keys.packed_index_since)
                reader.mget(lookups.legacy_keys(keys))
            stamp_value, *replies = reader.execute()
            stamp_read = cast(bytes | None, stamp_value) or b""
            index_read, found = packed_index.IndexRead.of(replies[0]), cast(list[int], replies[1])
            field_values = index_read.values
            term_values = cast(list[bytes | None], replies[2] if lookups.terms else [])
            legacy_values = None
            if legacy and _legacy.learn(keys, cast(bytes | None, replies[-2]), when.timestamp()):
                legacy_values = cast(list[bytes | None], replies[-1])
            view = _view(lookups, term_values, field_values, legacy_values)
            view.remembered = {member for member, flag in zip(marks, found, strict=True) if flag}
            story_ids = sorted(candidate_story_ids(prepared, view))
            reads = [(name, value, False) for name, value in zip(lookups.terms, term_values, strict=True)]
            if story_ids:
                story_keys = [keys.story(s) for s in story_ids]
                raws = cast(list[bytes | None], client.mget(story_keys))
                for story_id, raw in zip(story_ids, raws, strict=True):
                    if raw is not None:
                        view.stories[story_id] = decode_story(raw)
                reads += [(name, raw, True) for name, raw in zip(story_keys, raws, strict=True)]
            plan = plan_batch(prepared, view, settings, when, fresh.records)
            # Each entry is serialised once, for the stream, the channels and the webhook jobs alike.
            bodies = [record.entry.model_dump_json() for record in plan.published.values()]
            # RQ queues each delivery job as a few commands on a pipeline; recorded there (never sent), they
            # run inside the script, so the jobs exist exactly when the entries do.
            deliveries, commands = 0, []
            if enqueue_deliveries is not None:
                recorder = client.pipeline(transaction=False)
                try:
                    published = zip(plan.entries, bodies, strict=True)
                    deliveries = enqueue_deliveries(
                        [(entry, body, entry.id in plan.sources_only) for entry, body in published], recorder)
                    commands = list(recorder.command_stack)
                finally:
                    recorder.reset()
            writes = [*_write_args(plan, bodies, keys, settings, gen, attempt - 1, when.timestamp(), fresh),
                      *_command_args(commands)]
            head: list[str | bytes | int] = [keys.commit_turn, token, keys.commit_stamp,
                                             f"{random.getrandbits(64):016x}", keys.packed_index, index_gen]
            # Under the turn nothing else commits: the stamp form, without the check.
            result = _commit(client, [*head, "stamp", stamp_read, *writes]) if token else -2
            if result == -2:  # no turn, or another batch committed without one meanwhile: the checked form
                absent = sorted(exact_marks - view.remembered)
                result = _commit(client, [
                    *head, "checked", *_read_args(reads), *packed_index.check_args(fields, index_read),
                    len(absent), *mark_args(absent, keys.mark_set, (gen - 1, gen, gen + 1)), *writes])
            if result == -1:
                # Another worker changed a key we read: re-read and decide again. It has committed, so the
                # first retry reads its writes at once; later ones back off, with jitter, so that many workers
                # racing for the same stories take turns (the wait is all latency: items stay unpublished).
                if attempt > 1:
                    time.sleep(random.uniform(0, min(0.01 * 2 ** (attempt - 2), 0.5)))
                continue
            log.info("batch_committed", items=len(prepared), published=len(plan.published),
                     deliveries=deliveries, attempts=attempt)
            return plan
    raise BatchConflictError(f"batch not committed after {MAX_ATTEMPTS} conflicting attempts; RQ retries it")
