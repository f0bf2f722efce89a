"""Feed parsing: every supported format, the fields of an ``Item``, hub and TTL, and ``html_to_text``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from feeds.parse import ParsedFeed, parse_feed
from feeds.text import html_to_text
from livebrief.errors import NotAFeedError

FEEDS = Path(__file__).parent / "fixtures" / "feeds"
FETCHED = datetime(2025, 3, 5, 12, 0, tzinfo=UTC)


def parse(name: str, **kwargs: object) -> ParsedFeed:
    options: dict[str, object] = {"feed_id": "fixture", "outlet": "Fixture Outlet", "fetched": FETCHED}
    options.update(kwargs)
    return parse_feed((FEEDS / name).read_bytes(), **options)  # type: ignore[arg-type]


def test_rss20_items_carry_title_text_link_guid_and_date() -> None:
    first = parse("rss20.xml").items[0]
    assert first.title == "Council approves new tram line"
    assert first.text.startswith("The council voted 31 to 9 in favour of the tram line.")
    assert first.guid == "courier-2025-0042"
    assert first.published == datetime(2025, 3, 4, 8, 15, tzinfo=UTC)
    assert first.feed == "fixture" and first.outlet == "Fixture Outlet" and first.fetched == FETCHED


def test_rss20_format_and_feed_title_are_reported() -> None:
    parsed = parse("rss20.xml")
    assert (parsed.format, parsed.title) == ("rss20", "Northern Courier & Post")


def test_content_encoded_is_preferred_over_description() -> None:
    assert "Construction starts in the autumn & should take two years." in parse("rss20.xml").items[0].text


def test_paragraphs_become_lines_of_plain_text() -> None:
    assert parse("rss20.xml").items[0].text.split("\n") == [
        "The council voted 31 to 9 in favour of the tram line.",
        "Construction starts in the autumn & should take two years.",
    ]


def test_tracking_parameters_are_removed_from_item_urls() -> None:
    assert parse("rss20.xml").items[0].url == "https://courier.example.com/news/tram-line?id=42"


def test_relative_links_resolve_against_the_base_url() -> None:
    parsed = parse("rss20.xml", base_url="https://courier.example.com/feed.xml")
    assert parsed.items[1].url == "https://courier.example.com/news/night-clinic"


def test_dates_with_offsets_are_converted_to_utc() -> None:
    assert parse("rss20.xml").items[1].published == datetime(2025, 3, 3, 16, 40, tzinfo=UTC)


def test_rss_ttl_minutes_become_seconds() -> None:
    assert parse("rss20.xml").ttl_seconds == 15 * 60


def test_rss_atom_link_hub_is_extracted() -> None:
    assert parse("rss20.xml").hub == "https://hub.example.com/"


def test_http_link_header_hub_takes_precedence_over_the_document() -> None:
    parsed = parse("rss20.xml", headers={"Link": '<https://header-hub.example.com/>; rel="hub"'})
    assert parsed.hub == "https://header-hub.example.com/"


def test_items_keep_document_order() -> None:
    assert [item.guid for item in parse("rss20.xml").items][:2] == ["courier-2025-0042", "courier-2025-0041"]


def test_item_ids_are_stable_across_parses() -> None:
    assert [i.id for i in parse("rss20.xml").items] == [i.id for i in parse("rss20.xml").items]


def test_item_ids_differ_between_feeds() -> None:
    assert parse("rss20.xml").items[0].id != parse("rss20.xml", feed_id="other").items[0].id


def test_content_hash_changes_when_the_text_changes() -> None:
    body = (FEEDS / "rss20.xml").read_bytes()
    edited = body.replace(b"should take two years", b"should take three years")
    before = parse_feed(body, feed_id="f", outlet="o", fetched=FETCHED).items[0]
    after = parse_feed(edited, feed_id="f", outlet="o", fetched=FETCHED).items[0]
    assert (before.id, before.content_hash) != (after.id, after.content_hash)
    assert before.id == after.id


def test_feed_without_items_parses_to_no_items() -> None:
    parsed = parse("rss20_empty.xml")
    assert (parsed.format, parsed.items) == ("rss20", [])


def test_rss091_with_the_netscape_doctype_is_parsed() -> None:
    parsed = parse("rss091.xml")
    assert parsed.format == "rss091n"
    assert [item.title for item in parsed.items] == ["Ferry timetable changes from Monday", "Café on the quay reopens"]


def test_rss092_escaped_html_description_becomes_text() -> None:
    parsed = parse("rss092.xml")
    assert parsed.format == "rss092"
    assert parsed.items[0].text == "River levels fell overnight and the warning was lifted at 06:00."


def test_item_without_title_is_kept_when_it_has_text() -> None:
    item = parse("rss092.xml").items[1]
    assert (item.title, item.text) == ("", "Gusts of up to 70 km/h are expected on the ridge this afternoon.")


def test_rss10_rdf_items_are_parsed_with_dublin_core_dates() -> None:
    parsed = parse("rss10.xml")
    assert parsed.format == "rss10"
    assert [item.published for item in parsed.items] == [
        datetime(2025, 3, 2, 21, 30, tzinfo=UTC),
        datetime(2025, 3, 1, 8, 0, tzinfo=UTC),
    ]


def test_atom10_entries_are_parsed() -> None:
    parsed = parse("atom10.xml")
    assert parsed.format == "atom10"
    assert [item.guid for item in parsed.items] == [
        "tag:wire.example.org,2025:world-1001",
        "tag:wire.example.org,2025:world-1000",
    ]


def test_atom_html_title_becomes_plain_text() -> None:
    assert parse("atom10.xml").items[0].title == "Talks resume in Geneva"


def test_atom_relative_links_resolve_against_xml_base() -> None:
    assert parse("atom10.xml").items[0].url == "https://wire.example.org/world/2025/03/talks-resume"


def test_atom_published_is_preferred_over_updated() -> None:
    assert parse("atom10.xml").items[0].published == datetime(2025, 3, 4, 9, 30, tzinfo=UTC)


def test_atom_updated_is_used_without_published() -> None:
    assert parse("atom10.xml").items[1].published == datetime(2025, 3, 3, 20, 10, tzinfo=UTC)


def test_atom_xhtml_content_becomes_text() -> None:
    assert parse("atom10.xml").items[1].text == "Dock workers accepted a 6% rise."


def test_atom_link_rel_hub_is_extracted() -> None:
    assert parse("atom10.xml").hub == "https://websub.example.org/hub"


def test_json_feed_items_are_parsed() -> None:
    parsed = parse("jsonfeed11.json")
    assert (parsed.format, parsed.title) == ("json", "Metro Transit Updates")
    first = parsed.items[0]
    assert (first.guid, first.title) == ("transit-311", "Line 4 delays after signal fault")
    assert first.text == "Trains on Line 4 are running up to 15 minutes late."
    assert first.url == "https://transit.example.com/updates/311"
    assert first.published == datetime(2025, 3, 4, 7, 20, tzinfo=UTC)


def test_json_feed_content_text_is_kept_as_plain_text() -> None:
    text = parse("jsonfeed11.json").items[1].text
    assert text == "Replacement buses will run between Central and Riverside. Fares & tickets: free of charge."


def test_json_feed_content_text_is_never_decoded_as_html() -> None:
    # Plain text: an entity-looking "&copy=" in a link, an escaped entity or a tag are what they say.
    body = json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "F", "items": [
        {"id": "1", "title": "T", "content_text": "See https://e.example/?id=1&copy=2 now.\n\nThe <b> tag &amp; more."},
    ]})
    text = parse_feed(body.encode(), feed_id="f", outlet="F", fetched=datetime(2025, 3, 5, tzinfo=UTC)).items[0].text
    assert text == "See https://e.example/?id=1&copy=2 now.\nThe <b> tag &amp; more."


def test_json_feed_numeric_id_and_non_object_items_are_handled() -> None:
    items = parse("jsonfeed11.json").items
    assert [item.guid for item in items] == ["transit-311", "transit-310", "309"]


def test_json_feed_websub_hub_is_extracted() -> None:
    assert parse("jsonfeed11.json").hub == "https://hub.transit.example.com/"


def test_json_that_is_not_a_json_feed_is_not_a_feed() -> None:
    with pytest.raises(NotAFeedError, match="not a JSON Feed"):
        parse_feed(b'{"status": "ok"}', feed_id="f", outlet="o", fetched=FETCHED)


def test_json_array_is_not_a_feed() -> None:
    with pytest.raises(NotAFeedError, match="not a JSON Feed"):
        parse_feed(b'[{"title": "x"}]', feed_id="f", outlet="o", fetched=FETCHED)


def test_max_entries_limits_the_items() -> None:
    assert len(parse("rss20.xml", max_entries=2).items) == 2


def test_max_text_chars_limits_the_text() -> None:
    assert all(len(item.text) <= 40 for item in parse("rss20.xml", max_text_chars=40).items)


# --- html_to_text --------------------------------------------------------------------------------------


def test_html_to_text_decodes_entities() -> None:
    assert html_to_text("Fish &amp; chips &#8211; &ldquo;fresh&rdquo;") == "Fish & chips – “fresh”"


def test_html_to_text_keeps_paragraph_breaks() -> None:
    assert html_to_text("<p>One.</p>\n\n<p>Two <b>bold</b>.</p><br/>Three") == "One.\nTwo bold.\nThree"


def test_html_to_text_reads_a_line_break_in_the_html_source_as_a_space() -> None:
    source = "<p>Ferries left the harbour at dawn,\ncarrying two hundred\r\npassengers. The\ncrossing took an hour.</p>"
    assert html_to_text(source) == (
        "Ferries left the harbour at dawn, carrying two hundred passengers. The crossing took an hour."
    )


def test_html_to_text_breaks_lines_only_at_block_elements_and_br() -> None:
    source = "<h2>Harbour\nreopens</h2>\n<p>Ferries\nsailed again.</p>\n<p>Crews cheered.<br>\nTrade\nresumed.</p>"
    assert html_to_text(source) == "Harbour reopens\nFerries sailed again.\nCrews cheered.\nTrade resumed."


def test_html_to_text_keeps_the_line_breaks_of_text_without_block_markup() -> None:
    # Plain text (or text with only a link in it) has no other paragraph structure.
    assert html_to_text('Ferries sailed.\nSee <a href="/x">the timetable</a>.') == (
        "Ferries sailed.\nSee the timetable."
    )


def test_html_to_text_drops_script_and_style_content() -> None:
    assert html_to_text("<style>p{}</style>Hello <script>alert(1)</script>world") == "Hello world"


def test_html_to_text_strips_double_escaped_markup() -> None:
    assert html_to_text("&lt;p&gt;Escaped &amp;amp; twice&lt;/p&gt;") == "Escaped & twice"


def test_html_to_text_decodes_a_title_escaped_twice() -> None:
    # The only place double escaping is undone: condense takes the result as plain text.
    assert html_to_text("Talks &amp;amp; tensions &amp;#8211; day two") == "Talks & tensions – day two"


def test_html_to_text_keeps_a_lone_less_than_sign() -> None:
    assert html_to_text("3 < 4 and 5 > 2") == "3 < 4 and 5 > 2"


def test_html_to_text_ignores_a_greater_than_sign_inside_an_attribute() -> None:
    assert html_to_text('<img alt="a > b" src="x.png">Caption') == "Caption"


def test_html_to_text_cuts_at_a_word_boundary() -> None:
    assert html_to_text("alpha beta gamma delta", 13) == "alpha beta"


def _article(paragraphs: int) -> str:
    """Article HTML as whole-content feeds carry it: paragraphs, an image whose data: URI is longer than
    the first window ``html_to_text`` reads, a script, a comment and entities."""
    words = "Officials said the convoy reached the city &amp; unloaded food, water and medicine for residents."
    image = '<figure><img src="data:image/png;base64,' + "QUJD" * 3000 + '" alt="x"></figure>'
    body = [f"<p>{n}: {words}</p>" for n in range(paragraphs)]
    body[12:12] = [image, "<script>var x = '<p>no</p>';</script>", "<!-- a comment -->"]
    return "\n".join(body)


@pytest.mark.parametrize("escaped", [False, True])
def test_html_to_text_of_a_long_article_is_the_start_of_its_whole_text(escaped: bool) -> None:
    article = _article(400)  # ~60 KB: read in windows, the first of which ends inside the image's data: URI
    if escaped:  # HTML escaped once too often
        article = article.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    whole = html_to_text(article)
    text = html_to_text(article, 4000)
    assert whole.startswith(text)
    assert 3900 < len(text) <= 4000
    assert "QUJD" not in text


def test_html_to_text_folds_whitespace() -> None:
    assert html_to_text("  many\t\tspaces\u00a0here \n\n\n next  ") == "many spaces here\nnext"
