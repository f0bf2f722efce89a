"""Throughput of dedupe signatures and scoring next to the baseline rule, in one run. No asserts.

    .venv/bin/python benchmarks/bench_dedupe.py [--corpus headlines.jsonl]

Without --corpus it uses invented headlines, so it runs anywhere.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from worker import dedupe
from worker.evaluate_dedupe import _baseline_words, load_corpus

_VOCABULARY = (
    "minister parliament strike flood election court ruling missile talks vote protest bank rates "
    "Valencia Kharkiv Nairobi Leeds Glasgow Odesa Chile Kenya Spain workers police killed budget"
)
_WORDS = _VOCABULARY.split()


def _invented(n: int) -> list[tuple[str, str]]:
    rng = random.Random(1)
    return [(" ".join(rng.choices(_WORDS, k=rng.randint(6, 16))), "") for _ in range(n)]


def _rate(label: str, n: int, fn: Callable[[], object], baseline: float | None = None) -> float:
    start = time.perf_counter()
    fn()
    per_s = n / (time.perf_counter() - start)
    ratio = f"  ({per_s / baseline:.2f}x baseline)" if baseline else ""
    print(f"{label:<44} {per_s:>12,.0f}/s{ratio}")
    return per_s


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--corpus", type=Path)
    p.add_argument("--n", type=int, default=5000)
    ns = p.parse_args(argv)
    corpus = [(d.title, d.text) for d in load_corpus(ns.corpus).values()] if ns.corpus else []
    texts = corpus[: ns.n] or _invented(ns.n)
    n = len(texts)
    dedupe.story_score(dedupe.story_features("warm up", "", [], 0), dedupe.story_features("x", "", [], 0))

    base_sig = _rate("baseline: significant-word sets", n, lambda: [_baseline_words(t) for t, _ in texts])
    _rate("text_signature", n, lambda: [dedupe.text_signature(t, x) for t, x in texts], base_sig)
    _rate("story_features", n, lambda: [dedupe.story_features(t, x, [], 0) for t, x in texts], base_sig)

    words = [_baseline_words(t) for t, _ in texts]
    feats = [dedupe.story_features(t, x, [], 0) for t, x in texts]
    sigs = [s for t, x in texts if (s := dedupe.text_signature(t, x)) is not None]
    pairs = [(random.randrange(n), random.randrange(n)) for _ in range(50_000)]

    def overlap() -> None:
        for i, j in pairs:
            a, b = words[i], words[j]
            if len(a) >= 5 and len(b) >= 5:
                _ = len(a & b) / min(len(a), len(b))

    base_pair = _rate("baseline: overlap coefficient (pairs)", len(pairs), overlap)
    _rate(
        "story_score (pairs)",
        len(pairs),
        lambda: [dedupe.story_score(feats[i], feats[j]) for i, j in pairs],
        base_pair,
    )
    merged = [
        dedupe.merge_features(dedupe.merge_features(feats[i], feats[(i + 1) % n]), feats[(i + 2) % n]) for i in range(n)
    ]
    _rate(
        "story_score vs stories with 2 more wordings",
        len(pairs),
        lambda: [dedupe.story_score(feats[i], merged[j]) for i, j in pairs],
        base_pair,
    )
    sizes = [len(m.model_dump_json()) for m in merged]
    print(f"{'merged story features JSON bytes':<44} mean {sum(sizes) / len(sizes):.0f}, max {max(sizes)}")
    if sigs:
        m = len(sigs)
        _rate(
            "is_near_duplicate (pairs)",
            len(pairs),
            lambda: [dedupe.is_near_duplicate(sigs[i % m], sigs[j % m]) for i, j in pairs],
            base_pair,
        )
        _rate("lsh_buckets", m, lambda: [dedupe.lsh_buckets(s) for s in sigs])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
