"""Hostile and broken feed bodies: each is refused with a clear error or parsed into bounded, safe items.

Small cases are files in ``tests/fixtures/hostile/`` (from the project's hostile corpus); large ones (50 MB,
a 5 MB entry, 10,000 entries, deep nesting, a gzip bomb) are generated into ``tmp_path`` by the helpers
below. An audit hook records every file open and socket use while a parse runs, so "nothing is read or
fetched" is checked, not assumed. No timing assertions: pytest-timeout is the watchdog.
"""

from __future__ import annotations

import json
import random
import sys
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from feeds.parse import TITLE_MAX_CHARS, ParsedFeed, parse_feed
from livebrief.errors import NotAFeedError, ParseError, UnsafeFeedError

HOSTILE = Path(__file__).parent / "fixtures" / "hostile"
FETCHED = datetime(2025, 1, 7, 12, 0, tzinfo=UTC)

# --- an audit hook: which files and sockets did a parse touch? -----------------------------------------

_audit: dict[str, Any] = {"on": False, "events": []}


def _record(event: str, args: tuple[Any, ...]) -> None:
    if not _audit["on"]:
        return
    if event == "open" and not str(args[0]).endswith((".py", ".pyc")):
        _audit["events"].append((event, args[0]))
    elif event.startswith(("socket.", "urllib.")):
        _audit["events"].append((event, args))


sys.addaudithook(_record)


@contextmanager
def watching_io() -> Iterator[list[tuple[str, Any]]]:
    """The files opened and sockets used inside the block (after a warm-up parse)."""
    parse_body((HOSTILE / "00_valid_baseline.xml").read_bytes())  # lazy imports open files once
    _audit["events"] = []
    _audit["on"] = True
    try:
        yield _audit["events"]
    finally:
        _audit["on"] = False


def refuse_without_io(name: str, error: type[Exception], match: str | None = None) -> list[tuple[str, Any]]:
    """Parse a fixture expecting ``error``; return the files and sockets the parse touched."""
    body = (HOSTILE / name).read_bytes()
    with watching_io() as events, pytest.raises(error, match=match):
        parse_body(body)
    return events


def parse_body(body: bytes, **kwargs: Any) -> ParsedFeed:
    options: dict[str, Any] = {"feed_id": "hostile", "outlet": "Hostile", "fetched": FETCHED}
    options.update(kwargs)
    return parse_feed(body, **options)


def parse_file(name: str, **kwargs: Any) -> ParsedFeed:
    return parse_body((HOSTILE / name).read_bytes(), **kwargs)


def all_text(parsed: ParsedFeed) -> str:
    return "\n".join(f"{i.title}\n{i.text}\n{i.url}\n{i.guid}" for i in parsed.items) + (parsed.title or "")


# --- generators for the large cases ---------------------------------------------------------------------


def rss(items: str, head: str = "") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n' + head + '<rss version="2.0"><channel>'
        "<title>Generated</title><link>https://example.org/</link><description>x</description>\n"
        + items
        + "</channel></rss>\n"
    ).encode()


def item(i: int, *, title: str | None = None, desc: str = "body", date: str | None = None) -> str:
    pub = f"<pubDate>{date}</pubDate>" if date else ""
    return (
        f"<item><title>{f'Item {i}' if title is None else title}</title>"
        f"<link>https://example.org/item/{i}</link><guid>urn:gen:{i}</guid>{pub}"
        f"<description>{desc}</description></item>\n"
    )


# --- DTDs and entities: refused before parsing, nothing expanded, read or fetched ----------------------


def test_billion_laughs_is_refused_without_expansion() -> None:
    with pytest.raises(UnsafeFeedError, match="entity declarations"):
        parse_file("01_billion_laughs.xml")


def test_billion_laughs_on_one_line_is_refused() -> None:
    with pytest.raises(UnsafeFeedError):
        parse_file("01b_billion_laughs_oneline.xml")


def test_quadratic_blowup_entity_is_refused() -> None:
    with pytest.raises(UnsafeFeedError):
        parse_file("02_quadratic_blowup.xml")


def test_quadratic_blowup_below_the_expat_threshold_is_refused() -> None:
    with pytest.raises(UnsafeFeedError):
        parse_file("02b_quadratic_small.xml")


