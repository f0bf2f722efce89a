"""The fast RSS/Atom reader (``feeds.fastxml``) against feedparser, the parser of record (issue 6).

Every XML fixture is parsed with the fast path and with feedparser forced, and the two ``ParsedFeed``s must
be identical (or both parses fail with the same error); where the fast reader accepts a document, the
values it hands to ``feeds.parse`` must also equal feedparser's handler values key by key, so a difference
cannot hide behind ``html_to_text``. ``tests/fixtures/fastxml/`` holds hand-written traps; the files named
``refused_*`` hold what the fast reader must leave to feedparser. No timing assertions here.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape
from pathlib import Path
from typing import Any

import pytest

import feeds.parse
from feeds.fastxml import FastFeed, read_plain_feed
from feeds.guard import prepare_body, xml_bytes
from feeds.parse import ParsedFeed, _handler_base, _run_feedparser, parse_feed

FIXTURES = Path(__file__).parent / "fixtures"
FETCHED = datetime(2025, 3, 5, 12, 0, tzinfo=UTC)
BASE = "https://base.example.com/feeds/news.xml"
XML_FIXTURES = sorted(
    f"{path.parent.name}/{path.name}"
    for folder in ("feeds", "hostile", "pipeline", "fastxml")
    for path in (FIXTURES / folder).iterdir()
    if path.suffix not in (".json", ".md")
)
TAKEN = [
    "feeds/rss20.xml",
    "feeds/rss20_empty.xml",
    "hostile/00_valid_baseline.xml",
    "pipeline/wire-a.xml",
    "pipeline/paper-b.atom",
] + [name for name in XML_FIXTURES if name.startswith("fastxml/rss_") or name.startswith("fastxml/atom_")]
REFUSED = [
    "feeds/rss091.xml",
    "feeds/rss092.xml",
    "feeds/rss10.xml",
    "feeds/atom10.xml",
    "hostile/13_truncated.xml",
    "hostile/23_atom_xml_base.xml",
] + [name for name in XML_FIXTURES if name.startswith("fastxml/refused_")]
ENTRY_KEYS = ("id", "link", "title", "summary", "published", "published_parsed", "updated", "updated_parsed")


def outcome(body: bytes, fast_path: bool, base_url: str | None = None) -> ParsedFeed | str:
    """The parsed feed, or the name of the error the parse raised."""
    try:
        return parse_feed(body, feed_id="fx", outlet="Fx", fetched=FETCHED, base_url=base_url, fast_path=fast_path)
    except Exception as exc:
        return type(exc).__name__


def prepared(body: bytes) -> tuple[bytes, str]:
    text = prepare_body(body, "fx").text
    return xml_bytes(text), text


def fast(body: bytes, base_url: str | None = None) -> FastFeed | None:
    return read_plain_feed(prepared(body)[0], _handler_base(base_url))


def handler_values(handler: Any) -> tuple[Any, ...]:
    """What ``feeds.parse`` reads from a handler, as plain values."""
    entries = []
    for entry in handler.entries:
        values = {key: dict.get(entry, key) for key in ENTRY_KEYS}
        content = dict.get(entry, "content")
        values["content"] = None if content is None else [dict.get(part, "value") for part in content]
        entries.append(values)
    feed = handler.feeddata
    links = [(link.get("rel"), link.get("href")) for link in dict.get(feed, "links") or []]
    return handler.version, dict.get(feed, "title"), dict.get(feed, "ttl"), links, entries


def assert_same_handler_values(body: bytes, base_url: str | None = None) -> None:
    data, text = prepared(body)
    ours = read_plain_feed(data, _handler_base(base_url))
    assert ours is not None
    theirs, syntax_error = _run_feedparser(data, text, base_url, None, "fx")
    assert syntax_error is None
    assert handler_values(ours) == handler_values(theirs)


@pytest.mark.parametrize("base_url", [None, BASE])
@pytest.mark.parametrize("name", XML_FIXTURES)
def test_fast_path_and_feedparser_give_the_same_parsed_feed(name: str, base_url: str | None) -> None:
    body = (FIXTURES / name).read_bytes()
    assert outcome(body, fast_path=True, base_url=base_url) == outcome(body, fast_path=False, base_url=base_url)


@pytest.mark.parametrize("base_url", [None, BASE, "javascript:alert(1)", "feed.xml"])
@pytest.mark.parametrize("name", TAKEN)
def test_fast_reader_gives_feedparsers_values_for_every_key_that_is_read(name: str, base_url: str | None) -> None:
    assert_same_handler_values((FIXTURES / name).read_bytes(), base_url)


@pytest.mark.parametrize("name", TAKEN)
def test_fast_path_is_taken_for_plain_rss_and_atom(name: str) -> None:
    result = fast((FIXTURES / name).read_bytes())
    assert result is not None and result.version in ("rss20", "atom10")


@pytest.mark.parametrize("name", REFUSED)
def test_fast_reader_leaves_what_it_does_not_reproduce_to_feedparser(name: str) -> None:
    assert fast((FIXTURES / name).read_bytes()) is None


def test_fast_path_false_never_calls_the_fast_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bytes] = []

    def recording(data: bytes, baseuri: str) -> FastFeed | None:
        calls.append(data)
        return read_plain_feed(data, baseuri)

    monkeypatch.setattr(feeds.parse, "read_plain_feed", recording)
    body = (FIXTURES / "feeds" / "rss20.xml").read_bytes()
    outcome(body, fast_path=False)
    assert calls == []
    outcome(body, fast_path=True)
    assert len(calls) == 1


@pytest.mark.parametrize("name", TAKEN)
def test_cut_off_documents_are_refused_not_misread(name: str) -> None:
    body = (FIXTURES / name).read_bytes()
    for cut in (len(body) // 3, len(body) // 2, len(body) - 12):
        assert fast(body[:cut]) is None


# --- generated documents ------------------------------------------------------------------------------

_WORDS = "tram harbour budget river bridge school clinic ferry mayor market rail port festival museum".split()


def benchmark_like_feed(rng: random.Random, entries: int = 50, desc_chars: int = 600) -> bytes:
    """RSS 2.0 shaped like the benchmarks' FeedFactory: escaped HTML descriptions of ~600 characters."""

    def sentence() -> str:
        return " ".join(rng.choices(_WORDS, k=rng.randint(7, 14))).capitalize()

    items = []
    for n in range(entries):
        title = sentence()
        parts = [f"<p><strong>{escape(title)}</strong></p>"]
        while sum(map(len, parts)) < desc_chars:
            parts.append(
                f'<p>{escape(sentence())}. <a href="https://example.org/r/{rng.randrange(10**6)}">More</a></p>'
            )
        description = "".join(parts)[:desc_chars].rsplit("<", 1)[0]
        when = datetime(2024, 5, 1, tzinfo=UTC) - timedelta(minutes=n)
        items.append(
            f"<item><title>{escape(title)}</title><link>https://news.example.org/f1-n{n}</link>"
            f'<guid isPermaLink="false">f1-n{n}</guid><pubDate>{format_datetime(when)}</pubDate>'
            f"<description>{escape(description)}</description></item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel><title>Outlet 1</title>'
        "<link>https://news.example.org/</link><description>Bench feed 1</description>"
        + "".join(items)
        + "</channel></rss>"
    ).encode()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_benchmark_like_feeds_read_the_same_both_ways(seed: int) -> None:
    body = benchmark_like_feed(random.Random(seed))
    result = fast(body)
    assert result is not None and len(result.entries) == 50
    assert_same_handler_values(body)
    parsed = outcome(body, fast_path=True)
    assert isinstance(parsed, ParsedFeed) and len(parsed.items) == 50
    assert parsed == outcome(body, fast_path=False)


