"""Measure dedupe against a labelled story-cluster set, next to a simple baseline, in one run.

    python -m worker.evaluate_dedupe --corpus headlines.jsonl eval/story-clusters.jsonl
    python -m worker.evaluate_dedupe build-idf --corpus headlines.jsonl worker/data/idf.json

The labels file holds only ids and cluster labels ({"id": ..., "cluster": "c001"}); the headline text
comes from the corpus. ``cluster_online`` replays the online decision the story index makes (items in
published order, each joins the best story within the window or starts its own) and is pure, so tests
run it on small fixtures.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livebrief.errors import DataFileError, LivebriefError
from worker import dedupe
from worker.evaluate_topics import load_records
from worker.stories import MAX_STORIES_PER_TERM, term_candidates

HOUR = 3600.0
DEFAULT_THRESHOLD = 0.5
DEFAULT_WINDOW_H = 6.0
BASELINE_WINDOW_H = 48.0
EVAL_WINDOWS_H = (6.0, 12.0, 24.0, 48.0, 72.0)


@dataclass(frozen=True)
class Doc:
    """One corpus item as the evaluation sees it."""

    id: str
    title: str
    text: str
    outlet: str
    published: float
    url: str = ""
    topics: tuple[str, ...] = ()


def split_title(raw: str) -> tuple[str, str]:
    """Corpus titles may carry " | summary": the part before is the title, the rest the text."""
    title, sep, rest = raw.partition(" | ")
    return (title, rest) if sep else (raw, "")


def _rows(path: Path, fields: tuple[str, ...]) -> list[dict[str, Any]]:
    """JSON lines that each hold ``fields``; ``DataFileError`` naming the file and record otherwise."""
    rows = load_records(path)
    for number, row in enumerate(rows, start=1):
        missing = [name for name in fields if name not in row]
        if missing:
            raise DataFileError(str(path), [f"record {number} (id {row.get('id')!r}): no {', '.join(missing)}"])
    return rows


def load_corpus(path: Path) -> dict[str, Doc]:
    docs = {}
    for number, row in enumerate(_rows(path, ("id", "title", "timestamp")), start=1):
        try:
            published = float(row["timestamp"])
        except (TypeError, ValueError):
            raise DataFileError(str(path), [f"record {number} (id {row['id']!r}): timestamp "
                                            f"{row['timestamp']!r} is not a number"]) from None
        title, text = split_title(row["title"])
        docs[row["id"]] = Doc(
            id=row["id"],
            title=title,
            text=text,
            outlet=row.get("outlet", ""),
            published=published,
            url=row.get("link", ""),
        )
    return docs


def load_labels(path: Path) -> dict[str, str]:
    return {row["id"]: row["cluster"] for row in _rows(path, ("id", "cluster"))}


# --- the online clustering, ours and the baseline's ------------------------------------------------


@dataclass
class _Story:
    id: int
    first: Doc
    published: float
    exact: set[str] = field(default_factory=set)
    signature: dedupe.TextSignature | None = None
    features: dedupe.StoryFeatures | None = None
    # Baseline state.
    title_key: str = ""
    words: frozenset[str] = frozenset()


def _exact_key(doc: Doc) -> str | None:
    from livebrief.urls import canonical_url

    return canonical_url(doc.url) if doc.url else None


def cluster_online(
    docs: Sequence[Doc], threshold: float = DEFAULT_THRESHOLD, window_h: float = DEFAULT_WINDOW_H
) -> dict[str, int]:
    """Doc id -> story number, deciding as the story index does (``worker/stories.py``): exact URL,
    then a near-duplicate text signature found through a shared LSH bucket, then the best
    ``story_score`` >= ``threshold`` among stories found through shared index terms
    (``term_candidates``) whose ``published`` is within ``window_h`` and that hold no item of the same
    outlet (the pipeline's same-feed rule). As in the index, every item's buckets and terms point at
    its story once it joined, and a term keeps only the ``MAX_STORIES_PER_TERM`` most recent stories."""
    window = window_h * HOUR
    stories: list[_Story] = []
    by_exact: dict[str, _Story] = {}
    by_bucket: dict[tuple[int, str], _Story] = {}
    by_term: dict[str, list[int]] = defaultdict(list)  # term -> story numbers, most recent first
    outlets: dict[int, set[str]] = defaultdict(set)
    out: dict[str, int] = {}
    for doc in sorted(docs, key=lambda d: (d.published, d.id)):
        key = _exact_key(doc)
        sig = dedupe.text_signature(doc.title, doc.text)
        feats = dedupe.story_features(doc.title, doc.text, list(doc.topics), doc.published)
        story: _Story | None = by_exact.get(key) if key else None
        if story is None and sig is not None:
            for bucket in dedupe.lsh_buckets(sig):
                cand = by_bucket.get(bucket)
                if cand is not None and cand.signature is not None and dedupe.is_near_duplicate(sig, cand.signature):
                    story = cand
                    break
        terms = dedupe.index_terms(feats)
        if story is None:
            best, best_score = None, threshold
            for number in term_candidates(terms, by_term):
                cand = stories[number]
                if cand.features is None:
                    continue
                if doc.outlet and doc.outlet in outlets[cand.id]:
                    continue
                if abs(cand.published - doc.published) > window:
                    continue
                score = dedupe.story_score(feats, cand.features)
                if score > best_score or (score == best_score and best is None):
                    best, best_score = cand, score
            story = best
        if story is None:
            story = _Story(id=len(stories), first=doc, published=doc.published)
            story.signature = sig
            story.features = feats
            stories.append(story)
        elif story.features is not None:
            story.features = dedupe.merge_features(story.features, feats)
            story.published = story.features.published
        if sig is not None:
            for bucket in dedupe.lsh_buckets(sig):
                by_bucket[bucket] = story
        for term in terms:
            by_term[term] = [story.id, *(n for n in by_term[term] if n != story.id)][:MAX_STORIES_PER_TERM]
        outlets[story.id].add(doc.outlet)
        if key:
            by_exact.setdefault(key, story)
        out[doc.id] = story.id
    return out


_BASE_WORD = re.compile(r"[a-z0-9]+")


def _baseline_title(title: str) -> str:
    return " ".join(_BASE_WORD.findall(title.lower()))


def _baseline_words(title: str) -> frozenset[str]:
    return frozenset(w for w in _BASE_WORD.findall(title.lower()) if w not in dedupe._STOPWORDS)


def cluster_baseline(docs: Sequence[Doc], window_h: float = BASELINE_WINDOW_H) -> dict[str, int]:
    """The open-aggregator rule: same canonical URL or exact normalised title, else significant-word
    overlap coefficient >= 0.6 with >= 5 significant words on both sides, within ``window_h``."""
    window = window_h * HOUR
    stories: list[_Story] = []
    by_exact: dict[str, _Story] = {}
    by_title: dict[str, _Story] = {}
    by_word: dict[str, list[_Story]] = defaultdict(list)
    out: dict[str, int] = {}
    for doc in sorted(docs, key=lambda d: (d.published, d.id)):
        key = _exact_key(doc)
        title_key = _baseline_title(f"{doc.title} {doc.text}")
        words = _baseline_words(f"{doc.title} {doc.text}")
        story = by_exact.get(key) if key else None
        if story is None:
            story = by_title.get(title_key)
        if story is None and len(words) >= 5:
            best, best_score = None, 0.6
            seen: set[int] = set()
            for w in words:
                for cand in by_word.get(w, ()):
                    if cand.id in seen or abs(cand.published - doc.published) > window:
                        continue
                    seen.add(cand.id)
                    if len(cand.words) < 5:
                        continue
                    score = len(words & cand.words) / min(len(words), len(cand.words))
                    if score >= best_score:
                        best, best_score = cand, score
            story = best
        if story is None:
            story = _Story(id=len(stories), first=doc, published=doc.published)
            story.words = words
            stories.append(story)
            by_title[title_key] = story
            for w in words:
                by_word[w].append(story)
        if key:
            by_exact.setdefault(key, story)
        out[doc.id] = story.id
    return out


# --- metrics ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scores:
    pair_precision: float
    pair_recall: float
    pair_f1: float
    bcubed_precision: float
    bcubed_recall: float
    bcubed_f1: float


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def score_clustering(truth: dict[str, str], predicted: dict[str, int]) -> Scores:
    """Pairwise and B-cubed precision/recall/F1 of ``predicted`` against ``truth`` on truth's ids."""
    ids = [i for i in truth if i in predicted]
    gold: dict[str, set[str]] = defaultdict(set)
    pred: dict[int, set[str]] = defaultdict(set)
    for i in ids:
        gold[truth[i]].add(i)
        pred[predicted[i]].add(i)
    tp = fp = fn = 0
    for members in pred.values():
        counts = Counter(truth[i] for i in members)
        same = sum(c * (c - 1) // 2 for c in counts.values())
        tp += same
        fp += len(members) * (len(members) - 1) // 2 - same
    for members in gold.values():
        n = len(members)
        fn += n * (n - 1) // 2
    fn -= tp
    pp = tp / (tp + fp) if tp + fp else 1.0
    pr = tp / (tp + fn) if tp + fn else 1.0
    bp = br = 0.0
    for i in ids:
        p_set = pred[predicted[i]]
        g_set = gold[truth[i]]
        inter = len(p_set & g_set)
        bp += inter / len(p_set)
        br += inter / len(g_set)
    n = len(ids) or 1
    bp, br = bp / n, br / n
    return Scores(pp, pr, _f1(pp, pr), bp, br, _f1(bp, br))


# --- generated copies ------------------------------------------------------------------------------

_SUFFIXES = [" - Reuters", " | AP News", " - BBC News", " — The Guardian", " - CNN"]
_BOILER = [
    " Read more at our website.",
    " Sign up for our newsletter.",
    " Continue reading on the app.",
    " The post appeared first on Example News.",
]
_FILLER = ["reportedly", "officials", "new", "latest", "now", "major"]
_TRACKING = ["utm_source=twitter&utm_medium=social", "fbclid=abc123", "ocid=rss&cmpid=feed"]


def _with_query(url: str, extra: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{extra}"


def make_copy(doc: Doc, kind: str, rng: random.Random) -> Doc:
    """A republished copy of ``doc`` with one kind of change, from another outlet."""
    title, text, url = doc.title, doc.text, doc.url
    words = title.split()
    if kind == "verbatim":
        pass
    elif kind == "tracking":
        url = _with_query(url, rng.choice(_TRACKING))
    elif kind == "word_changed" and len(words) > 2:
        i = rng.randrange(len(words))
        words[i] = rng.choice(_FILLER)
        title = " ".join(words)
    elif kind == "word_added":
        words.insert(rng.randrange(len(words) + 1), rng.choice(_FILLER))
        title = " ".join(words)
    elif kind == "word_removed" and len(words) > 2:
        del words[rng.randrange(len(words))]
        title = " ".join(words)
    elif kind == "outlet_suffix":
        title = title + rng.choice(_SUFFIXES)
    elif kind == "case_punct":
        title = re.sub(r"[,;:!?\"']", "", title)
        title = title.upper() if rng.random() < 0.5 else title.lower()
    elif kind == "boilerplate":
        text = (text + rng.choice(_BOILER)).strip()
    if kind != "tracking":
        url = f"https://copy.example/{kind}/{doc.id}"
    return Doc(
        id=f"{doc.id}~{kind}",
        title=title,
        text=text,
        outlet=f"{kind}.{doc.id}.copy.example",  # one outlet per copy: the same-outlet rule does not apply
        published=doc.published + rng.uniform(60, 3 * HOUR),
        url=url,
        topics=doc.topics,
    )


COPY_KINDS = (
    "verbatim",
    "tracking",
    "word_changed",
    "word_added",
    "word_removed",
    "outlet_suffix",
    "case_punct",
    "boilerplate",
)


@dataclass(frozen=True)
class CopyReport:
    kind: str
    copies: int
    merged: int  # joined the original's story through any level
    signed: int  # copies whose original has a text signature (level 2 applies)
    near_dup: int  # of those, matched by is_near_duplicate with a shared bucket


def copy_recall(docs: Sequence[Doc], rng: random.Random, threshold: float) -> list[CopyReport]:
    """For each kind of copy: how many copies join their original's story (any level), and how many
    are caught by level 2 alone among those long enough to have a signature."""
    reports = []
    for kind in COPY_KINDS:
        copies = [make_copy(d, kind, rng) for d in docs]
        clusters = cluster_online([*docs, *copies], threshold=threshold)
        merged = sum(clusters[c.id] == clusters[d.id] for d, c in zip(docs, copies, strict=True))
        signed = near = 0
        for d, c in zip(docs, copies, strict=True):
            sa = dedupe.text_signature(d.title, d.text)
            if sa is None:
                continue
            signed += 1
            sb = dedupe.text_signature(c.title, c.text)
            if sb is not None and dedupe.is_near_duplicate(sa, sb):
                near += 1
        reports.append(CopyReport(kind, len(copies), merged, signed, near))
    return reports


def near_dup_pairs(docs: Sequence[Doc], truth: dict[str, str]) -> tuple[int, int, list[tuple[str, str]]]:
    """Pairs with different normalised titles that level 2 calls near-duplicates, found through shared
    buckets: (pairs whose ids are labelled in different clusters, all such pairs, examples of the rest
    for reading: most are one outlet's re-post or a syndicated copy)."""
    sigs = []
    for d in docs:
        s = dedupe.text_signature(d.title, d.text)
        if s is not None:
            sigs.append((d, s))
    by_bucket: dict[tuple[int, str], list[int]] = defaultdict(list)
    for i, (_, s) in enumerate(sigs):
        for b in dedupe.lsh_buckets(s):
            by_bucket[b].append(i)
    pairs: set[tuple[int, int]] = set()
    for members in by_bucket.values():
        for x in range(len(members)):
            for y in range(x + 1, len(members)):
                pairs.add((members[x], members[y]))
    false = 0
    found = []
    for i, j in pairs:
        (di, si), (dj, sj) = sigs[i], sigs[j]
        if _baseline_title(di.title) == _baseline_title(dj.title):
            continue
        if dedupe.is_near_duplicate(si, sj):
            found.append((di.title, dj.title))
            if di.id in truth and dj.id in truth and truth[di.id] != truth[dj.id]:
                false += 1
    return false, len(found), found


# --- IDF -------------------------------------------------------------------------------------------


def build_idf(docs: Iterable[Doc], min_df: int = 2) -> dict[str, object]:
    """Document frequencies of normalised content words and the words written capitalised mid-sentence
    in at least 80% of their sentence-case occurrences (names: "Mykolaiv", "Zelensky")."""
    df: Counter[str] = Counter()
    caps: Counter[str] = Counter()
    seen_mid: Counter[str] = Counter()
    n = 0
    for doc in docs:
        n += 1
        text = f"{doc.title} {doc.text}"
        pairs = dedupe._content_words(text)
        df.update({norm for _, norm in pairs})
        raw_words = dedupe._WORD.findall(doc.title)
        if dedupe._is_title_case(raw_words):
            continue
        first = raw_words[0] if raw_words else ""
        for raw, norm in dedupe._content_words(doc.title):
            if raw == first or norm.isdigit():
                continue
            seen_mid[norm] += 1
            if raw[:1].isupper():
                caps[norm] += 1
    proper = sorted(t for t, c in seen_mid.items() if c >= 2 and caps[t] >= 0.8 * c)
    return {
        "n_docs": n,
        "df": {t: c for t, c in sorted(df.items()) if c >= min_df},
        "proper": proper,
    }


# --- command line ----------------------------------------------------------------------------------


_TABLE_HEAD = (
    f"{'window':<7} {'method':<9} {'pair P':>7} {'pair R':>7} {'pair F1':>7} {'B3 P':>7} {'B3 R':>7} {'B3 F1':>7}"
    "  B3 F1 - baseline"
)


def _row(window: str, name: str, s: Scores, base: Scores | None) -> str:
    diff = f"  {s.bcubed_f1 - base.bcubed_f1:+.3f}" if base is not None else ""
    return (
        f"{window:<7} {name:<9} {s.pair_precision:>7.3f} {s.pair_recall:>7.3f} {s.pair_f1:>7.3f}"
        f" {s.bcubed_precision:>7.3f} {s.bcubed_recall:>7.3f} {s.bcubed_f1:>7.3f}{diff}"
    )


def label_spans(docs: dict[str, Doc], labels: dict[str, str]) -> list[float]:
    """Seconds between the first and the last item of every labelled cluster with several items."""
    times: dict[str, list[float]] = defaultdict(list)
    for i, c in labels.items():
        if i in docs:
            times[c].append(docs[i].published)
    return [max(t) - min(t) for t in times.values() if len(t) > 1]


def window_ceiling(docs: Sequence[Doc], labels: dict[str, str], window_h: float) -> dict[str, int]:
    """The best any online method with this window can do: the labels, with each cluster cut where
    two consecutive items (in published order) are further apart than the window (a story stays open
    ``window_h`` after its latest item). Unlabelled items are singletons."""
    window = window_h * HOUR
    out: dict[str, int] = {}
    last: dict[str, tuple[float, int]] = {}
    n = 0
    for doc in sorted(docs, key=lambda d: (d.published, d.id)):
        c = labels.get(doc.id)
        prev = last.get(c) if c is not None else None
        if prev is None or doc.published - prev[0] > window:
            n += 1
            prev = (doc.published, n)
        out[doc.id] = prev[1]
        if c is not None:
            last[c] = (doc.published, prev[1])
    return out


def _evaluate(corpus: Path, labels_path: Path, threshold: float, windows: Sequence[float], seed: int) -> None:
    docs = load_corpus(corpus)
    labels = load_labels(labels_path)
    missing = [i for i in labels if i not in docs]
    if missing:
        raise SystemExit(f"{len(missing)} labelled ids are not in {corpus}, e.g. {missing[:3]}")
    all_docs = list(docs.values())
    multi = Counter(labels.values())
    print(
        f"labelled items {len(labels)}, clusters {len(multi)}, "
        f"multi-item clusters {sum(1 for c in multi.values() if c > 1)}"
    )
    spans = label_spans(docs, labels)
    print(
        "multi-item clusters spanning more than "
        + ", ".join(f"{w:g} h: {sum(s > w * HOUR for s in spans)}" for w in windows)
        + f" (of {len(spans)})"
    )
    print(
        f"story clustering, whole corpus replayed online, scored on the labelled items; "
        f"ours at threshold {threshold}, baseline = exact title then overlap >= 0.6 with >= 5 words:"
    )
    print(_TABLE_HEAD)
    for window_h in windows:
        ours = score_clustering(labels, cluster_online(all_docs, threshold=threshold, window_h=window_h))
        base = score_clustering(labels, cluster_baseline(all_docs, window_h=window_h))
        ceiling = score_clustering(labels, window_ceiling(all_docs, labels, window_h))
        print(_row(f"{window_h:g} h", "ours", ours, base))
        print(_row("", "baseline", base, None))
        print(_row("", "ceiling", ceiling, None))

    rng = random.Random(seed)
    sample = rng.sample(all_docs, min(1000, len(all_docs)))
    print(f"generated copies of {len(sample)} corpus items (seed {seed}):")
    for r in copy_recall(sample, rng, threshold):
        near = f"{r.near_dup}/{r.signed} = {r.near_dup / r.signed:.3f}" if r.signed else "n/a"
        print(
            f"  {r.kind:<14} merged (any level) {r.merged}/{r.copies} = {r.merged / r.copies:.3f}"
            f"   level-2 near-dup {near}"
        )
    labelled = [d for d in all_docs if d.id in labels]
    signed = sum(1 for d in labelled if dedupe.text_signature(d.title, d.text))
    false, _, _ = near_dup_pairs(labelled, labels)
    pairs = signed * (signed - 1) // 2
    print(
        f"near-duplicate false merges among labelled items in different clusters: {false} of {pairs}"
        f" pairs ({signed} labelled items with a signature)"
    )
    _, found, examples = near_dup_pairs(all_docs, {})
    print(f"near-duplicate pairs with different titles in the whole corpus: {found} (read a few):")
    for a, b in examples[:4]:
        print(f"    {a[:90]!r}\n    ~ {b[:90]!r}")
    sizes = [len(s.model_dump_json()) for d in all_docs if (s := dedupe.text_signature(d.title, d.text))]
    if sizes:
        print(f"signature JSON bytes: mean {sum(sizes) / len(sizes):.1f}, max {max(sizes)}")
    feats = [len(dedupe.story_features(d.title, d.text, [], d.published).model_dump_json()) for d in all_docs]
    print(f"features JSON bytes: mean {sum(feats) / len(feats):.1f}, max {max(feats)}")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except LivebriefError as exc:
        print(exc, file=sys.stderr)
        return 2


def _main(args: list[str]) -> int:
    if args and args[0] == "build-idf":
        p = argparse.ArgumentParser(prog="python -m worker.evaluate_dedupe build-idf")
        p.add_argument("--corpus", type=Path, required=True)
        p.add_argument("out", type=Path)
        ns = p.parse_args(args[1:])
        data = build_idf(load_corpus(ns.corpus).values())
        ns.out.parent.mkdir(parents=True, exist_ok=True)
        ns.out.write_text(json.dumps(data, separators=(",", ":"), ensure_ascii=False), encoding="utf-8")
        return 0
    p = argparse.ArgumentParser(prog="python -m worker.evaluate_dedupe", description=__doc__)
    p.add_argument("--corpus", type=Path, required=True, help="headlines JSONL with the text")
    p.add_argument("labels", type=Path, help="JSONL of {id, cluster}")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    p.add_argument(
        "--windows",
        type=lambda v: [float(x) for x in v.split(",")],
        default=list(EVAL_WINDOWS_H),
        help="comma-separated windows in hours, ours and the baseline side by side (default 6,12,24,48,72)",
    )
    p.add_argument("--seed", type=int, default=7)
    ns = p.parse_args(args)
    _evaluate(ns.corpus, ns.labels, ns.threshold, ns.windows, ns.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