def test_xxe_file_entity_is_refused_without_opening_the_file() -> None:
    assert refuse_without_io("03_xxe_file.xml", UnsafeFeedError) == []


def test_xxe_http_entity_is_refused_without_a_connection() -> None:
    assert refuse_without_io("04_xxe_http.xml", UnsafeFeedError) == []


def test_external_dtd_is_refused_without_a_connection() -> None:
    assert refuse_without_io("05_dtd_fetch.xml", UnsafeFeedError, "external DTD") == []


def test_parameter_entity_dtd_is_refused() -> None:
    assert refuse_without_io("05b_dtd_param_entity.xml", UnsafeFeedError) == []


def test_external_dtd_by_local_path_is_refused_without_opening_it() -> None:
    assert refuse_without_io("35_dtd_local_path.xml", UnsafeFeedError, "external DTD") == []


def test_external_dtd_by_file_url_is_refused() -> None:
    assert refuse_without_io("35b_dtd_file_url.xml", UnsafeFeedError) == []


def test_doctype_entity_with_backslashes_is_refused_not_crashing() -> None:
    with pytest.raises(UnsafeFeedError):
        parse_file("33_doctype_backslash.xml")


def test_doctype_in_utf16_is_refused_too() -> None:
    body = (HOSTILE / "01_billion_laughs.xml").read_text("utf-8").replace('encoding="utf-8"', 'encoding="utf-16"')
    with pytest.raises(UnsafeFeedError):
        parse_body(body.encode("utf-16"))


def test_doctype_after_a_comment_is_refused() -> None:
    body = (HOSTILE / "03_xxe_file.xml").read_bytes().replace(b"<!DOCTYPE", b"<!-- <rss> -->\n<!DOCTYPE")
    with pytest.raises(UnsafeFeedError):
        parse_body(body)


def test_entity_declared_after_the_root_element_is_never_expanded() -> None:
    body = (
        b'<?xml version="1.0"?><rss version="2.0"><!DOCTYPE x [<!ENTITY a "EXPANDED">]><channel>'
        b"<title>t</title><item><title>x &a;</title><guid>g</guid></item></channel></rss>"
    )
    assert "EXPANDED" not in all_text(parse_body(body))


def test_unsafe_feed_error_carries_the_feed_id() -> None:
    with pytest.raises(UnsafeFeedError) as caught:
        parse_file("01_billion_laughs.xml")
    assert (caught.value.feed_id, caught.value.kind) == ("hostile", "unsafe_feed")


def test_body_that_is_a_file_path_is_not_opened() -> None:
    assert refuse_without_io("24_body_is_a_path.txt", NotAFeedError, "plain text") == []


# --- not a feed ---------------------------------------------------------------------------------------


def test_html_page_is_not_a_feed_and_names_the_advertised_feed() -> None:
    with pytest.raises(NotAFeedError, match=r"HTML page.*/feed\.xml"):
        parse_file("11_html_page.html")


def test_empty_body_is_not_a_feed() -> None:
    with pytest.raises(NotAFeedError, match="empty"):
        parse_file("12_empty.xml")


def test_whitespace_only_body_is_not_a_feed() -> None:
    with pytest.raises(NotAFeedError, match="whitespace"):
        parse_file("12b_whitespace_only.xml")


def test_binary_garbage_is_not_a_feed() -> None:
    garbage = b"\x89PNG\r\n\x1a\n" + random.Random(26).randbytes(64 * 1024)
    with pytest.raises(NotAFeedError, match="binary"):
        parse_body(garbage)


def test_undecoded_gzip_bomb_is_not_a_feed_and_is_not_decompressed(tmp_path: Path) -> None:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunks = [compressor.compress(b'<?xml version="1.0"?><rss version="2.0"><channel><description>')]
    chunks += [compressor.compress(b" " * (1 << 20)) for _ in range(64)]  # 64 MiB of spaces
    bomb = tmp_path / "bomb.xml.gz"
    bomb.write_bytes(b"".join(chunks) + compressor.flush())
    with pytest.raises(NotAFeedError, match="gzip"):
        parse_body(bomb.read_bytes())


def test_unknown_root_element_is_not_a_feed_and_names_it() -> None:
    with pytest.raises(NotAFeedError, match="<foo>"):
        parse_file("30_unknown_root.xml")


# --- broken XML -------------------------------------------------------------------------------------------


