"""Throughput of the condense stage against a naive baseline measured in the same run.

Run: ``.venv/bin/python benchmarks/bench_condense.py [--seconds 1.0]``

Workloads:
- ``articles``: the invented articles in tests/fixtures/condense, plus the seed article of
  ../shared/seed when present (full article texts with boilerplate);
- ``long``: the same articles repeated into ~50 KB texts (condense should stop reading early);
- ``headlines``: ../shared/corpus/headlines.jsonl titles, with the " | " summary as text, when present.

The baseline is the placeholder this module replaced: one regex split on ". " and a greedy fill, no
boilerplate removal and one regex for the headline. Figures are items per second (best of 3 runs);
the ratio is condense's speed over the baseline's (below 1 means condense is slower).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from worker.condense import clean_headline, condense, is_boilerplate  # noqa: E402

SHARED = ROOT.parent / "shared"
FIXTURES = ROOT / "tests" / "fixtures" / "condense"

Item = tuple[str, str, str | None]  # title, text, outlet

_NAIVE_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_NAIVE_SUFFIX = re.compile(r"\s+[-|–—]\s+[^-|–—]{2,40}$")


def naive_condense(title: str, text: str, outlet: str | None = None, max_chars: int = 280) -> tuple:
    summary = ""
    for sentence in _NAIVE_SENTENCE.split(text.strip()):
        candidate = f"{summary} {sentence}".strip()
        if len(candidate) > max_chars:
            break
        summary = candidate
    return _NAIVE_SUFFIX.sub("", title.strip()), summary


def load_articles() -> list[Item]:
    items: list[Item] = []
    for path in sorted((FIXTURES / "articles").glob("*.txt")):
        header, _, body = path.read_text(encoding="utf-8").partition("\n\n")
        meta = dict(line.split(": ", 1) for line in header.splitlines())
        items.append((meta["Title"], body, meta.get("Outlet")))
    seed = SHARED / "seed" / "rferl-live-briefing-2022-03-29.txt"
    if seed.exists():
        title, _, body = seed.read_text(encoding="utf-8").partition("\n")
        items.append((title, body, "RFE/RL"))
    return items


def load_headlines() -> list[Item]:
    path = SHARED / "corpus" / "headlines.jsonl"
    if not path.exists():
        return []
    items: list[Item] = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            title = row["title"]
            _, _, packed = title.partition(" | ")
            items.append((title, packed, row.get("outlet")))
    return items


def rate(func: Callable[[str, str, str | None], object], items: Sequence[Item], seconds: float) -> float:
    """Items per second, best of three runs of at least ``seconds / 3`` each."""
    best = 0.0
    for _ in range(3):
        done = 0
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds / 3 or done == 0:
            for title, text, outlet in items:
                func(title, text, outlet)
            done += len(items)
        best = max(best, done / elapsed)
    return best


def line_rate(lines: Sequence[str], seconds: float) -> float:
    return rate(lambda title, _text, _outlet: is_boilerplate(title), [(x, "", None) for x in lines], seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="time per measurement")
    args = parser.parse_args()

    articles = load_articles()
    long = [(t, "\n".join([x] * (50_000 // max(len(x), 1) + 1)), o) for t, x, o in articles]
    headlines = load_headlines()
    workloads = [("articles", articles), ("long (~50 KB)", long)]
    if headlines:
        workloads.append(("headlines", headlines))
    else:
        print("../shared/corpus not found: headline workload skipped")

    print(f"{'workload':<16}{'items':>7}{'condense/s':>14}{'baseline/s':>14}{'ratio':>8}{'µs/item':>10}")
    for name, items in workloads:
        ours = rate(condense, items, args.seconds)
        base = rate(naive_condense, items, args.seconds)
        print(f"{name:<16}{len(items):>7}{ours:>14,.0f}{base:>14,.0f}{ours / base:>8.2f}{1e6 / ours:>10.1f}")

    if headlines:
        titles = rate(lambda t, _x, o: clean_headline(t, o), headlines, args.seconds)
        print(f"clean_headline alone on corpus titles: {titles:,.0f} titles/s")
    lines = [line for _, text, _ in articles for line in text.split("\n") if line.strip()]
    print(f"is_boilerplate on {len(lines)} article lines: {line_rate(lines, args.seconds):,.0f} lines/s")


if __name__ == "__main__":
    main()
