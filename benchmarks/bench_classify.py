"""Throughput of ``classify()`` over headline titles, against two baselines measured in the same run.

Uses /work/shared/corpus/headlines.jsonl when present (``--corpus`` to point elsewhere), else generated
headlines. Baselines: ``str.lower()`` over each text (the floor: touching every character once) and a
naive classifier that runs one ``re.search`` per phrase of a flat phrase list (the placeholder's way).
``classify()`` keeps per-TopicSet lookup caches that fill as it sees text, so it is also timed on its first
pass over the corpus with freshly loaded topics ("first pass"); the main row is the best of ``--repeat``
passes. Prints absolute items/second and ratios; asserts nothing.

    python benchmarks/bench_classify.py [--corpus FILE] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from worker.classify import classify, load_topics  # noqa: E402

DEFAULT_CORPUS = Path("/work/shared/corpus/headlines.jsonl")

# The same kind of phrases the rule set holds, for the naive baseline: one regex per phrase.
_NAIVE_PHRASES = [
    "missile strike", "air strike", "airstrike", "shelling", "bombard", "rocket attack", "drone attack",
    "explosion", "counteroffensive", "artillery fire", "car bomb", "heavy fighting", "shot down",
    "peace talks", "ceasefire", "negotiations", "negotiators", "summit", "phone call", "diplomacy",
    "security guarantees", "delegation", "accession", "truce", "mediation", "envoy",
    "refugees", "civilians", "evacuation", "humanitarian corridor", "aid convoy", "displaced",
    "famine", "shortage", "deported", "filtration camp", "prisoners of war", "demining", "mass grave",
]  # fmt: skip


def _texts(corpus: Path | None, n_generated: int = 10_000) -> tuple[list[str], str]:
    if corpus is not None and corpus.exists():
        with corpus.open(encoding="utf-8") as fh:
            titles = [json.loads(line)["title"] for line in fh if line.strip()]
        return titles, f"{corpus} ({len(titles)} titles)"
    rng = random.Random(1)
    words = [
        "Russian",
        "missile",
        "strike",
        "hits",
        "Kyiv",
        "as",
        "peace",
        "talks",
        "stall",
        "refugees",
        "flee",
        "Mariupol",
        "shelling",
        "Netflix",
        "trailer",
        "season",
        "union",
        "workers",
        "strike",
        "over",
        "pay",
        "senator",
        "attack",
        "ad",
        "climate",
        "summit",
        "Biden",
        "Putin",
        "call",
        "ceasefire",
        "aid",
        "convoy",
        "civilians",
        "killed",
        "the",
        "a",
        "of",
        "in",
        "on",
        "for",
        "with",
    ]
    titles = [" ".join(rng.choices(words, k=rng.randint(6, 16))) for _ in range(n_generated)]
    return titles, f"generated ({len(titles)} titles)"


def _rate(fn: Callable[[str], object], texts: list[str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for text in texts:
            fn(text)
        best = min(best, time.perf_counter() - start)
    return len(texts) / best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--topics", type=Path, default=ROOT / "config" / "topics.yaml")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    topics = load_topics(args.topics)
    load_s = time.perf_counter() - start
    texts, source = _texts(args.corpus)
    naive = [re.compile(r"\b" + re.escape(p) + r"\b", re.IGNORECASE) for p in _NAIVE_PHRASES]

    def naive_classify(text: str) -> list[str]:
        return [p.pattern for p in naive if p.search(text)]

    fresh = load_topics(args.topics)
    rates = {
        "str.lower()": _rate(str.lower, texts, args.repeat),
        f"naive re.search x{len(naive)} phrases": _rate(naive_classify, texts, args.repeat),
        "classify(), first pass": _rate(lambda t: classify(t, "", fresh), texts, 1),
        "classify()": _rate(lambda t: classify(t, "", topics), texts, args.repeat),
    }
    ours = rates["classify()"]
    print(f"corpus: {source}")
    print(f"load_topics: {load_s * 1000:.0f} ms")
    print(f"{'method':<36}{'items/s':>12}{'classify() is x of it':>24}")
    for name, rate in rates.items():
        print(f"{name:<36}{rate:>12,.0f}{ours / rate:>24.3f}")
    print(f"classify(): {1e6 / ours:.0f} us per item on one core")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