def test_truncated_feed_keeps_the_complete_entries() -> None:
    assert [item.guid for item in parse_file("13_truncated.xml").items] == [f"urn:test:{i}" for i in range(5)]


def test_truncated_feed_reports_the_truncation() -> None:
    assert any("truncated" in warning for warning in parse_file("13_truncated.xml").warnings)


def test_feed_truncated_before_any_entry_is_a_parse_error() -> None:
    body = (HOSTILE / "00_valid_baseline.xml").read_bytes()
    with pytest.raises(ParseError, match="no complete entry"):
        parse_body(body[: body.index(b"<item>") + 20])


def test_invalid_character_references_are_dropped() -> None:
    assert parse_file("28_bad_char_refs.xml").items[0].title == "nul surrogate ffff big"


def test_georss_with_a_non_numeric_srs_code_parses() -> None:
    assert [item.title for item in parse_file("34_georss_bad_srsname.xml").items] == ["x"]


# --- encodings -----------------------------------------------------------------------------------------------

CYRILLIC = "Новости дня: тестовая лента"


def test_invalid_utf8_bytes_become_replacement_characters() -> None:
    title = parse_file("08_invalid_utf8.xml").items[0].title
    assert title.startswith("bad \ufffd") and title.endswith(" bytes")


def test_cp1251_bytes_declared_utf8_are_read_as_cp1251() -> None:
    assert parse_file("09_cp1251_declared_utf8.xml").items[0].title == CYRILLIC


def test_cp1251_bytes_with_an_http_charset_are_read_with_it() -> None:
    parsed = parse_file("09_cp1251_declared_utf8.xml", headers={"Content-Type": "text/xml; charset=windows-1251"})
    assert parsed.items[0].title == CYRILLIC


def test_utf8_bytes_declared_cp1251_are_read_as_utf8() -> None:
    assert parse_file("10_utf8_declared_cp1251.xml").items[0].title == CYRILLIC


def test_utf8_bytes_with_a_wrong_http_charset_are_read_as_utf8() -> None:
    parsed = parse_file("10_utf8_declared_cp1251.xml", headers={"content-type": "application/rss+xml; charset=koi8-r"})
    assert parsed.items[0].title == CYRILLIC


def test_http_charset_wins_over_the_xml_declaration() -> None:
    body = rss(item(1, title="Café crème")).replace(b'encoding="utf-8"', b'encoding="windows-1251"')
    latin = body.decode("utf-8").encode("cp1252")
    parsed = parse_body(latin, headers={"Content-Type": "application/xml; charset=windows-1252"})
    assert parsed.items[0].title == "Café crème"


def _cyrillic_cp1251(declared: str) -> bytes:
    body = rss(item(1, title=CYRILLIC, desc="Київ: у місті відновили рух тролейбусів після обстрілу."))
    return body.replace(b'encoding="utf-8"', f'encoding="{declared}"'.encode()).decode("utf-8").encode("cp1251")


def test_cp1251_bytes_behind_a_latin1_http_charset_are_read_as_the_document_declares() -> None:
    """Found by QA: Apache's default ``charset=ISO-8859-1`` over a Ukrainian feed that declares windows-1251
    gave mojibake, since every byte decodes as Latin-1."""
    parsed = parse_body(_cyrillic_cp1251("windows-1251"), headers={"Content-Type": "text/xml; charset=ISO-8859-1"})
    assert parsed.items[0].title == CYRILLIC
    assert parsed.items[0].text.startswith("Київ")
    assert "declared cp1252 over HTTP but cp1251 in the document; read as cp1251" in parsed.warnings


def test_cp1251_bytes_declared_latin1_are_read_as_cp1251() -> None:
    parsed = parse_body(_cyrillic_cp1251("iso-8859-1"))
    assert parsed.items[0].title == CYRILLIC
    assert "declared cp1252 but the bytes look like cp1251" in parsed.warnings


def test_latin1_text_declared_latin1_stays_latin1() -> None:
    body = rss(item(1, title="Zoë à l'Élysée: über Straße")).replace(b'encoding="utf-8"', b'encoding="iso-8859-1"')
    parsed = parse_body(body.decode("utf-8").encode("latin-1"))
    assert parsed.items[0].title == "Zoë à l'Élysée: über Straße"
    assert parsed.warnings == []