_TEXTS = [
    "A headline",
    "  padded \n ",
    "",
    "Café — «ok» 東京",
    "CafÃ© mis-decoded",
    "&lt;b&gt;x&lt;/b&gt; &amp;amp;",
    "<![CDATA[<p>cdata <a href='/r'>a</a></p>]]>",
    "&#x93;cp1252&#x94; &#128;",
    "\u00a0nbsp\u00a0",
    "x &amp; y",
]
_LINKS = [
    "https://a.example.org/p?x=1&amp;y=2",
    "/rel/path",
    "rel",
    "",
    " https://a.example.org/s ",
    "urn:x:1",
    "https://a.example.org/&amp;amp;z",
    "http:///three",
    "javascript:alert(1)",
]
_DATES = ["Tue, 04 Mar 2025 08:15:00 GMT", "2025-03-04T09:30:00+01:00", "2025-03-04", "garbage", "", "99999999999"]


def _text_element(rng: random.Random, tag: str) -> str:
    kind = rng.choice(["", "", "", ' type="text"', ' type="html"', ' type="TEXT"'])
    if rng.random() < 0.05:
        kind = rng.choice([' type="xhtml"', ' type="image/png"'])  # refused: markup, base64
    return f"<{tag}{kind}>{rng.choice(_TEXTS)}</{tag}>" if rng.random() < 0.9 else f"<{tag}{kind}/>"


