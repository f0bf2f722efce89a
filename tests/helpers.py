"""Small builders shared by tests: items as the real parser makes them; a probe job for the worker; stopping
a ``livebrief run`` started in its own session; waiting for a condition; the stream's headlines."""

from __future__ import annotations

import gc
import os
import random
import signal
import subprocess
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import redis

from feeds.parse import content_hash, item_id
from livebrief.keys import Keys
from livebrief.models import Entry, Item

_SYLLABLES = "ba ko ri te ml va zu no pe la dri sto vek mar ol un isk gor tan bel".split()


def pseudo_word(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(3))


def make_item(feed: str, n: int, *, title: str | None = None, text: str | None = None,
              url: str | None = None, published: datetime | None = None) -> Item:
    """A distinct, realistic-looking item: its own invented names, so unrelated items never merge."""
    rng = random.Random(zlib.crc32(f"{feed}:{n}".encode()))
    w = [pseudo_word(rng) for _ in range(10)]
    title = title or f"{w[0].title()} council approves {w[1]} plan for {w[2].title()} district"
    text = text or (
        f"The council of {w[0].title()} approved the {w[1]} plan on Monday after {n + 3} months of debate. "
        f"Work on the {w[3]} and the {w[4]} near {w[5].title()} starts in spring, and {w[6]} residents "
        f"will be consulted on the {w[7]} and {w[8]} before {w[9].title()} opens."
    )
    url = url or f"https://{feed}.example/news/{n}"
    published = published or datetime(2022, 3, 29, 6, 0, tzinfo=UTC) + timedelta(minutes=n)
    return Item(
        id=item_id(feed, f"{feed}-{n}", url, title), feed=feed, outlet=feed.title(), guid=f"{feed}-{n}",
        url=url, title=title, text=text, published=published, fetched=datetime.now(UTC),
        content_hash=content_hash(title, text),
    )


def garbage_probe() -> dict[str, int]:
    """An RQ job that reports on the worker process's collector: how many objects it tracks outside the
    frozen set, then how many unreachable ones an unfreeze and a full collection find (garbage that
    freezing had trapped)."""
    unfrozen = len(gc.get_objects())
    gc.unfreeze()
    return {"unfrozen": unfrozen, "unreachable": gc.collect()}


def stop_session(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """SIGTERM a process started with ``start_new_session`` and every process of its session (the workers
    ``livebrief run`` starts); SIGKILL them if it has not exited after ``timeout`` seconds."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def until(condition: Callable[[], object], timeout: float) -> bool:
    """Whether ``condition()`` came true within ``timeout`` seconds (a Redis error while it is down counts
    as not yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return True
        except redis.RedisError:
            pass
        time.sleep(0.2)
    return False


def stream_headlines(client: redis.Redis, prefix: str = "livebrief") -> list[str]:
    """The headlines of the entries on the stream, oldest first."""
    stream = Keys(prefix).entries_stream
    return [Entry.model_validate_json(f[b"entry"]).headline for _, f in client.xrange(stream)]


def rss(items: list[tuple[str, str]]) -> str:
    """An RSS 2.0 feed of (guid, title) items, each with a link and a one-line description."""
    body = "".join(
        f"<item><title>{t}</title><link>https://r.example/{g}</link><guid>{g}</guid>"
        f"<description>{t}. Officials gave details on Monday about the {g} decision.</description></item>"
        for g, t in items
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>R</title>{body}</channel></rss>'


def a_minute_on_in_the_intermediate_list(client: redis.Redis, queue_key: str, job_id: str) -> None:
    """What the recovery watchdog finds a minute after a worker took the job and died before starting it:
    the job queued over a minute ago, and first seen in the queue's intermediate list over a minute ago."""
    from rq.intermediate_queue import IntermediateQueue
    from rq.job import Job

    job = Job.fetch(job_id, connection=client)
    job.enqueued_at = datetime.now(UTC) - timedelta(seconds=62)
    job.save()
    client.set(IntermediateQueue(queue_key, connection=client).get_first_seen_key(job_id), time.time() - 61)

