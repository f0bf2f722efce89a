"""The poller: due feeds -> fetch -> parse -> new-item filter -> RQ ingest jobs (``worker.job_items`` items each).

Runs many fetches at once on one event loop (bounded overall and per host), parses in a small process
pool under a hard time limit (a pathological document costs its feed one error, never the poller), and
records each feed's health in Redis. One broken feed never stops the others: every per-feed failure is
caught, logged with the feed id, recorded, and backed off.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import os
import random
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlencode, urlsplit

import aiohttp
import redis
import structlog

from feeds.fetch import ClientPool, FetchLimits, FetchResult, check_url, fetch_feed
from feeds.health import (
    FeedState,
    FeedStates,
    adapt_interval,
    cache_hint,
    next_after_failure,
    next_after_success,
    observed_gap,
)
from feeds.parse import ParsedFeed, parse_feed
from feeds.push import Subscription, Subscriptions, needs_subscription, subscribe, unsubscribe
from feeds.schedule import Schedule
from livebrief.config import Config, FeedConfig
from livebrief.errors import FeedError, HTTPStatusError, ParseError
from livebrief.ingest import enqueue_fetches
from livebrief.keys import Keys
from livebrief.models import Item

log = structlog.get_logger(__name__)

PARSE_TIMEOUT = 15.0
OUTCOME_FLUSH = 200
CLAIM_CHUNK_FACTOR = 4  # feeds claimed at a time = polling.concurrency * this


@dataclass
class PollReport:
    fetched: int = 0
    not_modified: int = 0
    failed: int = 0
    new_items: int = 0
    held: int = 0  # due (a forced cycle) but their server asked, with Retry-After, not to be called yet
    errors: dict[str, str] = field(default_factory=dict)


class _Enqueuer:
    """Queues fetches' new items, gathering the fetches that finish while an enqueue is in flight into the next
    one (``livebrief.ingest.enqueue_fetches``: their items share jobs).

    A fetch that finds no enqueue in flight goes at once, so gathering adds no wait; under load the fetches
    that pile up behind one go together. A fetch's ``add`` returns once its items are queued (or raises what
    the enqueue raised), so the poller records its new ETag only after that, as before.
    """

    def __init__(self, enqueue: Callable[[Sequence[tuple[str, list[Item]]]], list[int]]) -> None:
        self._enqueue = enqueue
        self._waiting: list[tuple[str, list[Item], asyncio.Future[int]]] = []
        self._running: asyncio.Task[None] | None = None

    async def add(self, feed_id: str, items: list[Item]) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.append((feed_id, items, future))
        if self._running is None:
            self._running = asyncio.create_task(self._drain())
        return await future

    async def idle(self) -> None:
        """Return once nothing is being queued (a cycle ends only after its last enqueue)."""
        while self._running is not None:
            await asyncio.wait([self._running])

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    counts = await asyncio.to_thread(self._enqueue, [(feed_id, items) for feed_id, items, _ in batch])
                except Exception as exc:  # noqa: BLE001 - handed to each fetch, which records or raises it
                    for *_, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (*_, future), count in zip(batch, counts, strict=True):
                    if not future.done():  # its fetch may have been cancelled meanwhile
                        future.set_result(count)
        finally:
            self._running = None


ParseCall = Callable[[bytes, dict[str, object], float], ParsedFeed]


class ParsePool:
    """Runs ``parse_feed`` in worker processes, each parse under its own deadline.

    At most ``workers`` parses are handed to the processes at a time (the others wait here), so a parse's
    clock starts when it does, not while it waits behind slow ones. The deadline is kept inside the process
    (``_parse_call``): a slow parse ends with its own error and the process lives on. A parse stuck where
    that alarm cannot reach (inside one C call) is stopped from here after ``HARD_DEADLINE_FACTOR``
    deadlines, by killing the processes; processes that die so, or on their own (out of memory, say), fail
    every parse they hold, and each of those is parsed again alone in a process of its own: a pathological
    document costs its own feed one error, never the feeds parsed beside it. ``workers=0`` parses inline (no
    deadline), for tiny runs and debugging.
    """

    HARD_DEADLINE_FACTOR = 4

    def __init__(self, workers: int, timeout: float = PARSE_TIMEOUT, call: ParseCall | None = None) -> None:
        self.workers = workers
        self.timeout = timeout
        self.call = call or _parse_call  # what runs in a pool process (tests give one that crashes or hangs)
        self._pools: dict[str, concurrent.futures.ProcessPoolExecutor] = {}  # "shared", and "alone" for retries
        # asyncio primitives belong to the loop they are first used on (a Poller may be driven by several).
        self._bounds: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore, asyncio.Lock] | None = None

    def _pool(self, name: str) -> concurrent.futures.ProcessPoolExecutor:
        pool = self._pools.get(name)
        if pool is None:
            pool = self._pools[name] = concurrent.futures.ProcessPoolExecutor(
                max_workers=self.workers if name == "shared" else 1,
                mp_context=multiprocessing.get_context("forkserver"),
                initializer=_end_with, initargs=(os.getpid(), _started(os.getpid())),
            )
        return pool

    def _limits(self) -> tuple[asyncio.Semaphore, asyncio.Lock]:
        loop = asyncio.get_running_loop()
        if self._bounds is None or self._bounds[0] is not loop:
            self._bounds = (loop, asyncio.Semaphore(self.workers), asyncio.Lock())
        return self._bounds[1], self._bounds[2]

    async def parse(self, feed: FeedConfig, result: FetchResult, config: Config) -> ParsedFeed:
        kwargs = {
            "feed_id": feed.id, "outlet": feed.name, "fetched": datetime.now(UTC), "headers": result.headers,
            "base_url": result.final_url, "max_entries": config.polling.max_entries,
            "max_text_chars": config.polling.max_text_chars,
        }
        if self.workers == 0:
            return parse_feed(result.body, **kwargs)  # type: ignore[arg-type]
        shared, alone = self._limits()
        try:
            async with shared:
                return await self._run("shared", feed.id, result.body, kwargs)
        except concurrent.futures.process.BrokenProcessPool:
            log.info("parse_retried", feed=feed.id, reason="a parser process died during the parse")
        async with alone:  # alone: if this document is what kills its process, it kills no other parse
            try:
                return await self._run("alone", feed.id, result.body, kwargs)
            except concurrent.futures.process.BrokenProcessPool as exc:
                raise ParseError(feed.id, "the parser process died parsing it (out of memory?)") from exc

    async def _run(self, name: str, feed_id: str, body: bytes, kwargs: dict[str, object]) -> ParsedFeed:
        pool = self._pool(name)
        future = asyncio.get_running_loop().run_in_executor(pool, self.call, body, kwargs, self.timeout)
        try:
            return await asyncio.wait_for(future, self.timeout * self.HARD_DEADLINE_FACTOR)
        except TimeoutError as exc:
            self._kill(name, pool)
            raise ParseError(feed_id, f"parsing took longer than {self.timeout:g} s and was stopped") from exc
        except concurrent.futures.process.BrokenProcessPool:
            self._kill(name, pool)
            raise

    def _kill(self, name: str, pool: concurrent.futures.ProcessPoolExecutor) -> None:
        """Kill ``pool``, not a newer one another parse has made meanwhile: the parses in it fail."""
        if self._pools.get(name) is pool:
            del self._pools[name]
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.kill()
        pool.shutdown(wait=False)

    def close(self) -> None:
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.shutdown(wait=True, cancel_futures=True)


def _started(pid: int) -> str | None:
    """When process ``pid`` started (Linux: /proc), so that a new process given the same id is not it."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return None


