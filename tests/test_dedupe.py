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
    label_spans,
    load_corpus,
    main,
    make_copy,
    score_clustering,
    window_ceiling,
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


def test_news_that_mentions_signing_up_is_not_read_as_a_newsletter_trailer() -> None:
    # The trailer pattern drops everything after it: "sign up for" must name a newsletter, not river patrols.
    text = "Volunteers sign up for river patrols as the Turia rises."
    features = dedupe.story_features("Valencia floods", text, [], 0.0)
    assert {"patrol", "turia"} <= set(features.terms)


def test_a_newsletter_trailer_is_left_out_of_the_features() -> None:
    text = "Volunteers patrol the Turia. Sign up for our morning briefing on Madrid politics."
    assert "madrid" not in dedupe.story_features("Valencia floods", text, [], 0.0).terms


def test_short_texts_get_no_signature() -> None:
    assert dedupe.text_signature("Markets fall", "") is None
    assert dedupe.text_signature("Prime minister resigns after vote", "") is None


def test_a_signature_reads_on_past_a_lead_of_few_words() -> None:
    # Story features read the lead's first words only; a signature reads on until it has its words.
    filler = "and the of it " * 12
    content = "Kharkiv shelling killed seven civilians near the central market overnight, officials said"
    read_on, read_first = dedupe.text_signature("Aid", filler + content), dedupe.text_signature("Aid", content)
    assert read_on is not None and read_first is not None and read_on.fp == read_first.fp


def test_different_texts_are_not_near_duplicates() -> None:
    a = dedupe.text_signature(TITLE, LONG)
    b = dedupe.text_signature(
        "Kenya's parliament approves Finance Bill despite Nairobi protests",
        "Lawmakers voted 195 to 106 for the tax measures after police dispersed crowds in the capital.",
    )
    assert a is not None and b is not None
    assert not dedupe.is_near_duplicate(a, b)


SUMMARY_LEAD = ("Here are the main developments of the conflict, from the front lines, the diplomatic talks "
                "and the aid convoys heading east.")


@pytest.mark.parametrize(("title", "lead", "other_title", "other_lead"), [
    # A daily summary: the next day's is another item in the very same words.
    ("Conflict diary: key events, day 100", SUMMARY_LEAD,
     "Conflict diary: key events, day 101", SUMMARY_LEAD),
    # A regional toll reported in the same template for two regions.
    ("Shelling kills three civilians in Kharkiv region over past day, governor says",
     "Attacks killed three civilians and injured twelve in the Kharkiv region over the past day.",
     "Shelling kills three civilians in Donetsk region over past day, governor says",
     "Attacks killed three civilians and injured twelve in the Donetsk region over the past day."),
    # Two conflicts, names too common to be rare: one meeting's notice in the same words for each.
    ("UN Security Council to meet on Ukraine", "The council will hold an emergency session on Friday at the "
     "request of several members, diplomats said, as fighting continues.",
     "UN Security Council to meet on Gaza", "The council will hold an emergency session on Friday at the "
     "request of several members, diplomats said, as fighting continues."),
])
def test_a_number_or_rare_name_swapped_is_another_event(title: str, lead: str, other_title: str,
                                                         other_lead: str) -> None:
    a, b = dedupe.text_signature(title, lead), dedupe.text_signature(other_title, other_lead)
    assert a is not None and b is not None
    assert not dedupe.is_near_duplicate(a, b)
    # What the same text with the swap undone would be: a copy, so only the swap decided it.
    assert dedupe.is_near_duplicate(a, dedupe.text_signature(title + " - Wire", lead))


def test_a_name_added_on_each_side_is_still_a_copy() -> None:
    # Common names added, one on each side, are not a swap (two outlets editing one wire story).
    original = dedupe.text_signature(TITLE, LONG)
    copy = dedupe.text_signature(TITLE.replace("Valencia floods", "Spain's Valencia floods"),
                                 LONG.replace("Thursday.", "Thursday, Reuters reported."))
    assert original is not None and copy is not None
    assert dedupe.is_near_duplicate(original, copy)


def test_a_signature_stored_before_keys_existed_matches_as_before() -> None:
    day_100 = dedupe.text_signature("Conflict diary: key events, day 100", SUMMARY_LEAD)
    day_101 = dedupe.text_signature("Conflict diary: key events, day 101", SUMMARY_LEAD)
    assert day_100 is not None and day_101 is not None and day_100.keys
    stored = dedupe.TextSignature.model_validate_json(day_100.model_copy(update={"keys": ""}).model_dump_json(
        exclude={"keys"}))
    assert dedupe.is_near_duplicate(stored, day_101)