_OTHER = [
    "<category>c</category>",
    "<author><name>n</name></author>",
    "<author>a@example.org</author>",
    '<media:thumbnail url="/t.jpg"/>',
    "<media:title>m</media:title>",
    "<source>s</source>",
    "<foo:bar>b</foo:bar>",
    "<!-- comment -->",
]


def _random_entry(rng: random.Random, atom: bool) -> str:
    def part() -> str:
        pick = rng.randrange(8)
        if pick == 0:
            return _text_element(rng, "title")
        if pick == 1:
            return _text_element(rng, "summary" if atom else rng.choice(["description", "content:encoded"]))
        if pick == 2:
            return _text_element(rng, "content" if atom else "atom:summary")
        if pick == 3:
            tag, permalink = ("id", "") if atom else ("guid", rng.choice(["", ' isPermaLink="false"']))
            return f"<{tag}{permalink}>{rng.choice(_LINKS)}</{tag}>"
        if pick == 4:
            return f"<link>{rng.choice(_LINKS)}</link>"
        if pick == 5:
            rel = rng.choice(["alternate", "self", "related"])
            return f'<{"link" if atom else "atom:link"} rel="{rel}" href="{rng.choice(_LINKS)}"/>'
        if pick == 6:
            tag = rng.choice(["published", "updated"] if atom else ["pubDate", "dc:date"])
            return f"<{tag}>{rng.choice(_DATES)}</{tag}>"
        return rng.choice(_OTHER)

    tag = "entry" if atom else "item"
    return f"<{tag}>{''.join(part() for _ in range(rng.randint(1, 7)))}</{tag}>"


def random_trap_document(rng: random.Random) -> bytes:
    """A small RSS 2.0 or Atom 1.0 document mixing the traps: repeated, empty and typed elements."""
    atom = rng.random() < 0.4
    namespaces = (
        'xmlns:media="http://search.yahoo.com/mrss/" xmlns:foo="urn:foo" xmlns:dc="http://purl.org/dc/elements/1.1/"'
    )
    head = [_text_element(rng, "title"), '<link rel="hub" href="/hub"/>' if atom else "<ttl>15</ttl>"]
    body = head[: rng.randint(0, 2)] + [_random_entry(rng, atom) for _ in range(rng.randint(1, 4))]
    if rng.random() < 0.2:
        body.append(_text_element(rng, "title"))
    if atom:
        return f'<feed xmlns="http://www.w3.org/2005/Atom" {namespaces}>{"".join(body)}</feed>'.encode()
    return (
        f'<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom" '
        f'xmlns:content="http://purl.org/rss/1.0/modules/content/" {namespaces}>'
        f"<channel>{''.join(body)}</channel></rss>"
    ).encode()


def test_random_mixes_of_the_traps_read_the_same_both_ways() -> None:
    rng = random.Random(6)
    taken = 0
    for _ in range(300):
        body = random_trap_document(rng)
        base_url = rng.choice([None, BASE])
        if fast(body, base_url) is not None:
            taken += 1
            assert_same_handler_values(body, base_url)
        assert outcome(body, True, base_url) == outcome(body, False, base_url), body
    assert taken >= 100  # the key-by-key check above ran often enough to mean something