def test_utf16_with_bom_is_parsed() -> None:
    assert parse_file("27_utf16_bom.xml").items[0].title == "utf16 Ω"


@pytest.mark.parametrize("where", ["header", "declaration"])
def test_a_charset_label_that_decodes_nothing_falls_back_to_the_bytes(where: str) -> None:
    # Python's "undefined" codec raises a bare UnicodeError on every input.
    body = rss(item(1, title="Café")).decode().encode("cp1252")
    if where == "declaration":
        parsed = parse_body(body.replace(b'encoding="utf-8"', b'encoding="undefined"'))
    else:
        headers = {"Content-Type": "text/xml; charset=undefined"}
        parsed = parse_body(body.replace(b' encoding="utf-8"', b""), headers=headers)
    assert [i.title for i in parsed.items] == ["Café"]


# --- numbers written with other digits ----------------------------------------------------------------------
# str.isdigit() accepts '²' and '①', which int() refuses, and int() refuses over 4,300 digits.


@pytest.mark.parametrize("ttl", ["²", "①", "9" * 5000])
def test_a_ttl_that_is_not_plain_digits_is_ignored_and_the_items_kept(ttl: str) -> None:
    parsed = parse_body(rss(f"<ttl>{ttl}</ttl>" + item(1)))
    assert parsed.ttl_seconds is None and [i.title for i in parsed.items] == ["Item 1"]


@pytest.mark.parametrize("version", ["²", "1" * 5000, -3, True, "2.5"])
def test_a_wire_version_that_is_not_a_plain_count_is_unknown_and_the_item_kept(version: object) -> None:
    body = json.dumps({"uri": "urn:wire:1", "headline": "Port hit overnight", "version": version}).encode()
    parsed = parse_body(body, headers={"Content-Type": "application/json"})
    assert [(i.title, i.version) for i in parsed.items] == [("Port hit overnight", None)]


def test_a_wire_version_in_plain_digits_is_read() -> None:
    body = json.dumps({"uri": "urn:wire:1", "headline": "Port hit overnight", "version": "3"}).encode()
    assert [i.version for i in parse_body(body).items] == [3]


# --- identity, duplicates, dates -------------------------------------------------------------------------


def test_entries_without_guid_link_or_title_get_stable_ids() -> None:
    first, second = parse_file("14_no_guid_link_title.xml").items, parse_file("14_no_guid_link_title.xml").items
    assert [i.id for i in first] == [i.id for i in second]
    assert len({i.id for i in first}) == len(first) == 2


def test_entries_with_no_title_and_no_text_are_skipped() -> None:
    assert [(i.title, i.text) for i in parse_file("14_no_guid_link_title.xml").items] == [
        ("", "only a description"),
        ("title only", ""),
    ]


def test_a_guid_shared_by_entries_of_different_links_is_no_identity() -> None:
    """Found by QA: a CMS giving every entry one guid kept the first entry, and made each later one an update
    of its story. Entries sharing a guid but not their link are known by their link."""
    parsed = parse_file("15_duplicate_guids.xml")
    assert [(i.guid, i.url, i.title) for i in parsed.items] == [
        (None, "https://example.org/item/1", "first"),
        (None, "https://example.org/item/2", "second"),
        (None, "https://example.org/item/3", "third"),
        ("urn:dup:2", "https://example.org/same", "fourth"),
        ("urn:dup:3", "https://example.org/same", "fifth"),
    ]
    assert len({i.id for i in parsed.items}) == 5
    assert "3 entries share a guid with entries of other links ('urn:dup:1'): each is known by its link instead" \
        in parsed.warnings


def test_an_entry_repeated_with_its_guid_and_link_gives_one_item_the_first_in_the_document() -> None:
    twice = item(1, title="first") + item(1, title="first, edited")
    items = parse_body(rss(twice)).items
    assert [(i.guid, i.title) for i in items] == [("urn:gen:1", "first")]


def test_far_future_dates_become_unknown() -> None:
    items = parse_file("16_dates.xml").items
    far = ("Fri, 31 Dec 9999 23:59:59 GMT", "Sat, 01 Jan 2100 00:00:00 GMT")
    assert [i.published for i in items if i.title in [f"date {d!r}" for d in far]] == [None, None]


def test_dates_before_1990_become_unknown() -> None:
    items = parse_file("16_dates.xml").items
    assert [i.published for i in items if any(y in i.title for y in ("0001", "1899", "1970"))] == [None] * 3


