"""Dedupe levels 2 and 3 and their evaluation, on invented headlines (tests/fixtures/stories-small.jsonl)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from worker import dedupe
from worker.evaluate_dedupe import (
    COPY_KINDS,
    Doc,
    cluster_baseline,
    cluster_online,
    load_corpus,
    make_copy,
    score_clustering,
)

FIXTURE = Path(__file__).parent / "fixtures" / "stories-small.jsonl"

LONG = (
    "Emergency crews in Valencia evacuated hundreds of residents on Tuesday after torrential rain "
    "swelled the Turia and Jucar rivers, regional officials said, closing schools, rail lines and "
    "the port while forecasters warned of further storms through Thursday."
)
TITLE = "Valencia floods force evacuation of hundreds as rivers burst banks"


def _features(title: str, published: float = 0.0) -> dedupe.StoryFeatures:
    return dedupe.story_features(title, "", [], published)


def _labels() -> dict[str, str]:
    return {row["id"]: row["cluster"] for row in map(json.loads, FIXTURE.read_text(encoding="utf-8").splitlines())}


@pytest.mark.parametrize(
    "title",
    [
        TITLE,
        TITLE.replace("hundreds", "dozens"),
        TITLE.replace("floods", "floods again"),
        TITLE.replace(" as rivers", " rivers"),
        TITLE + " - Reuters",
        TITLE.upper(),
        TITLE.replace(" ", "  ") + "!",
    ],
)
def test_small_edits_are_near_duplicates(title: str) -> None:
    original = dedupe.text_signature(TITLE, LONG)
    copy = dedupe.text_signature(title, LONG)
    assert original is not None and copy is not None
    assert dedupe.is_near_duplicate(original, copy)


def test_appended_boilerplate_is_a_near_duplicate() -> None:
    original = dedupe.text_signature(TITLE, LONG)
    copy = dedupe.text_signature(TITLE, LONG + " The post Valencia floods appeared first on Example.")
    assert original is not None and copy is not None
    assert dedupe.is_near_duplicate(original, copy)


def test_short_texts_get_no_signature() -> None:
    assert dedupe.text_signature("Markets fall", "") is None
    assert dedupe.text_signature("Prime minister resigns after vote", "") is None


def test_different_texts_are_not_near_duplicates() -> None:
    a = dedupe.text_signature(TITLE, LONG)
    b = dedupe.text_signature(
        "Kenya's parliament approves Finance Bill despite Nairobi protests",
        "Lawmakers voted 195 to 106 for the tax measures after police dispersed crowds in the capital.",
    )
    assert a is not None and b is not None
    assert not dedupe.is_near_duplicate(a, b)


def test_signature_is_compact() -> None:
    sig = dedupe.text_signature(TITLE, LONG * 3)
    assert sig is not None
    assert len(sig.model_dump_json()) < 100


def test_every_near_duplicate_shares_an_lsh_bucket() -> None:
    rng = random.Random(4)
    words = (TITLE + " " + LONG).split()
    base = dedupe.text_signature(" ".join(words[:10]), " ".join(words[10:]))
    assert base is not None
    checked = 0
    for _ in range(300):
        edited = list(words)
        for _ in range(rng.randint(1, 3)):
            op = rng.choice(("drop", "add", "swap"))
            i = rng.randrange(len(edited))
            if op == "drop":
                del edited[i]
            elif op == "add":
                edited.insert(i, rng.choice(("Spain", "storm", "rescue", "army", "metro")))
            else:
                edited[i] = rng.choice(("Madrid", "drought", "heat", "vote"))
        sig = dedupe.text_signature(" ".join(edited[:10]), " ".join(edited[10:]))
        if sig is not None and dedupe.is_near_duplicate(base, sig):
            checked += 1
            assert set(dedupe.lsh_buckets(base)) & set(dedupe.lsh_buckets(sig))
    assert checked > 50


def test_same_event_in_other_words_scores_above_threshold() -> None:
    a = _features("Russian missile strike kills seven in Kharkiv apartment block")
    b = _features("Seven killed as Russian missiles hit Kharkiv apartment building")
    assert dedupe.story_score(a, b) >= 0.5


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (
            "Russian missile strike kills seven in Kharkiv apartment block",
            "Russian missile strike kills three in Odesa apartment block",
        ),
        (
            "Ukraine and Russia hold second round of talks in Belarus",
            "Ukraine and Russia hold third round of talks in Belarus",
        ),
        (
            "Rail workers in Leeds begin 48-hour strike over pay",
            "Bus drivers in Glasgow begin 48-hour strike over pay",
        ),
    ],
)
def test_same_topic_different_events_score_below_threshold(first: str, second: str) -> None:
    assert dedupe.story_score(_features(first), _features(second)) < 0.5


def test_story_score_is_symmetric_and_bounded() -> None:
    docs = load_corpus(FIXTURE)
    feats = [_features(d.title) for d in docs.values()]
    for a in feats:
        for b in feats:
            s = dedupe.story_score(a, b)
            assert 0.0 <= s <= 1.0
            assert s == pytest.approx(dedupe.story_score(b, a))


def test_index_terms_are_few_and_from_the_features() -> None:
    f = _features("Kenya's parliament approves Finance Bill despite Nairobi protests")
    terms = dedupe.index_terms(f)
    assert 0 < len(terms) <= 8
    assert set(terms) <= set(f.terms)
    assert "nairobi" in terms


def test_merged_story_keeps_first_terms_and_latest_time() -> None:
    first = _features("Flooding in Valencia kills 12 as rivers burst their banks", 100.0)
    later = _features("Valencia floods: twelve killed after rivers burst banks", 200.0)
    merged = dedupe.merge_features(first, later)
    assert merged.terms == first.terms
    assert merged.published == 200.0


def test_online_clustering_recovers_fixture_stories() -> None:
    docs = list(load_corpus(FIXTURE).values())
    scores = score_clustering(_labels(), cluster_online(docs))
    assert scores.pair_precision == 1.0
    assert scores.bcubed_f1 >= 0.9


def test_baseline_runs_on_the_same_fixture() -> None:
    docs = list(load_corpus(FIXTURE).values())
    scores = score_clustering(_labels(), cluster_baseline(docs))
    assert 0.0 <= scores.bcubed_f1 <= 1.0


@pytest.mark.parametrize("kind", COPY_KINDS)
def test_generated_copy_joins_its_original(kind: str) -> None:
    original = Doc(
        id="o1",
        title=TITLE,
        text=LONG,
        outlet="wire.example",
        published=1_700_000_000.0,
        url="https://wire.example/valencia-floods",
    )
    copy = make_copy(original, kind, random.Random(1))
    clusters = cluster_online([original, copy])
    assert clusters[original.id] == clusters[copy.id]
