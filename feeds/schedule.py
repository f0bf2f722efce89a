"""The shared polling schedule in Redis: a sorted set of feed id -> next due time (unix seconds).

Several pollers claim due feeds with one atomic script that also pushes each claimed feed's score forward
by a lease, so no two pollers fetch the same feed in one interval; a poller that dies mid-fetch loses its
lease and the feed becomes due again when it runs out.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import cast

import redis

from livebrief.keys import Keys

# KEYS[1] = schedule zset. ARGV[1] = now, ARGV[2] = lease seconds, ARGV[3] = max feeds to claim.
# Returns the claimed feed ids; their scores become now + lease until the poller reschedules them.
_CLAIM_LUA = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local until_ = tonumber(ARGV[1]) + tonumber(ARGV[2])
for _, feed in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', until_, feed)
end
return due
"""

# KEYS[1] = schedule zset, KEYS[2] = the time of the latest forced cycle. ARGV[1] = now. Every feed due
# later than now becomes due now (a forced cycle); returns how many moved. A forced cycle already begun at
# or after ``now`` is not begun again: pollers started together to share one forced cycle would otherwise
# move the feeds the first of them had already fetched (and rescheduled) back to due, fetching them twice.
_DUE_NOW_LUA = """
local forced = tonumber(redis.call('GET', KEYS[2]) or '-1')
if forced >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[2], ARGV[1])
local later = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf')
for _, feed in ipairs(later) do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[1], feed)
end
return #later
"""


class Schedule:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys
        self._claim = client.register_script(_CLAIM_LUA)
        self._due_now = client.register_script(_DUE_NOW_LUA)

    def sync(self, feed_ids: Iterable[str], now: float, spread: float = 0.0) -> None:
        """Add configured feeds not yet scheduled (due now, or spread over ``spread`` seconds so a big
        list does not stampede), and drop feeds no longer configured."""
        wanted = set(feed_ids)
        current = {m.decode() for m in cast(list[bytes], self.client.zrange(self.keys.schedule, 0, -1))}
        pipe = self.client.pipeline()
        for feed_id in wanted - current:
            pipe.zadd(self.keys.schedule, {feed_id: now + random.uniform(0, spread)}, nx=True)
        gone = current - wanted
        if gone:
            pipe.zrem(self.keys.schedule, *gone)
        pipe.execute()

    def size(self) -> int:
        return int(cast(int, self.client.zcard(self.keys.schedule)))

    def claim(self, now: float, lease: float, limit: int) -> list[str]:
        """Atomically take up to ``limit`` due feeds for ``lease`` seconds."""
        claimed = self._claim(keys=[self.keys.schedule], args=[now, lease, limit])
        return [c.decode() if isinstance(c, bytes) else str(c) for c in claimed]

    def make_due(self, now: float) -> int:
        """Make every scheduled feed due at ``now`` (a forced cycle that several pollers can share by
        claiming, when they are given the same ``now``); returns how many feeds were moved forward."""
        return int(self._due_now(keys=[self.keys.schedule, self.keys.forced_cycle], args=[repr(float(now))]))

    def reschedule(self, due: dict[str, float], pipe: redis.client.Pipeline | None = None) -> None:
        """Set each feed's next due time (only feeds still scheduled: a removed feed stays removed)."""
        if not due:
            return
        target = pipe if pipe is not None else self.client
        target.zadd(self.keys.schedule, due, xx=True)

    def due_times(self) -> dict[str, float]:
        pairs = cast(list[tuple[bytes, float]], self.client.zrange(self.keys.schedule, 0, -1, withscores=True))
        return {m.decode(): s for m, s in pairs}
