"""Where a worker's time goes per item: each stage timed in this process, against a warm story index.

    .venv/bin/python benchmarks/bench_stages.py                    # ~1 min: 150 feeds of warm-up, 60 measured
    .venv/bin/python benchmarks/bench_stages.py --warm 40 --feeds 20
    .venv/bin/python benchmarks/bench_stages.py --desc-chars 20000   # feeds that carry whole articles

Generated feeds as in ``bench_pipeline.py`` (50 entries, ~600-character HTML descriptions; ``--desc-chars``
for longer ones, as a feed of whole articles in ``content:encoded`` gives). The first
``--warm`` feeds go through ``run_batch`` into a throwaway redis-server, so the index holds stories to
compare with (and the classifier's lookup caches have seen text); then the next ``--feeds`` feeds are
timed stage by stage: ``parse_feed``, the pure stages (``prepare`` on text it has not seen, then again,
then classify, condense, signature and story features alone), and ``commit_batch`` (read the index,
decide, one atomic write) of the prepared batches. ``feedparser.parse`` on the same bytes is the
baseline. Milliseconds per item, best of ``--repeat`` for the pure stages; the commit runs once (it
changes the index). No asserts: figures only.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import feedparser
from _support import FeedFactory, headlines, make_config, print_machine, print_table, quiet_logs, throwaway_redis

from feeds.parse import parse_feed
from livebrief.models import Item
from worker import dedupe
from worker.classify import classify
from worker.condense import condense
from worker.jobs import run_batch
from worker.prepare import prepare
from worker.publish import commit_batch
from worker.runtime import configure


def _ms_per_item(fn: Callable[[], object], items: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best / items * 1e3


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--warm", type=int, default=150, help="feeds committed before timing (default 150)")
    parser.add_argument("--feeds", type=int, default=60, help="feeds timed (default 60)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each pure stage; the best counts (default 3)")
    parser.add_argument("--desc-chars", type=int, default=600, help="HTML characters per description (default 600)")
    ns = parser.parse_args(argv)
    quiet_logs()
    titles, source = headlines()
    factory = FeedFactory(titles, entries=50, desc_chars=ns.desc_chars)
    docs = [factory.feed(i) for i in range(ns.warm + ns.feeds)]
    fetched = datetime.now(UTC)

    def parse(doc_range: range, fast_path: bool = True) -> list[list[Item]]:
        return [parse_feed(docs[i], feed_id=f"feed{i}", outlet=f"Outlet {i}", fetched=fetched,
                           fast_path=fast_path).items for i in doc_range]

    timed = range(ns.warm, ns.warm + ns.feeds)
    batches = parse(timed)
    flat = [item for batch in batches for item in batch]
    n = len(flat)
    print(f"{ns.warm} feeds of warm-up, {ns.feeds} timed ({n:,} items, {sum(len(i.text) for i in flat) / n:,.0f} "
          f"characters of text each on average); text from {source}")
    rows: list[list[object]] = []

    def row(stage: str, ms: float, note: str = "") -> None:
        rows.append([stage, ms, 1 / ms * 1e3, note])

    row("feedparser.parse (baseline)", _ms_per_item(lambda: [feedparser.parse(docs[i]) for i in timed], n, ns.repeat))
    row("parse_feed", _ms_per_item(lambda: parse(timed), n, ns.repeat), "plain RSS 2.0: feeds/fastxml.py")
    row("parse_feed, feedparser forced", _ms_per_item(lambda: parse(timed, fast_path=False), n, ns.repeat))
    with throwaway_redis() as (server, client):
        runtime = configure(make_config(server.url, []))
        settings = runtime.config.worker
        for batch in parse(range(ns.warm)):
            run_batch(client, runtime, batch)
        topics = runtime.topics
        row("prepare, text not seen before", _ms_per_item(lambda: [prepare(i, topics, settings) for i in flat], n, 1),
            "classifier lookup caches still filling")
        row("prepare", _ms_per_item(lambda: [prepare(i, topics, settings) for i in flat], n, ns.repeat),
            "classify + condense + signature + features + keys")
        row("  classify", _ms_per_item(lambda: [classify(i.title, i.text, topics) for i in flat], n, ns.repeat))
        row("  condense", _ms_per_item(
            lambda: [condense(i.title, i.text, i.outlet, settings.summary_max_chars) for i in flat], n, ns.repeat))
        row("  text_signature", _ms_per_item(lambda: [dedupe.text_signature(i.title, i.text) for i in flat], n,
                                             ns.repeat))
        row("  story_features", _ms_per_item(
            lambda: [dedupe.story_features(i.title, i.text, [], 0.0) for i in flat], n, ns.repeat))
        prepared = [[prepare(i, topics, settings) for i in batch] for batch in batches]
        stories_before = len(client.keys(runtime.keys.story("*")))
        row("commit_batch", _ms_per_item(
            lambda: [commit_batch(client, runtime.keys, p, settings, None, None) for p in prepared], n, 1),
            f"read, decide, write; {stories_before:,} stories in the index before")
        print_table("per item, in this process (ms; items/s = 1000 / ms)", ["stage", "ms per item", "items/s", "notes"],
                    rows)
        print_machine(client)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