def test_unparsable_and_out_of_range_dates_become_unknown() -> None:
    items = {i.title: i.published for i in parse_file("16_dates.xml").items}
    for raw in (
        "yesterday",
        "32/13/2020",
        "Mon, 30 Feb 2025 10:00:00 GMT",
        "Mon, 06 Jan 2025 25:61:61 GMT",
        "Mon, 06 Jan 2025 10:00:00 +9999",
        "2025-01-06T10:00:00+25:00",
        "2025-13-45T99:99:99Z",
    ):
        assert items[f"date {raw!r}"] is None, raw


def test_date_a_few_hours_ahead_is_clamped_to_the_fetch_time() -> None:
    soon = (FETCHED + timedelta(hours=3)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_body(rss(item(1, date=soon))).items[0].published == FETCHED


# --- markup, links, control characters --------------------------------------------------------------------


def test_script_and_event_handlers_never_reach_item_text() -> None:
    text = all_text(parse_file("18_xss_html.xml")).lower()
    for marker in ("<script", "alert(", "onerror", "onload", "<iframe", "<svg", "<form", "<", "javascript:"):
        assert marker not in text, marker


def test_escaped_script_title_with_no_text_is_skipped() -> None:
    assert "urn:xss:ce" not in [item.guid for item in parse_file("18_xss_html.xml").items]


def test_javascript_data_and_file_links_are_dropped() -> None:
    urls = [item.url for item in parse_file("19_js_data_links.xml").items]
    assert urls[:6] == [None] * 6


def test_links_to_loopback_and_link_local_addresses_are_dropped() -> None:
    urls = [item.url for item in parse_file("19_js_data_links.xml").items]
    assert urls[6:8] == [None, None]


def test_credentials_in_links_are_removed() -> None:
    assert parse_file("19_js_data_links.xml").items[9].url == "https://example.org/creds-in-url"


def test_loopback_xml_base_does_not_produce_a_loopback_link() -> None:
    urls = {item.guid: item.url for item in parse_file("23_atom_xml_base.xml").items}
    assert urls["urn:a:4"] is None


def test_javascript_xml_base_is_ignored() -> None:
    urls = {item.guid: item.url for item in parse_file("23_atom_xml_base.xml").items}
    assert urls["urn:a:3"] == "https://example.org/blog/3.html"


def test_control_characters_and_terminal_escapes_are_removed() -> None:
    parsed = parse_file("25_control_chars.xml")
    assert (parsed.items[0].title, parsed.items[0].text) == ("ctl", "nulbyte")


# --- size and shape ------------------------------------------------------------------------------------------


def test_huge_entry_text_is_bounded(tmp_path: Path) -> None:
    html = '<p>para <b>bold</b> <a href="/rel">link</a> text ' + "x" * 60 + "</p>\n"
    path = tmp_path / "huge_entry.xml"
    path.write_bytes(rss(item(1, desc="<![CDATA[" + html * (5 * 1024 * 1024 // len(html)) + "]]>")))
    assert 0 < len(parse_body(path.read_bytes(), max_text_chars=20_000).items[0].text) <= 20_000


def test_huge_title_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "huge_title.xml"
    path.write_bytes(rss(item(1, title="T" * (1 << 20))))
    assert len(parse_body(path.read_bytes()).items[0].title) == TITLE_MAX_CHARS


def test_ten_thousand_entries_keep_max_entries(tmp_path: Path) -> None:
    path = tmp_path / "entries_10000.xml"
    path.write_bytes(rss("".join(item(i) for i in range(10_000))))
    parsed = parse_body(path.read_bytes(), max_entries=500)
    assert len(parsed.items) == 500
    assert any("not parsed" in warning for warning in parsed.warnings)


def test_max_entries_keeps_the_newest_of_an_oldest_first_feed(tmp_path: Path) -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    dates = [(start + timedelta(hours=i)).strftime("%a, %d %b %Y %H:%M:%S GMT") for i in range(3000)]
    path = tmp_path / "oldest_first.xml"
    path.write_bytes(rss("".join(item(i, date=dates[i]) for i in range(3000))))
    items = parse_body(path.read_bytes(), max_entries=100).items
    assert [item.guid for item in items] == [f"urn:gen:{i}" for i in range(2900, 3000)]


def test_max_entries_keeps_the_newest_of_an_oldest_first_json_feed() -> None:
    """Found by QA: a JSON Feed was cut to its first ``2 * max_entries`` entries, so an oldest-first one lost
    its newest; it now keeps the first and last, as XML does, and says what it left out."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    doc = {"version": "https://jsonfeed.org/version/1.1", "title": "J", "items": [
        {"id": f"j{i}", "url": f"https://example.org/{i}", "title": f"Item {i}", "content_text": "x",
         "date_published": (start + timedelta(hours=i)).isoformat()} for i in range(1200)]}
    parsed = parse_body(json.dumps(doc).encode(), max_entries=100)
    assert [item.guid for item in parsed.items] == [f"j{i}" for i in range(1100, 1200)]
    assert parsed.warnings == ["1000 entries in the middle of the document were not parsed",
                               "100 entries were left out: polling.max_entries keeps the 100 newest"]


def test_without_dates_max_entries_keeps_document_order(tmp_path: Path) -> None:
    items = parse_body(rss("".join(item(i) for i in range(50))), max_entries=10).items
    assert [item.guid for item in items] == [f"urn:gen:{i}" for i in range(10)]


def test_deeply_nested_elements_do_not_crash(tmp_path: Path) -> None:
    depth = 100_000
    path = tmp_path / "deep.xml"
    path.write_bytes(
        rss("<item><title>deep</title><guid>urn:deep</guid>" + "<x>" * depth + "y" + "</x>" * depth + "</item>\n")
    )
    assert [item.title for item in parse_body(path.read_bytes()).items] == ["deep"]


def test_deeply_nested_html_in_a_description_does_not_crash(tmp_path: Path) -> None:
    path = tmp_path / "deep_html.xml"
    path.write_bytes(rss(item(1, desc="<![CDATA[" + "<div>" * 50_000 + "y" + "</div>" * 50_000 + "]]>")))
    assert parse_body(path.read_bytes(), max_text_chars=20_000).items[0].text == "y"
    # With the default limit the "y" lies past the HTML read (16 times the text kept): no text, and no "<"
    # of a tag cut in two either.
    assert parse_body(path.read_bytes()).items[0].text == ""


def test_deeply_nested_json_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="not valid JSON"):
        parse_body(
            b'{"version": "https://jsonfeed.org/version/1.1", "items": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        )


@pytest.mark.timeout(60)
def test_an_entry_with_100000_categories_parses(tmp_path: Path) -> None:
    path = tmp_path / "field_explosion.xml"
    path.write_bytes(
        rss(
            "<item><title>many</title><guid>urn:many</guid>"
            + "".join(f"<category>c{i}</category>" for i in range(100_000))
            + "".join(
                f'<enclosure url="https://example.org/e{i}.mp3" type="audio/mpeg" length="1"/>' for i in range(10_000)
            )
            + "</item>\n"
        )
    )
    assert [item.title for item in parse_body(path.read_bytes()).items] == ["many"]


def test_namespace_flood_parses(tmp_path: Path) -> None:
    declarations = " ".join(f'xmlns:n{i}="urn:n{i}"' for i in range(20_000))
    body = rss(f"<item {declarations}><title>ns</title><guid>urn:ns</guid></item>\n")
    assert [item.title for item in parse_body(body).items] == ["ns"]


@pytest.mark.timeout(60)
def test_fifty_megabyte_feed_parses_within_the_entry_cap(tmp_path: Path) -> None:
    paragraph = ("<p>" + "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 17 + "</p>") * 10
    escaped = paragraph.replace("<", "&lt;").replace(">", "&gt;")
    path = tmp_path / "big_50mb.xml"
    with path.open("wb") as out:
        out.write(rss("")[: -len(b"</channel></rss>\n")])
        i = 0
        while out.tell() < 50 * 1024 * 1024:
            out.write(item(i, desc=escaped).encode())
            i += 1
        out.write(b"</channel></rss>\n")
    parsed = parse_body(path.read_bytes(), max_entries=500, max_text_chars=2_000)
    assert len(parsed.items) == 500
    assert max(len(item.text) for item in parsed.items) <= 2_000


def test_json_feed_from_the_corpus_is_parsed() -> None:
    assert [item.title for item in parse_file("22_json_feed.json").items] == ["J 0", "J 1", "J 2"]
