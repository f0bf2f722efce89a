"""Every Redis key and channel name livebrief uses, in one place.

Layout under the configurable prefix ``P`` (default ``livebrief``); TTLs are set where the key is written,
from the settings named here.

=============================  =========  ===================================================  ==================
key                            type       holds                                                expiry
=============================  =========  ===================================================  ==================
P:entries                      stream     one message per entry version, field ``entry``       capped (MAXLEN ~)
P:all                          channel    every entry version (pub/sub, JSON)                  -
P:topic:<topic>                channel    entry versions classified under ``topic``            -
P:schedule                     zset       feed id -> next due time (unix s); leases too        -
P:schedule:forced              string     time of the latest forced cycle, begun only once     none
P:feed:<feed>:state            hash       etag, last_modified, health, failure counters        none (one per feed)
P:feed:<feed>:stats            hash       freshness: entries, first (with a story), lag_sum/count none (one per feed)
P:feed:<feed>:items            zset       item id + content hash -> last time seen in the feed story_retention
P:ix:<gen>                     hash       the packed index's layout in a generation: level,    1-1.5 x
                                          split pointer, fields, writes                        story_retention
                                          (worker/packed_index.py)
P:ix:<gen>:<n>                 hash       fields: item id -> its seen mark (content hash,      1-1.5 x
                                          story, version); LSH bucket hash -> latest story id  story_retention
                                          with a text signature in that bucket (listpacks)
P:ix:since                     string     until when keys of earlier versions (P:seen:,        none
                                          P:lsh:) may exist and are read too (0: none)
P:seen:<item>                  string     (earlier versions) an item's seen mark; read only    story_retention
P:mark:<gen>:<shard>           set        64-bit marks of published items, URLs, guids         2 generations
                                          (intsets; see worker/marks.py); all the index keeps  of seen_ttl
                                          of a URL or guid
P:lsh:<band>:<bucket>          string     (earlier versions) an LSH bucket; read only          story_ttl
P:tok:<token>                  string     recent story ids sharing a significant token         story_ttl
P:story:<story>                string     story record (entry, signature, features) JSON       story_ttl
P:push:<feed>                  hash       WebSub subscription: hub, topic, secret, state, lease none (one per feed)
P:deadletter                   list       webhook deliveries that exhausted their retries,     newest
                                          newest first                                         dead_letters_max
P:dmark:<gen>:<shard>          set        64-bit marks of deliveries done (webhook, message),  2 generations
                                          so a retry or replay never re-sends one (intsets)    of seen_ttl
P:delivered:<delivery>         string     the same, as earlier versions wrote it; read only,   seen_ttl
                                          until the last of them expires
P:webhook:<webhook>:hold       string     until when (unix s) the receiver asked not to be     that time
                                          called (429, or 503 with Retry-After)
P:webhook:<webhook>:lanes      zset       delivery jobs running for the webhook -> lease end   the last lease
                                          (ms); at most its ``concurrency`` (worker/lanes.py)
P:webhook:<webhook>:parked     zset       delivery jobs waiting for a lane -> when parked (ms) 7 d
P:recovering:<job>:<exec>      string     one watchdog's claim on an abandoned job (<exec>     60 s
                                          ``dequeued``: one taken from a queue, never started)
P:commit:turn                  string     the token of the batch whose turn it is to commit    1 s, or deleted
                                          (worker/publish.py)                                  at its commit
P:commit:stamp                 string     a random stamp that every commit sets anew, so a     none
                                          batch that finds it unchanged since its read knows
                                          nothing it read has changed (worker/publish.py)
P:counters                     hash       what the workers did, for ``livebrief metrics``: items  none
                                          by outcome, batches, commit conflicts, entry
                                          versions; deliveries, deferrals and dead letters
                                          per webhook
=============================  =========  ===================================================  ==================

RQ's own keys live under ``rq:``; livebrief's two RQ queues are named ``P-ingest`` and ``P-deliveries``,
so two installations with different prefixes can share one Redis without taking each other's jobs. Job ids
(``rq:job:<id>``) name the feed or webhook they serve through ``job_id_part``. Beside each queue's list
(``rq:queue:<name>``), next to RQ's ``rq:queue:<name>:intermediate``, livebrief keeps one key of its own:

=============================  =========  ===================================================  ==================
rq:queue:<name>:doorbell       stream     rung by every push to the queue, so that a worker    MAXLEN 1
                                          waiting on several queues wakes (livebrief/queues.py)
=============================  =========  ===================================================  ==================
"""

from __future__ import annotations

from dataclasses import dataclass

