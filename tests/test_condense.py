"""Specification of the condense stage: clean headlines, lead-based summaries, boilerplate detection."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from worker.condense import ELLIPSIS, MAX_HEADLINE_CHARS, clean_headline, condense, is_boilerplate
from worker.scanning import Scanner

FIXTURES = Path(__file__).parent / "fixtures" / "condense"
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Article:
    name: str
    title: str
    outlet: str | None
    lead: str | None
    text: str


def _load_article(path: Path) -> Article:
    header, _, body = path.read_text(encoding="utf-8").partition("\n\n")
    meta = dict(line.split(": ", 1) for line in header.splitlines())
    return Article(path.stem, meta["Title"], meta.get("Outlet"), meta.get("Lead"), body)


def _lines(name: str) -> list[str]:
    return [line for line in (FIXTURES / name).read_text(encoding="utf-8").splitlines() if line]


ARTICLES = [_load_article(p) for p in sorted((FIXTURES / "articles").glob("*.txt"))]
BOILERPLATE_LINES = _lines("boilerplate-lines.txt")
CONTENT_LINES = _lines("content-lines.txt")
MAX_CHARS = [60, 120, 200, 280, 500]


def _words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text)}


def _article(name: str) -> Article:
    return next(a for a in ARTICLES if a.name == name)


# --- summary ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_chars", MAX_CHARS)
@pytest.mark.parametrize("article", ARTICLES, ids=lambda a: a.name)
def test_summary_never_contains_words_not_in_source(article: Article, max_chars: int) -> None:
    summary = condense(article.title, article.text, article.outlet, max_chars).summary
    assert _words(summary) <= _words(article.text)


@pytest.mark.parametrize("max_chars", MAX_CHARS)
@pytest.mark.parametrize("article", ARTICLES, ids=lambda a: a.name)
def test_summary_fits_max_chars(article: Article, max_chars: int) -> None:
    assert len(condense(article.title, article.text, article.outlet, max_chars).summary) <= max_chars


@pytest.mark.parametrize("max_chars", MAX_CHARS)
@pytest.mark.parametrize("article", ARTICLES, ids=lambda a: a.name)
def test_summary_ends_with_a_whole_sentence_or_an_ellipsis(article: Article, max_chars: int) -> None:
    summary = condense(article.title, article.text, article.outlet, max_chars).summary
    assert summary.rstrip("\"'’”)").endswith((".", "!", "?", ELLIPSIS))


@pytest.mark.parametrize("article", [a for a in ARTICLES if a.lead], ids=lambda a: a.name)
def test_summary_starts_with_the_lead_sentence(article: Article) -> None:
    assert article.lead is not None
    assert condense(article.title, article.text, article.outlet).summary.startswith(article.lead)


@pytest.mark.parametrize("article", ARTICLES, ids=lambda a: a.name)
def test_summary_leaves_out_boilerplate(article: Article) -> None:
    summary = condense(article.title, article.text, article.outlet, max_chars=2000).summary
    for line in BOILERPLATE_LINES:
        assert line not in summary


def test_summary_takes_sentences_in_source_order_while_they_fit() -> None:
    text = "First sentence is here. Second one follows it. Third one is last."
    assert condense("T", text, max_chars=50).summary == "First sentence is here. Second one follows it."


def test_summary_stops_at_the_first_sentence_that_does_not_fit() -> None:
    text = "A short lead sentence. " + "A much longer second sentence " * 5 + ". Short third one."
    assert condense("T", text, max_chars=60).summary == "A short lead sentence."


def test_max_chars_is_configurable() -> None:
    article = _article("wire-dateline")
    short = condense(article.title, article.text, article.outlet, max_chars=200).summary
    long = condense(article.title, article.text, article.outlet, max_chars=1000).summary
    assert len(short) <= 200 < len(long) <= 1000


def test_long_first_sentence_is_cut_at_a_word_boundary_with_an_ellipsis() -> None:
    article = _article("long-first-sentence")
    summary = condense(article.title, article.text, article.outlet, max_chars=100).summary
    assert summary.endswith(ELLIPSIS) and len(summary) <= 100
    kept = summary.removesuffix(ELLIPSIS)
    assert article.text.split("\n")[0].startswith(kept)
    assert article.text[len(kept)] == " "  # the cut falls between words


def test_sentence_that_repeats_the_headline_is_skipped() -> None:
    article = _article("headline-repeat")
    summary = condense(article.title, article.text, article.outlet).summary
    assert "raises interest rates" not in summary


def test_dateline_is_removed_from_the_lead() -> None:
    summary = condense("T", "KYIV, Ukraine (AP) — Sirens sounded across the capital.").summary
    assert summary == "Sirens sounded across the capital."


def test_ellipsis_truncated_fragment_is_not_used() -> None:
    article = _article("truncated-feed")
    summary = condense(article.title, article.text, article.outlet, max_chars=1000).summary
    assert "[…]" not in summary and "under" not in summary.split()


@pytest.mark.parametrize("ellipsis", ["...", "…"])
def test_a_sentence_ending_in_an_ellipsis_before_a_new_one_is_kept(ellipsis: str) -> None:
    text = f"Ferries left the harbour on Monday{ellipsis} Two hundred passengers were aboard."
    assert condense("T", text).summary == text


def test_a_paragraph_cut_with_an_ellipsis_is_left_out_after_a_whole_sentence() -> None:
    text = "Ferries left the harbour on Monday. The crossing was delayed by high winds and..."
    assert condense("T", text).summary == "Ferries left the harbour on Monday."


def test_a_text_cut_with_an_ellipsis_is_used_when_it_is_all_there_is() -> None:
    text = "The crossing was delayed by high winds and..."
    assert condense("T", text).summary == text


def test_title_like_lines_are_not_summary_sentences() -> None:
    text = "Residents Describe Nights Under Fire\nFour people were wounded overnight."
    assert condense("T", text).summary == "Four people were wounded overnight."


def test_hard_wrapped_lines_of_plain_text_are_read_as_one_paragraph() -> None:
    text = (
        "Ferries left the harbour at dawn, carrying\ntwo hundred passengers, the port said. The\n"
        "crossing took an hour."
    )
    assert condense("T", text).summary == (
        "Ferries left the harbour at dawn, carrying two hundred passengers, the port said. "
        "The crossing took an hour."
    )


def test_a_line_break_in_mid_sentence_before_a_name_is_joined() -> None:
    # As a <br> between "of" and "Velmora" leaves it.
    text = "Ferries reached the port of\nVelmora on Monday after a week at sea."
    assert condense("T", text).summary == "Ferries reached the port of Velmora on Monday after a week at sea."


@pytest.mark.parametrize(
    "text",
    [
        "Harbour reopens after storm\nFerries sailed again on Monday.",
        "KYIV\nSirens sounded across the capital.",
        "Casualties\nthree dead, the coast guard said.",
        "Key facts:\nferries sailed again on Monday.",
        "The telescope sees more clearly than its engineers hoped for\nFerries sailed again on Monday.",
        "And everyone at the port should know that the ferries,\nFerries sailed again on Monday.",
        "The Harbour Town You Have Never Heard Of\nFerries sailed again on Monday.",
    ],
)
def test_short_lines_and_lines_that_end_a_sentence_stay_apart(text: str) -> None:
    last = text.split("\n")[-1]
    assert condense("T", text).summary == last


def test_a_lone_word_after_a_sentence_is_not_joined_with_the_next_line() -> None:
    text = "Crews cleared the pier. More\nferries sailed again on Monday."
    assert condense("T", text).summary == "Crews cleared the pier. ferries sailed again on Monday."


def test_text_without_any_sentence_falls_back_to_its_first_line() -> None:
    assert condense("T", "Storm hits coast\nMore to follow").summary == "Storm hits coast"


def test_empty_text_gives_an_empty_summary() -> None:
    assert condense("Storm hits coast", "").summary == ""


def test_max_chars_below_two_is_rejected() -> None:
    with pytest.raises(ValueError, match="max_chars"):
        condense("T", "Text.", max_chars=1)


# --- sentence splitting ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sentence",
    [
        "Former U.S. Ambassador Jane Doe testified on Tuesday.",
        "Dr. Anna Berg said the patients were stable.",
        "Mr. and Mrs. Holt were evacuated by boat.",
        "Talks began on Jan. 15 in the capital.",
        "Mayor J. R. Pellham declared an emergency.",
        "President John F. Kennedy visited the city in 1963.",
        "Wheat prices rose 3.5% on the news.",
        "Aldermoor Defense Inc. shares fell sharply.",
        "The meeting began at 9 a.m. Moscow time.",
        "He lives on St. Clair Avenue.",
        "The ship was listed as No. 4 in the convoy.",
        "Sen. Paul Whitcombe, R-Ore., asked a question.",
    ],
)
def test_abbreviations_do_not_end_a_sentence(sentence: str) -> None:
    text = f"{sentence} Second sentence follows here."
    assert condense("T", text, max_chars=len(sentence)).summary == sentence


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("Sanctions were imposed by the U.S.", "The move was expected."),
        ("The contract went to Aldermoor Defense Inc.", "It was signed on Monday."),
        ('"We will rebuild," the mayor said.', '"The harbor has survived worse."'),
        ("“It is not over,” Kirby said.", "“They can still strike.”"),
        ("Is the threat over?", "Officials say no."),
        ("The talks ended at 2 p.m.", "They will resume on Friday."),
    ],
)
def test_sentence_ends_after_abbreviation_or_quote_when_a_new_one_starts(first: str, second: str) -> None:
    assert condense("T", f"{first} {second}", max_chars=len(first)).summary == first


_LEAD = "Storm Agnete destroyed at least 40 boats in the harbour of Velmora overnight, the coast guard said."


@pytest.mark.parametrize("speaker", ["Lindahl", "Mayor Tove Lindahl"])
def test_a_quoted_question_and_its_speaker_are_one_sentence(speaker: str) -> None:
    quote = '"Where are the boats we were promised?"'
    text = f"{_LEAD} {quote} {speaker} asked on Monday."
    # Room for the question but not for who asked it: the question alone is not a sentence.
    assert condense("T", text, max_chars=len(_LEAD) + len(quote) + 5).summary == _LEAD
    assert condense("T", text).summary == text


def test_a_summary_does_not_end_inside_a_quotation() -> None:
    opening = 'She said: "We will rebuild the harbour.'
    text = f"{_LEAD} {opening} Every boat will sail again by the summer.\" The crowd cheered."
    assert condense("T", text, max_chars=len(_LEAD) + len(opening) + 5).summary == _LEAD
    assert condense("T", text, max_chars=len(text) - len(" The crowd cheered.")).summary == (
        text.removesuffix(" The crowd cheered.")
    )


def test_a_quotation_over_paragraphs_is_taken_whole_or_not_at_all() -> None:
    # Each paragraph of a long quotation opens it again; only the last closes it.
    text = f'{_LEAD}\n"We will rebuild the harbour.\n"Every boat will sail again," she said.'
    assert condense("T", text, max_chars=len(_LEAD) + 35).summary == _LEAD
    assert condense("T", text).summary == text.replace("\n", " ")


def test_a_quotation_closed_with_another_kind_of_mark_is_closed() -> None:
    text = f'{_LEAD} The mayor promised to “rebuild every pier". Repairs begin in May.'
    assert condense("T", text, max_chars=len(text) - 5).summary == text.removesuffix(" Repairs begin in May.")


def test_a_quotation_its_paragraph_never_closes_does_not_hold_the_summary_back() -> None:
    # A stray quote mark: the next paragraph does not open a quotation again, so it was never one.
    text = f'{_LEAD}\nThe mayor said "rebuild, and soon.\nRepairs begin in May.\nThe port reopens in June.'
    assert condense("T", text, max_chars=len(text) - 5).summary == text[: -len(" The port reopens in June.")].replace(
        "\n", " "
    )


def test_a_german_quotation_ends_a_sentence() -> None:
    first = "„Wir bauen den Hafen wieder auf“, sagte die Bürgermeisterin. „Das Meer hat uns nicht besiegt.“"
    text = f"{first} Die Menge jubelte am Montag."
    assert condense("T", text, max_chars=len(first)).summary == first


# --- headline --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "outlet"),
    [
        ("Talks resume in Geneva - Reuters", None),
        ("Talks resume in Geneva - Reuters", "Reuters"),
        ("Talks resume in Geneva - Reuters", "reuters.com"),
        ("Talks resume in Geneva | AP News", None),
        ("Talks resume in Geneva | AP News", "apnews.com"),
        ("Talks resume in Geneva — BBC News", None),
        ("Talks resume in Geneva – BBC News", "bbc.co.uk"),
        ("Talks resume in Geneva | CBC News", "cbc.ca"),
        ("Talks resume in Geneva - The Moscow Times", "themoscowtimes.com"),
        ("Talks resume in Geneva - CNN Video", "cnn.com"),
        ("Talks resume in Geneva (Reuters)", None),
        ("Talks resume in Geneva - Daily Ledger", "dailyledger.example"),
        ("The Guardian: Talks resume in Geneva", None),
        ("Live updates: Talks resume in Geneva", None),
        ("Opinion | Talks resume in Geneva", None),
        ("EXCLUSIVE-Talks resume in Geneva", "Reuters"),
        ("UPDATE 2-Talks resume in Geneva", "Reuters"),
        ("Talks resume in Geneva (VIDEO)", None),
        ("BREAKING: Talks resume in Geneva", None),
    ],
)
def test_outlet_and_section_labels_are_removed_from_the_headline(title: str, outlet: str | None) -> None:
    assert clean_headline(title, outlet) == "Talks resume in Geneva"


@pytest.mark.parametrize(
    ("title", "outlet"),
    [
        ("Russia-Ukraine talks - what we know", None),
        ("Russia-Ukraine talks - what we know", "Reuters"),
        ("NATO vows to defend every inch - and warns Moscow", "Sky News"),
        ("Blinken: Russia must withdraw its forces", None),
        ("Star Trek: New season announced", "startrek.com"),
        ("Lithuania refuses to budge on transit - officials", None),
    ],
)
def test_content_that_looks_like_a_label_is_kept(title: str, outlet: str | None) -> None:
    assert clean_headline(title, outlet) == title


def test_another_outlets_attribution_is_kept_when_the_outlet_is_known() -> None:
    assert clean_headline("Juul to be ordered off shelves - WSJ | Reuters", "Reuters") == (
        "Juul to be ordered off shelves - WSJ"
    )


def test_summary_packed_after_a_pipe_is_split_off_the_headline() -> None:
    title = "Grain talks resume | Negotiators met in Geneva on Tuesday after a two-week pause."
    assert clean_headline(title) == "Grain talks resume"


@pytest.mark.parametrize(
    ("title", "outlet"),
    [
        ("Eldria | Mob storms the customs house in Marrow Falls, burns its records", "eldria-daily.example"),
        ("Perspective | A harbour town learns to live with the sea again", "capitalherald.example"),
        ("World news | A harbour town learns to live with the sea again", None),
    ],
)
def test_a_section_name_before_a_pipe_is_dropped(title: str, outlet: str | None) -> None:
    assert clean_headline(title, outlet) == title.split(" | ")[1]


@pytest.mark.parametrize(
    ("title", "headline"),
    [
        ("Tidewater | Official Trailer | Streamline", "Tidewater"),
        ("Tidewater | The Harbour Keeper Returns", "Tidewater"),
        ("Storm hits | Negotiators met in Geneva on Tuesday after a two-week pause.", "Storm hits"),
    ],
)
def test_a_short_headline_before_a_pipe_is_kept(title: str, headline: str) -> None:
    assert clean_headline(title) == headline


def test_headline_whitespace_and_quotes_are_normalised() -> None:
    assert clean_headline("  Mayor\u00a0vows   to ‘rebuild’ \n harbor ") == "Mayor vows to 'rebuild' harbor"


def test_headline_wrapped_in_quotes_is_unwrapped() -> None:
    assert clean_headline("“We will rebuild the harbor”") == "We will rebuild the harbor"


def test_headline_is_plain_text_and_is_not_decoded_again() -> None:
    # The feed's HTML was decoded once (feeds.text.html_to_text): "&amp;" here is what the title says.
    assert clean_headline("Escaping &amp; in HTML, explained") == "Escaping &amp; in HTML, explained"


def test_summary_is_plain_text_and_is_not_decoded_again() -> None:
    text = "The timetable is at https://ferries.example/?route=4&times=all&copy=1 from today."
    assert condense("T", text).summary == text
    assert condense("T", "The &lt;p&gt; tag starts a paragraph.").summary == "The &lt;p&gt; tag starts a paragraph."


def test_title_that_is_only_a_label_falls_back_to_the_title() -> None:
    assert clean_headline("Reuters", "Reuters") == "Reuters"


def test_missing_title_falls_back_to_the_first_sentence_of_text() -> None:
    result = condense("", "Share this\nSirens sounded in the capital. Residents took shelter.")
    assert result.headline == "Sirens sounded in the capital."
    assert result.summary == "Residents took shelter."


def test_missing_title_and_text_fall_back_to_the_outlet() -> None:
    assert condense("", "", outlet="Northern Service").headline == "Northern Service"
    assert condense("   ", "").headline == "Untitled"


@pytest.mark.parametrize(
    "title",
    ["", " ", "Reuters", " | ", " - Reuters", "Opinion |", "“”", "Live updates:", "—"],
)
@pytest.mark.parametrize("text", ["", "Getty Images", "Sirens sounded in the capital."])
def test_headline_is_never_empty(title: str, text: str) -> None:
    assert condense(title, text, outlet="Reuters").headline.strip()


# --- boilerplate -----------------------------------------------------------------------------------


@pytest.mark.parametrize("line", BOILERPLATE_LINES)
def test_boilerplate_line_is_detected(line: str) -> None:
    assert is_boilerplate(line)


@pytest.mark.parametrize("line", CONTENT_LINES)
def test_news_line_is_not_boilerplate(line: str) -> None:
    assert not is_boilerplate(line)


def test_boilerplate_sentence_inside_a_news_paragraph_is_dropped() -> None:
    text = "Four people were wounded. SEE ALSO: Aid convoy reaches town\nMediators will meet again."
    assert condense("T", text).summary == "Four people were wounded. Mediators will meet again."


def test_a_sentence_is_checked_for_what_its_paragraph_holds() -> None:
    # A paragraph's sentences are checked only for the substrings that guard the costlier patterns and that
    # the paragraph holds: "all rights reserved" is one, and here only a sentence of the paragraph has it.
    wounded = "Four people were wounded when shells hit a residential block in the north of the city on Monday."
    text = f"{wounded} All rights reserved. Mediators will meet again."
    assert not is_boilerplate(text)
    assert condense("T", text).summary == f"{wounded} Mediators will meet again."


def test_a_credit_after_news_drops_only_the_credit() -> None:
    text = "Ferries were cancelled on Monday. Crews repaired the pier. (Photo by Ana Ruiz/AFP via Getty Images)"
    assert condense("T", text).summary == "Ferries were cancelled on Monday. Crews repaired the pier."


def test_a_promotion_after_news_drops_only_the_promotion() -> None:
    text = "Ferries were cancelled on Monday. Sign up for our morning briefing. Crews repaired the pier."
    assert condense("T", text).summary == "Ferries were cancelled on Monday. Crews repaired the pier."


def test_news_that_mentions_signing_up_is_kept() -> None:
    text = "Ferries were cancelled on Monday. Hundreds of dockworkers queued to sign up for the reserve."
    assert condense("T", text).summary == text


def test_a_caption_is_the_summary_only_when_the_text_has_nothing_else() -> None:
    caption = "The images show the breached sea wall."
    assert condense("T", f"{caption} Photo: Orbit Imaging").summary == caption
    text = f"{caption} Photo: Orbit Imaging\nThe storm destroyed 40 boats."
    assert condense("T", text).summary == "The storm destroyed 40 boats."


def test_a_sentence_about_photos_before_a_link_is_not_a_caption() -> None:
    text = "Residents share photos of the flooded harbour. More\nFerries resumed on Monday."
    assert condense("T", text).summary == "Residents share photos of the flooded harbour. Ferries resumed on Monday."


_STARTS = [
    "", "a", "ab", "(", "(Photo: Reuters", "photo: x", "PHOTO/AFP", "12 jan", "1 Jan 2022", "9/11 anniversary",
    "— Jane (@jane) March 1, 2022", "\u212aey live", "key live", "\u017fee also: x", "see also: x", "Ab", "cd",
    "y", "xy", "x", "Ukraine says", "The post X appeared first on Y", "the tide turned", "\u00e9t\u00e9",
    " see also:", "1", "12", "Uk",
]


@pytest.mark.parametrize("line", _STARTS + BOILERPLATE_LINES + CONTENT_LINES)
def test_a_scanner_matches_a_line_as_its_whole_alternation(line: str) -> None:
    """``Scanner.match`` (the boilerplate lines' matcher) tries only the alternatives that can begin where the
    line does; each line gets the answer of ``re.match`` with the whole alternation (non-ASCII starts
    included: the Kelvin sign and the long s match "k" and "s" when case is ignored). The first scanner has
    an alternative that matches the empty string, so it is not indexed and runs the whole alternation."""
    matcher = Scanner([r"\(?photo\s*[:/]", r"\d{1,2}(?:/\d{1,2}| jan)", r"— .{1,60} \(@\w+\)", r"k\w+ live",
                       r"ab|cd", r"x?y", r"see also:", r"the post .+ appeared first on\b", r".?\(", r"u?"], 0)
    assert (matcher.match(line) is not None) == (matcher.pattern.match(line) is not None)
    strict = Scanner([r"\(?photo\s*[:/]", r"\d{1,2} jan", r"see also:", r"— .{1,60}"], 0)
    assert strict.indexed
    assert (strict.match(line) is not None) == (strict.pattern.match(line) is not None)


def test_long_byline_like_run_is_not_slow_to_reject() -> None:
    # A pathological run of capitalised words must not trigger catastrophic regex backtracking.
    assert not is_boilerplate("By " + "ABCDEFGHIJ" * 10 + " x")


def test_overlong_title_is_cut_to_the_headline_bound() -> None:
    headline = clean_headline("word " * 1000)
    assert len(headline) <= MAX_HEADLINE_CHARS and headline.endswith(ELLIPSIS)


# --- scripts without capital letters -------------------------------------------------------------------------
# A sentence had to start with a capital or a digit, so Hebrew, Arabic or Chinese text was one run cut
# mid-sentence with "…".

@pytest.mark.parametrize(("sentence", "between"), [
    ("הצבא תקף את העיר בלילה. שלושה אנשים נהרגו ועשרה נפצעו.", " "),
    ("قصفت القوات المدينة ليلا. قتل ثلاثة أشخاص وأصيب عشرة آخرون.", " "),
    ("谈判将于明天在伊斯坦布尔举行，双方代表已经抵达。外长表示，停火是首要议题！", ""),
])
def test_text_in_a_script_without_capitals_is_summarised_in_whole_sentences(sentence: str, between: str) -> None:
    text = between.join([sentence] * 8)
    summary = condense("T", text).summary
    assert 0 < len(summary) <= 280 and not summary.endswith("…")
    assert summary.rstrip().endswith((".", "。", "！")) and summary in text


def test_chinese_sentences_are_joined_without_a_space_and_latin_ones_with_one() -> None:
    assert condense("T", "第一句话。第二句话！").summary == "第一句话。第二句话！"
    assert condense("T", "The talks resumed on Monday. Both sides met in Istanbul.").summary == (
        "The talks resumed on Monday. Both sides met in Istanbul.")


def test_a_line_ending_in_a_sentence_and_a_stray_bracket_is_not_joined_and_does_not_raise() -> None:
    # The line-joining check read the last word of what followed the line's last sentence: nothing here.
    text = "Officials counted the damage in the city. )\nand the rest of the line follows here."
    summary = condense("T", text).summary
    assert summary and len(summary) <= 280


_PIECES = [". ", "? ", "! ", "... ", "… ", '"', "'", "“", "”", "„", "«", "»", "(", ")", "[", "]", "\n", "\n\n", " ",
           ": ", "&amp;", "Photo: Staff", "Read more:", "Sign up for our newsletter", "。", "！", "|", " - ",
           "(Reuters) - ", "KYIV — ", "By Staff", "[…]", "\t", "\u00a0", "U.S.", "No. 3", "3.5", "e.g.", "Mr.",
           "Shelling hit Kharkiv overnight", "the governor said", "Talks resume in Istanbul", "and", "of the"]


def test_condense_never_raises_and_keeps_its_limit_on_scrambled_text() -> None:
    import random

    rng = random.Random(11)
    for _ in range(3000):
        text = "".join(rng.choice(_PIECES) for _ in range(rng.randint(1, 30)))
        title = "".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 4)))
        result = condense(title, text, rng.choice([None, "Reuters"]))
        assert len(result.summary) <= 280 and len(result.headline) <= MAX_HEADLINE_CHARS