@pytest.mark.parametrize(("word", "ordinal"), [("sixth", "6th"), ("Seventh", "7th"), ("twelfth", "12th")])
def test_ordinal_words_fold_to_numbers(word: str, ordinal: str) -> None:
    assert ordinal in _features(f"EU agrees {word} package of sanctions on Moscow").terms


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


def test_names_of_one_conflict_on_each_side_do_not_cut_a_story() -> None:
    a = _features("UN Security Council to meet on Ukraine as Russian forces shell Kharkiv")
    b = _features("UN Security Council to meet as Moscow presses offensive near Kharkiv")
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
        # names of two conflicts, each too common to count as a rare name
        ("UN Security Council to meet on Ukraine", "UN Security Council to meet on Gaza"),
        ("UN Security Council to hold emergency meeting on Syria",
         "UN Security Council to hold emergency meeting on Yemen"),
    ],
)
def test_same_topic_different_events_score_below_threshold(first: str, second: str) -> None:
    assert dedupe.story_score(_features(first), _features(second)) < 0.5


def test_the_evaluation_names_an_unusable_file_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels = tmp_path / "clusters.jsonl"
    labels.write_text(json.dumps({"id": "a", "cluster": "c1"}) + "\n")
    assert main([str(labels), "--corpus", str(tmp_path / "absent.jsonl")]) == 2
    assert f"cannot use {tmp_path / 'absent.jsonl'}:\n  cannot read the file" in capsys.readouterr().err
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps({"id": "a", "title": "A headline"}) + "\n")  # no timestamp
    assert main([str(labels), "--corpus", str(corpus)]) == 2
    assert "record 1 (id 'a'): no timestamp" in capsys.readouterr().err
    corpus.write_text(json.dumps({"id": "a", "title": "A headline", "timestamp": "soon"}) + "\n")
    assert main([str(labels), "--corpus", str(corpus)]) == 2
    assert "record 1 (id 'a'): timestamp 'soon' is not a number" in capsys.readouterr().err


def test_story_score_is_symmetric_and_bounded() -> None:
    docs = load_corpus(FIXTURE)
    feats = [_features(d.title) for d in docs.values()]
    for a in feats:
        for b in feats:
            s = dedupe.story_score(a, b)
            assert 0.0 <= s <= 1.0
            assert s == pytest.approx(dedupe.story_score(b, a))


def test_a_scorer_for_one_item_gives_story_score_against_every_story() -> None:
    """Stories with other wordings (``also``) included: the scorer skips pairs story_score scores 0."""
    docs = list(load_corpus(FIXTURE).values())
    feats = [_features(d.title) for d in docs]
    merged = [dedupe.merge_features(a, b) for a, b in zip(feats, feats[1:] + feats[:1], strict=True)]
    assert any(m.also for m in merged)
    positive = 0
    for a in feats:
        score = dedupe.story_scorer(a)
        for b in feats + merged:
            expected = dedupe.story_score(a, b)
            assert score(b) == expected
            positive += expected > 0
    assert positive > len(feats)  # not only the zeros


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


# --- spelling variants, short re-posts, remembered wordings, evaluation helpers ---------------------


@pytest.mark.parametrize(
    ("first", "second", "term"),
    [
        ("Pakistani government approves castration law", "Pakistan passes castration law", "pakistan"),
        ("U.S. imposes sanctions on Belarus", "United States imposes sanctions on Belarus", "usa"),
        ("US imposes sanctions on Belarus", "USA imposes sanctions on Belarus", "usa"),
        ("GOP senators block voting bill", "Republicans block voting bill", "republican"),
        ("Lender repaid $2M loan", "Lender repaid 2 million loan", "2m"),
        ("COVID-19 cases rise in Austria", "Covid cases rise in Austria", "covid"),
    ],
)
def test_spelling_variants_share_a_term(first: str, second: str, term: str) -> None:
    assert term in _features(first).terms
    assert term in _features(second).terms


def test_pronoun_us_is_not_the_country() -> None:
    assert "usa" not in _features("Teachers tell us about the strike in Leeds").terms