# Fields of the ``P:counters`` hash (``Keys.counters``): counts, only ever incremented; the last five are
# kept per label, as "<kind>:<label>" (``counter_field``). ``feeds.status.Counters`` reads each into the
# attribute of the same name.
BATCHES = "batches"  # batches committed
CONFLICTS = "conflicts"  # commit attempts that found a key changed by another worker, then decided again
VERSIONS = "versions"  # entry versions published
ITEMS = "items"  # items decided, per outcome (worker/stories.py: new_story, near_duplicate, seen, ...)
DELIVERED = "delivered"  # messages a webhook's receiver accepted, per webhook
DEAD_LETTERS = "dead_letters"  # messages dead-lettered after their last retry or past max_age, per webhook
DEAD_LETTERS_DROPPED = "dead_letters_dropped"  # dead letters dropped past worker.dead_letters_max, per webhook
DEFERRED = "deferred"  # delivery jobs put off because the receiver asked to wait (worker/notify.py), per webhook


def counter_field(kind: str, label: str) -> str:
    return f"{kind}:{label}"


def queue_doorbell(queue_key: str) -> str:
    """The doorbell of the RQ queue whose list is ``queue_key`` (``rq:queue:<name>``)."""
    return f"{queue_key}:doorbell"


def job_id_part(name: str) -> str:
    """A feed or webhook id (letters, digits, '.', '_', '-') as part of an RQ job id, which RQ allows only
    letters, digits, '_' and '-': '_' is doubled and '.' written '_o', so two ids never make one job id
    (two webhooks' delivery jobs for one batch would otherwise overwrite each other)."""
    return name.replace("_", "__").replace(".", "_o")


@dataclass(frozen=True)
class Keys:
    prefix: str = "livebrief"

    @property
    def ingest_queue(self) -> str:
        return f"{self.prefix}-ingest"

    @property
    def delivery_queue(self) -> str:
        return f"{self.prefix}-deliveries"

    @property
    def entries_stream(self) -> str:
        return f"{self.prefix}:entries"

    @property
    def all_channel(self) -> str:
        return f"{self.prefix}:all"

    def topic_channel(self, topic: str) -> str:
        return f"{self.prefix}:topic:{topic}"

    @property
    def schedule(self) -> str:
        return f"{self.prefix}:schedule"

    @property
    def forced_cycle(self) -> str:
        return f"{self.prefix}:schedule:forced"

    def feed_state(self, feed_id: str) -> str:
        return f"{self.prefix}:feed:{feed_id}:state"

    def feed_stats(self, feed_id: str) -> str:
        return f"{self.prefix}:feed:{feed_id}:stats"

    def feed_items(self, feed_id: str) -> str:
        return f"{self.prefix}:feed:{feed_id}:items"

    @property
    def packed_index(self) -> str:
        """The prefix of the packed index's hashes (``worker/packed_index.py`` names them, in Lua)."""
        return f"{self.prefix}:ix"

    @property
    def packed_index_since(self) -> str:
        return f"{self.prefix}:ix:since"

    def seen(self, item_id: str) -> str:
        return f"{self.prefix}:seen:{item_id}"

    def mark_set(self, generation: int, shard: int) -> str:
        return f"{self.prefix}:mark:{generation}:{shard:03x}"

    def lsh(self, band: int, bucket: str) -> str:
        return f"{self.prefix}:lsh:{band}:{bucket}"

    def token(self, token: str) -> str:
        return f"{self.prefix}:tok:{token}"

    def story(self, story_id: str) -> str:
        return f"{self.prefix}:story:{story_id}"

    def push(self, feed_id: str) -> str:
        return f"{self.prefix}:push:{feed_id}"

    @property
    def deadletter(self) -> str:
        return f"{self.prefix}:deadletter"

    def delivery_mark_set(self, generation: int, shard: int) -> str:
        return f"{self.prefix}:dmark:{generation}:{shard:03x}"

    def legacy_delivered(self, delivery_id: str) -> str:
        return f"{self.prefix}:delivered:{delivery_id}"

    def webhook_hold(self, webhook_id: str) -> str:
        return f"{self.prefix}:webhook:{webhook_id}:hold"

    def webhook_lanes(self, webhook_id: str) -> str:
        return f"{self.prefix}:webhook:{webhook_id}:lanes"

    def webhook_parked(self, webhook_id: str) -> str:
        return f"{self.prefix}:webhook:{webhook_id}:parked"

    def recovery_claim(self, job_id: str, execution_id: str) -> str:
        return f"{self.prefix}:recovering:{job_id}:{execution_id}"

    @property
    def commit_turn(self) -> str:
        return f"{self.prefix}:commit:turn"

    @property
    def commit_stamp(self) -> str:
        return f"{self.prefix}:commit:stamp"

    @property
    def counters(self) -> str:
        return f"{self.prefix}:counters"