def _end_with(pid: int, started: str | None) -> None:
    """In a parser process: exit once the poller ``pid`` is gone. A poller killed with SIGKILL (by the OOM killer,
    say) otherwise left its parser processes, the forkserver and its resource tracker running for ever, ~140 MB
    a time (found by QA): a parser process waits on a queue it holds both ends of, and the forkserver on it."""
    def watch() -> None:
        while True:
            time.sleep(1.0)
            if started is not None:  # gone, or its id now another process's
                alive = _started(pid) == started
            else:  # no /proc: the id alone
                try:
                    os.kill(pid, 0)
                    alive = True
                except ProcessLookupError:
                    alive = False
                except PermissionError:
                    alive = True
            if not alive:
                os._exit(0)

    threading.Thread(target=watch, name="end-with-poller", daemon=True).start()


class _ParseExpired(BaseException):
    """The alarm of ``_parse_call``: a BaseException, so no ``except Exception`` in the parsers swallows it."""


def _parse_call(body: bytes, kwargs: dict[str, object], timeout: float) -> ParsedFeed:
    """``parse_feed`` in a pool process, stopped by an alarm ``timeout`` seconds after it starts."""
    def expire(signum: int, frame: object) -> None:
        raise _ParseExpired

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        return parse_feed(body, **kwargs)  # type: ignore[arg-type]
    except _ParseExpired:
        raise ParseError(str(kwargs["feed_id"]), f"parsing took longer than {timeout:g} s and was stopped") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Poller:
    """Polls the configured feeds; share one Redis among any number of pollers."""

    def __init__(
        self,
        config: Config,
        client: redis.Redis,
        *,
        parse_workers: int = 2,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.client = client
        self.keys = Keys(config.prefix)
        self.schedule = Schedule(client, self.keys)
        self.states = FeedStates(client, self.keys)
        self.subscriptions = Subscriptions(client, self.keys)
        self.parser = ParsePool(parse_workers)
        self.rng = rng or random.Random()
        self.limits = FetchLimits(
            timeout=config.polling.timeout, connect_timeout=config.polling.connect_timeout,
            max_body_bytes=config.polling.max_body_bytes, allow_private=config.polling.allow_private,
            allow_hosts=config.polling.allow_hosts,
            user_agent=config.polling.user_agent,
        )
        self.feeds = {f.id: f for f in config.feeds if f.enabled}
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._enqueuer = _Enqueuer(self._enqueue_fetches)
        self._outcomes: dict[str, FeedState] = {}
        self._pruned = False
        self._synced = False

    def _new_limits(self) -> None:
        # asyncio primitives belong to the loop they are first used on: make them per poll, so a Poller
        # can be driven by several event loops in turn (the demo and tests call asyncio.run per round).
        self._hosts = defaultdict(lambda: asyncio.Semaphore(self.config.polling.per_host))
        self._enqueuer = _Enqueuer(self._enqueue_fetches)

    def sync_schedule(self, now: float | None = None) -> None:
        """Put the configured feeds in the shared schedule: fully the first time, then only when its size
        says a feed is missing or extra (Redis restarted empty, another poller's config differs), so a
        cycle costs one ZCARD instead of reading the whole schedule."""
        if self._synced and self.schedule.size() == len(self.feeds):
            return
        now = time.time() if now is None else now
        first = not self._synced
        self.schedule.sync(self.feeds, now, spread=min(60.0, len(self.feeds) / 100))
        self._synced = True
        if first:
            self._pull_in_shortened(now)

    def _lease(self) -> float:
        """How long a claimed feed is held: a fetch, then a parse that may wait behind others, be stopped from
        here and be tried once more."""
        return self.config.polling.timeout + 2 * self.parser.timeout * ParsePool.HARD_DEADLINE_FACTOR + 30

    def _pull_in_shortened(self, now: float) -> None:
        """A healthy feed scheduled further from its last attempt than its interval allows (its ``interval``, or
        ``polling.max_interval`` when adaptive, plus jitter) is made due by that interval: one whose interval
        was shortened in the config waited out the old one, up to 6 h (found by QA). A failing feed keeps its
        backoff, and a feed due within a lease may be another poller's claim."""
        due = self.schedule.due_times()
        states = self.states.get_many(list(self.feeds))
        claimable_after = now + self._lease()
        moved: dict[str, float] = {}
        for feed_id, feed in self.feeds.items():
            state, when = states[feed_id], due.get(feed_id)
            if when is None or state.failures or state.last_attempt is None or when <= claimable_after:
                continue
            interval = feed.interval or self.config.polling.max_interval
            if when > state.last_attempt + interval * 1.1:
                moved[feed_id] = max(now, state.last_attempt + interval)
        if moved:
            self.schedule.reschedule(moved)
            log.info("feeds_rescheduled", feeds=sorted(moved), reason="due later than their configured interval")

    async def poll_once(
        self, *, force: bool = False, now: float | None = None, http: ClientPool | None = None
    ) -> PollReport:
        """Poll every due feed once (every enabled feed when ``force``) and return what happened.

        Due feeds are claimed in chunks of ``polling.concurrency * CLAIM_CHUNK_FACTOR``, the next chunk only
        when about one round of fetches is left in flight, until none is due: pollers sharing a Redis split
        the work evenly, and a claimed feed waits little for its turn (its lease keeps running meanwhile).
        ``force`` first makes every scheduled feed due now, so a forced cycle is shared the same way.
        ``http`` is a client pool to reuse (``run_forever`` keeps one across cycles); by default one is made
        here.
        """
        now = time.time() if now is None else now
        self.sync_schedule(now)
        if force:
            self.schedule.make_due(now)
        report = PollReport()
        self._new_limits()
        if http is not None:
            await self._prune_subscriptions(http, now)
            await self._poll_due(http, now, report)
            return report
        async with self._client_pool() as client:
            await self._prune_subscriptions(client, now)
            await self._poll_due(client, now, report)
        return report

    async def _prune_subscriptions(self, pool: ClientPool, now: float) -> None:
        """Once per poller: unsubscribe from hubs still pushing feeds that are no longer configured."""
        if self._pruned or not self.config.push.enabled:
            return
        self._pruned = True
        for feed_id in self.subscriptions.feed_ids():
            sub = self.subscriptions.get(feed_id)
            if feed_id in self.feeds or sub is None or sub.state == "unsubscribing":
                continue
            try:
                await check_url(feed_id, sub.hub, self.limits)
                await unsubscribe(pool.session, self.subscriptions, self.config, feed_id, sub, now)
            except FeedError as exc:
                log.warning("websub_unsubscribe_failed", feed=feed_id, hub=sub.hub, error=exc.reason)

    def _client_pool(self) -> ClientPool:
        return ClientPool(self.limits, self.config.polling.concurrency)

    async def _poll_due(self, client: ClientPool, now: float, report: PollReport) -> None:
        concurrency = self.config.polling.concurrency
        chunk = max(1, concurrency * CLAIM_CHUNK_FACTOR)
        lease = self._lease()
        tasks: set[asyncio.Task[None]] = set()
        room = asyncio.Event()
        failures: list[BaseException] = []

        def finished(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            if not task.cancelled() and task.exception() is not None:
                failures.append(task.exception())  # type: ignore[arg-type]
                room.set()
            elif len(tasks) <= concurrency:
                room.set()

        try:
            while not failures:
                if len(tasks) > concurrency:
                    room.clear()
                    await room.wait()
                    continue
                claimed = self.schedule.claim(now, lease, chunk)
                if not claimed:
                    break
                states = self.states.get_many(claimed)
                pushed = self.subscriptions.get_many(claimed) if self.config.push.enabled else {}
                for feed_id in claimed:
                    feed = self.feeds.get(feed_id)
                    if feed is None:  # another poller's feed; its lease runs out and that poller takes it
                        continue
                    state = states[feed_id]
                    held_until = state.retry_after_until
                    if held_until is not None:  # bounded again: versions before 2026-12-08 stored it uncapped
                        held_until = min(held_until, (state.last_error_at or now) + self.config.polling.backoff_cap)
                    if held_until is not None and held_until > now:
                        # Its server asked not to be called before then; a forced cycle (``--once``) waits too.
                        state.next_attempt = held_until
                        self._outcomes[feed_id] = state
                        report.held += 1
                        continue
                    task = asyncio.create_task(self._poll_feed(client, feed, state, report, pushed.get(feed_id)))
                    tasks.add(task)
                    task.add_done_callback(finished)
            while tasks and not failures:
                room.clear()
                await room.wait()
            if failures:
                raise failures[0]
        finally:
            if tasks:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            await self._enqueuer.idle()
            self._flush()

    async def run_forever(self, stop: asyncio.Event, idle: float = 1.0) -> None:
        """Poll due feeds until ``stop`` is set; survives Redis restarts by backing off and retrying.

        One HTTP client (and its keep-alive connections) serves every cycle."""
        delay = idle
        async with self._client_pool() as http:
            while not stop.is_set():
                try:
                    report = await self.poll_once(http=http)
                    if report.fetched or report.failed or report.not_modified:
                        log.info("poll_cycle", fetched=report.fetched, not_modified=report.not_modified,
                                 failed=report.failed, new_items=report.new_items)
                    delay = idle
                except (redis.ConnectionError, redis.TimeoutError) as exc:
                    delay = min(30.0, delay * 2)
                    log.warning("redis_unavailable", error=str(exc), retry_in=round(delay, 1))
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                except TimeoutError:
                    pass

    async def _poll_feed(
        self, pool: ClientPool, feed: FeedConfig, state: FeedState, report: PollReport,
        push: Subscription | None = None,
    ) -> None:
        now = time.time()
        state.last_attempt = now
        state.fetches += 1
        polling = self.config.polling
        if state.url != feed.url:
            if state.url is not None:  # the config names another URL: what the old one taught is void
                state.etag = state.last_modified = state.cursor = state.moved_to = None
            state.url = feed.url
        try:
            url = self._url(feed, state)
            host = urlsplit(url).hostname or ""  # in the try: a malformed URL fails this feed alone
            # The host's slot first: a global slot held while waiting on a slow host would idle.
            async with self._hosts[host]:
                await pool.acquire()  # the global bound: polling.concurrency fetches in flight
                try:
                    result = await fetch_feed(pool.session, feed.id, url, self.limits, state.etag,
                                              state.last_modified)
                finally:
                    pool.release()
            if result.moved_to is not None:
                log.info("feed_moved", feed=feed.id, url=feed.url, moved_to=result.moved_to)
                state.moved_to = None if result.moved_to == feed.url else result.moved_to
            state.last_status = result.status
            state.last_fetch_ms = round(result.elapsed_ms, 1)
            if result.not_modified:
                report.not_modified += 1
                state.not_modified += 1
                # A 304 may carry new validators for the body we have (RFC 9111, 4.3.4): ask with those next.
                state.etag, state.last_modified = result.etag, result.last_modified
                new_items = 0
                ttl_hint = cache_hint(result.headers, now)
                gap = None
            else:
                parsed = await self.parser.parse(feed, result, self.config)
                new_items = await self._enqueuer.add(feed.id, parsed.items)
                state.etag, state.last_modified = result.etag, result.last_modified
                state.cursor = parsed.cursor or state.cursor
                hints = [h for h in (parsed.ttl_seconds, cache_hint(result.headers, now)) if h]
                ttl_hint = max(hints) if hints else None
                gap = observed_gap([i.published.timestamp() for i in parsed.items if i.published])
                state.repaired = "; ".join(parsed.warnings) or None
                if parsed.warnings:
                    log.warning("feed_repaired", feed=feed.id, repaired=parsed.warnings)
                if parsed.hub and self.config.push.enabled:
                    await self._subscribe(pool.session, feed, parsed.hub, push, now)
                report.fetched += 1
                log.info("feed_fetched", feed=feed.id, status=result.status, ms=state.last_fetch_ms,
                           items=len(parsed.items), new=new_items)
            state.failures = 0
            state.last_success = now
            state.last_new_items = new_items
            state.items_total += new_items
            state.retry_after_until = None
            report.new_items += new_items
            interval = feed.interval or polling.interval
            if feed.interval is None and polling.adaptive:
                interval = adapt_interval(state, now, new_items, gap, interval, polling.min_interval,
                                          polling.max_interval)
            if push is not None and push.active(now):
                interval = max(interval, self.config.push.fallback_interval)  # the hub tells us; poll as a safety net
            next_due = next_after_success(now, interval, self.rng, ttl_hint, polling.max_interval)
        except FeedError as exc:
            next_due = self._record_failure(state, exc, now, report)
        except (redis.ConnectionError, redis.TimeoutError):
            raise
        except Exception as exc:  # noqa: BLE001 - one feed's surprise must not stop the others
            log.exception("feed_crashed", feed=feed.id)
            next_due = self._record_failure(state, FeedError(feed.id, f"unexpected {type(exc).__name__}: {exc}"),
                                            now, report)
        state.next_attempt = next_due
        self._outcomes[feed.id] = state
        if len(self._outcomes) >= OUTCOME_FLUSH:
            self._flush()

    def _flush(self) -> None:
        """Record polled feeds' states and next due times: one round trip for many feeds (10,000 unchanged
        feeds would otherwise cost 10,000 round trips)."""
        if not self._outcomes:
            return
        outcomes, self._outcomes = self._outcomes, {}
        pipe = self.client.pipeline()
        for feed_id, state in outcomes.items():
            self.states.put(feed_id, state, pipe)
        self.schedule.reschedule({f: s.next_attempt for f, s in outcomes.items() if s.next_attempt}, pipe)
        pipe.execute()

    @staticmethod
    def _url(feed: FeedConfig, state: FeedState) -> str:
        """The feed URL (where it moved for good, if it did), continued from the last cursor for wire feeds
        that page by ``since``."""
        base = state.moved_to or feed.url
        if feed.kind != "ninjs" or not state.cursor or not feed.since_param:
            return base
        joiner = "&" if "?" in base else "?"
        return f"{base}{joiner}{urlencode({feed.since_param: state.cursor})}"

    async def _subscribe(
        self, client: aiohttp.ClientSession, feed: FeedConfig, hub: str, current: Subscription | None, now: float
    ) -> None:
        if not needs_subscription(current, hub, feed.url, now, self.config.push.lease_seconds):
            return
        try:
            await check_url(feed.id, hub, self.limits)
            await subscribe(client, self.subscriptions, self.config, feed, hub, now)
        except FeedError as exc:
            # Push is an optimisation: the feed keeps being polled, so log and carry on.
            log.warning("websub_subscribe_failed", feed=feed.id, hub=hub, error=exc.reason)

    def _record_failure(self, state: FeedState, exc: FeedError, now: float, report: PollReport) -> float:
        state.failures += 1
        state.last_error = exc.reason
        state.last_error_kind = exc.kind
        state.last_error_at = now
        retry_after = exc.retry_after if isinstance(exc, HTTPStatusError) else None
        polling = self.config.polling
        backoff_base = polling.backoff_base
        if isinstance(exc, HTTPStatusError):
            state.last_status = exc.status
            if exc.status in (404, 410) and state.moved_to is not None:
                # Where the feed moved is gone: back to the configured URL at the next attempt.
                state.moved_to = None
            elif exc.status == 410:
                # Gone for good, the server says: asked once a backoff cap, not more (it may still come back).
                state.last_error = exc.reason + "; the server says the feed is gone for good: remove it from the config"
                backoff_base = polling.backoff_cap
        report.failed += 1
        report.errors[exc.feed_id] = state.last_error
        next_due = next_after_failure(now, state.failures, backoff_base, polling.backoff_cap, self.rng, retry_after)
        # Bounded like the delay: a server asking for years (or a date in 2100) is asked again after the cap.
        state.retry_after_until = now + min(retry_after, polling.backoff_cap) if retry_after is not None else None
        log.warning("feed_failed", feed=exc.feed_id, kind=exc.kind, error=exc.reason, failures=state.failures,
                      retry_in=round(next_due - now, 1))
        return next_due

    def _enqueue_fetches(self, fetches: Sequence[tuple[str, list[Item]]]) -> list[int]:
        return enqueue_fetches(self.client, self.config, fetches, time.time())

    def close(self) -> None:
        self.parser.close()