def test_short_identical_headlines_are_near_duplicates() -> None:
    a = dedupe.text_signature("China says not aware of tennis player issue", "")
    b = dedupe.text_signature("China says 'not aware' of tennis player issue - Reuters", "")
    c = dedupe.text_signature("China says not aware of football player issue", "")
    assert a is not None and b is not None and c is not None
    assert len(dedupe._decode(a.fp)) < dedupe.MIN_TOKENS
    assert dedupe.is_near_duplicate(a, b)
    assert set(dedupe.lsh_buckets(a)) & set(dedupe.lsh_buckets(b))
    assert not dedupe.is_near_duplicate(a, c)  # below MIN_TOKENS words, one changed word is another text


def test_story_remembers_a_differently_worded_item() -> None:
    first = _features("Apple announces Self Service Repair program", 100.0)
    second = _features("Apple will sell you iPhone parts to fix your own phone at home", 200.0)
    third = _features("Apple will start letting you fix your own iPhone at home with parts", 300.0)
    assert dedupe.story_score(first, third) < 0.5
    story = dedupe.merge_features(first, second)
    assert story.terms == first.terms
    assert len(story.also) == 1
    assert dedupe.story_score(story, third) >= 0.5
    assert dedupe.story_score(story, third) == pytest.approx(dedupe.story_score(third, story))


def test_remembered_wordings_are_few_and_new() -> None:
    story = _features("Valencia floods force evacuation of hundreds as rivers burst banks", 0.0)
    same = _features("Valencia floods force evacuation of hundreds as rivers burst their banks", 1.0)
    assert dedupe.merge_features(story, same).also == []
    for i, title in enumerate(
        [
            "Spain sends army to help Valencia after deadly storm",
            "Turia river overflows, regional officials close schools and port",
            "Forecasters warn Valencia of more torrential rain through Thursday",
            "Rail lines shut across eastern Spain as rescue teams reach villages",
        ]
    ):
        story = dedupe.merge_features(story, _features(title, float(i + 2)))
    assert len(story.also) == dedupe.MAX_ALSO
    assert story.published == 5.0
    assert len(story.model_dump_json()) < 600


def test_online_clustering_keeps_one_outlet_out_of_its_own_story() -> None:
    a = Doc("x1", "Kenya's parliament approves Finance Bill despite Nairobi protests", "", "one.example", 0.0)
    b = Doc("x2", "Kenyan parliament passes contested Finance Bill as protests grip Nairobi", "", "two.example", 60.0)
    c = Doc("x3", "Kenyan parliament passes contested Finance Bill as Nairobi protests grow", "", "one.example", 120.0)
    clusters = cluster_online([a, b, c])
    assert clusters["x1"] == clusters["x2"]
    assert clusters["x3"] != clusters["x1"]


def test_window_ceiling_cuts_clusters_at_gaps_longer_than_the_window() -> None:
    hour = 3600.0
    docs = [Doc(i, "t", "", "o", t * hour) for i, t in (("a", 0), ("b", 5), ("c", 20), ("d", 1))]
    labels = {"a": "c1", "b": "c1", "c": "c1", "d": "c2"}
    ceiling = window_ceiling(docs, labels, 6.0)
    assert ceiling["a"] == ceiling["b"] != ceiling["c"]
    assert ceiling["d"] not in (ceiling["a"], ceiling["c"])
    assert window_ceiling(docs, labels, 24.0)["c"] == window_ceiling(docs, labels, 24.0)["a"]
    assert sorted(label_spans({d.id: d for d in docs}, labels)) == [20 * hour]
    assert score_clustering(labels, window_ceiling(docs, labels, 24.0)).bcubed_f1 == 1.0


def test_permalink_guid_adds_no_second_exact_key() -> None:
    from datetime import UTC, datetime

    from livebrief.models import Item
    from worker.dedupe import exact_keys

    base = {"id": "i", "feed": "f", "outlet": "F", "fetched": datetime(2022, 3, 29, tzinfo=UTC), "content_hash": "h"}
    permalink = Item(**base, url="https://a.example/news/1?utm_source=rss", guid="https://a.example/news/1")
    opaque = Item(**base, url="https://a.example/news/1", guid="urn:a:1")
    assert [kind for kind, _ in exact_keys(permalink)] == ["url"]
    assert [kind for kind, _ in exact_keys(opaque)] == ["url", "guid"]


def test_the_word_cache_keeps_no_overlong_word() -> None:
    """Every written word's content form is cached per process; a hostile feed's kilobyte "words" are not."""
    long_word = "x" * 1_000
    dedupe.story_features(f"Shelling hits {long_word} in Kharkiv", "", [], 0.0)
    assert long_word not in dedupe._CONTENT
    assert "Kharkiv" in dedupe._CONTENT
