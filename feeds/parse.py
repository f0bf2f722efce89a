"""Feed bytes to ``Item``s: RSS 0.9x/1.0/2.0 and Atom through feedparser's parsers, JSON Feed directly.

The body is checked and decoded by ``feeds.guard`` first (no DTD, no entity, a known encoding), then
handed to feedparser's strict (expat) parser, or its lenient one when the XML is broken. We drive those
two parsers ourselves instead of calling ``feedparser.parse``, because ``parse`` opens its argument as a
file or URL when it can, re-detects the encoding we already settled, and spends quadratic time on
entries with thousands of categories; tags are not used here, so they are not collected. Plain RSS 2.0
and Atom 1.0 go to ``feeds.fastxml`` first, a reader several times faster that gives feedparser's values
or declines the document (issue 6: feedparser stays the parser of record).

Limits, so that one hostile document costs bounded time and memory:

- at most ``2 * max_entries`` entries are read (the first and last ``max_entries`` in the document, so
  both newest-first and oldest-first feeds keep their newest entries); of those, the
  ``max_entries`` newest by date are kept (document order when there are no dates), returned in
  document order;
- titles are cut to ``TITLE_MAX_CHARS``, entry text to ``max_text_chars``, guids to ``GUID_MAX_CHARS``;
- dates before ``OLDEST_DATE`` or that do not parse become ``None``; dates up to ``FUTURE_SKEW`` ahead of
  the fetch time become the fetch time (clock skew), later ones ``None`` (a date in 9999 is a lie, and
  treating it as "now" would pin the entry to the top of every sort).

An entry is known by its guid, else its link, else its title (``item_id``); entries of one document that
share a guid but not their link are known by their link (``_tell_apart_shared_guids``). What was repaired
on the way is listed in ``ParsedFeed.warnings``, which the poller logs and shows in ``livebrief feeds``.

The poller runs ``parse_feed`` in a process pool with a deadline; this module only has to stay linear.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import xml.sax
import xml.sax.handler
import xml.sax.xmlreader
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from io import BytesIO
from typing import Any
from urllib.parse import urlsplit

from feedparser.api import LooseFeedParser, StrictFeedParser
from feedparser.urls import make_safe_absolute_uri
from pydantic import BaseModel, Field

from feeds.fastxml import read_plain_feed
from feeds.guard import PreparedBody, prepare_body, xml_bytes
from feeds.text import clean_text, html_to_text, plain_text
from livebrief.config import MAX_TEXT_CHARS
from livebrief.errors import NotAFeedError, ParseError
from livebrief.models import Item
from livebrief.numbers import ascii_int
from livebrief.urls import clean_url

TITLE_MAX_CHARS = 1000
GUID_MAX_CHARS = 2048
OLDEST_DATE = datetime(1990, 1, 1, tzinfo=UTC)
FUTURE_SKEW = timedelta(days=1)
_TTL_MAX_MINUTES = 366 * 24 * 60


class ParsedFeed(BaseModel):
    format: str
    title: str | None = None
    items: list[Item]
    ttl_seconds: int | None = None
    hub: str | None = None
    cursor: str | None = Field(
        default=None, description="wire paging: where the next request continues (newest versioncreated)"
    )
    warnings: list[str] = Field(
        default_factory=list, description="what was repaired: encoding guessed, junk skipped, entries cut"
    )


def item_id(feed_id: str, guid: str | None, link: str | None, title: str) -> str:
    basis = guid or link or title
    return hashlib.blake2b(f"{feed_id}\x00{basis}".encode(), digest_size=10).hexdigest()


def content_hash(title: str, text: str) -> str:
    return hashlib.blake2b(f"{title}\x00{text}".encode(), digest_size=8).hexdigest()


def parse_feed(
    body: bytes,
    *,
    feed_id: str,
    outlet: str,
    fetched: datetime,
    headers: Mapping[str, str] | None = None,
    base_url: str | None = None,
    max_entries: int = 500,
    max_text_chars: int = MAX_TEXT_CHARS,
    fast_path: bool = True,
) -> ParsedFeed:
    """Parse a fetched, decompressed body into at most ``max_entries`` items.

    ``headers`` are the response headers (``Content-Type`` charset, ``Content-Language``, ``Link`` hub);
    ``base_url`` resolves relative links. Plain RSS 2.0 and Atom 1.0 are read by ``feeds.fastxml`` unless
    ``fast_path`` is False (the result is the same; tests compare the two). Raises ``NotAFeedError``
    (empty, HTML, binary, unknown document), ``UnsafeFeedError`` (a DTD or entity declaration) or
    ``ParseError`` (broken beyond recovery), each carrying the feed id.
    """
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    prepared = prepare_body(body, feed_id, lowered.get("content-type"))
    limits = _Limits(feed_id, outlet, fetched, max_entries, max_text_chars)
    if prepared.kind == "json":
        parsed = _parse_json_feed(prepared.text, limits)
    else:
        parsed = _parse_xml_feed(prepared, limits, base_url, lowered.get("content-language"), fast_path)
    hub = _hub_from_link_header(lowered.get("link")) or parsed.hub
    return parsed.model_copy(update={"hub": hub, "warnings": prepared.warnings + parsed.warnings})


class _Limits:
    def __init__(self, feed_id: str, outlet: str, fetched: datetime, max_entries: int, max_text: int) -> None:
        self.feed_id = feed_id
        self.outlet = outlet
        self.fetched = fetched if fetched.tzinfo else fetched.replace(tzinfo=UTC)
        self.max_entries = max(1, max_entries)
        self.max_text = max_text


# --- RSS and Atom --------------------------------------------------------------------------------------


class _NoTagsMixin:
    """Overrides for feedparser's parser classes: skip what we do not use and what can blow up."""

    def _add_tag(self, term: Any, scheme: Any, label: Any) -> None:
        # Categories are not used, and feedparser de-duplicates them with a list scan: O(n^2) for one
        # entry with 100,000 <category> elements (minutes of CPU). The empty list is what it reads back.
        self._get_context().setdefault("tags", [])  # type: ignore[attr-defined]

    def _parse_srs_attrs(self, attrs_d: dict[str, str]) -> None:
        # GeoRSS is not used either; feedparser crashes on a non-numeric EPSG code in srsName.
        return None


class _StrictParser(_NoTagsMixin, StrictFeedParser):  # type: ignore[misc]
    pass


class _LooseParser(_NoTagsMixin, LooseFeedParser):  # type: ignore[misc]
    pass


_ENTRY_END = re.compile(r"</(?:[A-Za-z_][\w.-]*:)?(?:item|entry)\s*>")
_ENTRY_START = re.compile(r"<(?:[A-Za-z_][\w.-]*:)?(?:item|entry)[\s>/]")


def _middle_cut(count: int) -> str:
    return f"{count} entries in the middle of the document were not parsed"


def _keep_head_and_tail(text: str, cap: int) -> tuple[str, int]:
    """``text`` with only the first and last ``cap // 2`` entries, and how many were cut out."""
    if text.count("item>") + text.count("entry>") <= cap:  # counts every closing tag, so >= the entries
        return text, 0
    ends = [match.end() for match in _ENTRY_END.finditer(text)]
    if len(ends) <= cap:
        return text, 0
    head, tail = cap // 2, cap - cap // 2
    return text[: ends[head - 1]] + text[ends[len(ends) - tail - 1] :], len(ends) - cap


def _run_feedparser(
    data: bytes, text: str, base_url: str | None, lang: str | None, feed_id: str
) -> tuple[Any, Exception | None]:
    """feedparser's strict parser, or its lenient one on a syntax error; returns the handler and the error."""
    baseuri = _handler_base(base_url)
    strict = _StrictParser(baseuri, lang, "utf-8")
    strict.resolve_relative_uris = False  # content becomes plain text: links inside it are dropped anyway
    strict.sanitize_html = False  # html_to_text removes every tag
    reader = xml.sax.make_parser(["xml.sax.expatreader"])
    reader.setFeature(xml.sax.handler.feature_namespaces, True)
    reader.setFeature(xml.sax.handler.feature_external_ges, False)
    reader.setFeature(xml.sax.handler.feature_external_pes, False)
    reader.setContentHandler(strict)
    reader.setErrorHandler(strict)
    source = xml.sax.xmlreader.InputSource()
    source.setByteStream(BytesIO(data))
    try:
        reader.parse(source)
        return strict, None
    except xml.sax.SAXException as exc:
        syntax_error: Exception = strict.exc or exc
    except Exception as exc:  # feedparser has crash bugs on odd input; one feed's error, not the poller's
        raise ParseError(feed_id, f"the feed parser failed ({type(exc).__name__}: {exc})") from exc
    loose = _LooseParser(baseuri, lang, "utf-8", {})
    if "&#" in text:
        text = _INVALID_CHARREF.sub(_valid_charref, text)
    loose.resolve_relative_uris = False
    loose.sanitize_html = False
    try:
        loose.feed(text)
    except Exception as exc:
        raise ParseError(
            feed_id,
            f"the document is not well-formed ({syntax_error}) and the lenient "
            f"parser failed too ({type(exc).__name__}: {exc})",
        ) from exc
    return loose, syntax_error


def _handler_base(base_url: str | None) -> str:
    """The base URI feedparser's handler starts from (the fast reader starts from it too)."""
    return (make_safe_absolute_uri(base_url) if base_url else "") or ""


_INVALID_CHARREF = re.compile(r"&#(?:[xX]([0-9a-fA-F]{1,8})|([0-9]{1,10}));")


def _valid_charref(match: re.Match[str]) -> str:
    """A numeric character reference, kept only if it names a character XML allows (the lenient parser
    would otherwise produce NULs and lone surrogates, and crash on the latter)."""
    code = int(match.group(1), 16) if match.group(1) else int(match.group(2))
    allowed = (
        code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF
    )
    return match.group(0) if allowed else ""


def _last_entry_is_cut(text: str) -> bool:
    """Whether the document ends inside an entry (a body cut off mid-transfer)."""
    starts = list(_ENTRY_START.finditer(text, max(0, len(text) - (1 << 20))))
    if not starts:
        return False
    return _ENTRY_END.search(text, starts[-1].end()) is None


def _parse_xml_feed(
    prepared: PreparedBody, limits: _Limits, base_url: str | None, lang: str | None, fast_path: bool
) -> ParsedFeed:
    warnings: list[str] = []
    text, cut = _keep_head_and_tail(prepared.text, 2 * limits.max_entries)
    if cut:
        warnings.append(_middle_cut(cut))
    data = xml_bytes(text)
    # Same values as feedparser's handler, for plain RSS 2.0 and Atom 1.0 only; None means feedparser.
    handler: Any = read_plain_feed(data, _handler_base(base_url)) if fast_path else None
    syntax_error: Exception | None = None
    if handler is None:
        handler, syntax_error = _run_feedparser(data, text, base_url, lang, limits.feed_id)
    version = handler.version or ""
    if prepared.doctype_version and version.startswith("rss09"):
        version = prepared.doctype_version
    entries: list[Any] = handler.entries
    if syntax_error is not None:
        if entries and _last_entry_is_cut(text):
            entries = entries[:-1]
            warnings.append("the document is truncated: dropped the last, incomplete entry")
        if not entries:
            if not version:
                raise NotAFeedError(limits.feed_id, _not_a_feed_reason(prepared.root))
            raise ParseError(
                limits.feed_id,
                f"the document is not well-formed ({syntax_error}) and no complete entry could be recovered",
            )
        warnings.append(f"the document is not well-formed ({syntax_error}); kept what parsed")
    elif not version and not entries:
        raise NotAFeedError(limits.feed_id, _not_a_feed_reason(prepared.root))
    feed = handler.feeddata
    items = _select(_tell_apart_shared_guids(_xml_items(entries, limits), limits, warnings), limits, warnings)
    return ParsedFeed(
        format=version or "unknown",
        title=html_to_text(feed.get("title") or "", TITLE_MAX_CHARS) or None,
        items=items,
        ttl_seconds=_ttl_seconds(feed.get("ttl")),
        hub=_first_hub(feed.get("links") or []),
        warnings=warnings,
    )


def _not_a_feed_reason(root: str | None) -> str:
    if root is None:
        return "the document has no root element"
    return f"the document's root element <{root[:60]}> is not RSS, RDF or Atom"


def _xml_items(entries: list[Any], limits: _Limits) -> list[Item]:
    items = []
    for entry in entries:
        # dict.get, not FeedParserDict.get: no key aliasing (and its deprecation warnings), and faster.
        content = dict.get(entry, "content")
        raw_text = (dict.get(content[0], "value") if content else None) or dict.get(entry, "summary") or ""
        published = _entry_date(entry, "published") or _entry_date(entry, "updated")
        item = _make_item(
            limits,
            dict.get(entry, "id"),
            dict.get(entry, "link"),
            dict.get(entry, "title"),
            raw_text,
            _bounded_date(published, limits.fetched),
        )
        if item is not None:
            items.append(item)
    return items


def _entry_date(entry: Any, key: str) -> datetime | None:
    parsed = dict.get(entry, f"{key}_parsed")
    if not parsed or not _plausible_date_string(dict.get(entry, key)):
        return None
    try:
        year, month, day, hour, minute, second = parsed[:6]
        return datetime(year, month, day, hour, minute, min(second, 59), tzinfo=UTC)
    except (ValueError, TypeError, OverflowError):
        return None


_ISO_FIELDS = re.compile(r"\s*\d{4}-(\d\d)-(\d\d)(?:[T ](\d\d):(\d\d)(?::(\d\d))?)?")
_NUMERIC_OFFSET = re.compile(r"[+-](\d\d):?(\d\d)\s*$")


def _plausible_date_string(raw: Any) -> bool:
    """False for strings feedparser turns into a date by "normalising" nonsense.

    It rolls ``2025-13-45T99:99:99Z`` over into 2026, reads ``99999999999`` as a date and accepts a
    ``+9999`` offset; those are broken dates, so they are unknown dates.
    """
    if not isinstance(raw, str):
        return True
    value = raw.strip()
    if value.isdigit():
        return False
    iso = _ISO_FIELDS.match(value)
    if iso:
        month, day, hour, minute, second = (int(group or 0) for group in iso.groups())
        if not (1 <= month <= 12 and 1 <= day <= 31 and hour <= 24 and minute <= 59 and second <= 60):
            return False
    offset = _NUMERIC_OFFSET.search(value)
    return not (offset and (int(offset.group(1)) > 14 or int(offset.group(2)) > 59))


def _bounded_date(value: datetime | None, fetched: datetime) -> datetime | None:
    if value is None or value < OLDEST_DATE or value > fetched + FUTURE_SKEW:
        return None
    return min(value, fetched)


def _ttl_seconds(value: Any) -> int | None:
    minutes = ascii_int(str(value or ""), max_digits=6)
    if minutes is None or minutes > _TTL_MAX_MINUTES:
        return None
    return minutes * 60


def _first_hub(links: list[Any]) -> str | None:
    for link in links:
        if isinstance(link, Mapping) and link.get("rel") == "hub":
            hub = _http_url(link.get("href"), public_only=False)
            if hub:
                return hub
    return None


_LINK_HEADER_HUB = re.compile(r"""<([^>]{1,2000})>\s*;[^,]*?\brel\s*=\s*"?(?:[^",]*\s)?hub\b""", re.IGNORECASE)


def _hub_from_link_header(value: str | None) -> str | None:
    """The WebSub hub from an HTTP ``Link`` header, which takes precedence over the document's."""
    match = _LINK_HEADER_HUB.search(value or "")
    return _http_url(match.group(1), public_only=False) if match else None


def _http_url(value: Any, public_only: bool = True) -> str | None:
    """``value`` if it is an absolute http(s) URL (to a public host, with ``public_only``), else None; no
    tracking-param cleaning. Hub URLs are not limited here: the poller checks them against the configured
    address policy (``polling.allow_private``/``allow_hosts``) before calling them."""
    if not isinstance(value, str):
        return None
    value = clean_text(value).strip()
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    if public_only and not _public_host(parts.hostname):
        return None
    return value


def _public_host(host: str | None) -> bool:
    if not host:
        return False
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        return ipaddress.ip_address(host).is_global
    except ValueError:
        return True  # a name, not an address literal


def _public_url(link: Any) -> str | None:
    """The entry's link for readers: ``clean_url`` (http(s) only, no tracking), and not an address on a
    private network or loopback (a hostile ``xml:base`` can point links at internal services)."""
    if not isinstance(link, str):
        return None
    url = clean_url(clean_text(link)[:GUID_MAX_CHARS])
    if url is None or not _public_host(urlsplit(url).hostname):
        return None
    return url


def _make_item(
    limits: _Limits, guid: Any, link: Any, title: Any, raw_text: Any, published: datetime | None,
    plain: bool = False,
) -> Item | None:
    """One ``Item``, or None for an entry without a title or any text (nothing to show or classify).
    ``plain``: ``raw_text`` is text, not HTML (``plain_text``)."""
    title_text = html_to_text(str(title or ""), TITLE_MAX_CHARS)
    text = (plain_text if plain else html_to_text)(str(raw_text or ""), limits.max_text)
    if not (title_text or text):
        return None
    guid_text = clean_text(str(guid)).strip()[:GUID_MAX_CHARS] if guid is not None else ""
    url = _public_url(link)
    # Without guid or link the identity is the title, else the text: stable across polls either way.
    return Item(
        id=item_id(limits.feed_id, guid_text or None, url, title_text or f"text:{text}"),
        feed=limits.feed_id,
        outlet=limits.outlet,
        guid=guid_text or None,
        url=url,
        title=title_text,
        text=text,
        published=published,
        fetched=limits.fetched,
        content_hash=content_hash(title_text, text),
    )


def _tell_apart_shared_guids(items: list[Item], limits: _Limits, warnings: list[str]) -> list[Item]:
    """Entries of one document that share a guid but not their link (or, without links, their title) are
    known by their link instead. Some CMSs give every entry the same guid (the site's home page, say):
    taken as the identity, it kept the first entry and made each later one an update of its story."""
    names: dict[str, set[str]] = {}  # guid-based id -> the links (else titles) it names
    for item in items:
        if item.guid:
            names.setdefault(item.id, set()).add(item.url or item.title)
    shared = {key for key, links in names.items() if len(links) > 1}
    if not shared:
        return items
    guids = ", ".join(repr(guid[:80]) for guid in sorted({item.guid or "" for item in items if item.id in shared})[:3])
    warnings.append(f"{sum(item.id in shared for item in items)} entries share a guid with entries of other links "
                    f"({guids}): each is known by its link instead")
    return [item.model_copy(update={"id": item_id(limits.feed_id, None, item.url, item.title or f"text:{item.text}"),
                                    "guid": None})
            if item.id in shared else item for item in items]


def _select(items: list[Item], limits: _Limits, warnings: list[str]) -> list[Item]:
    """One item per id (the first in the document wins), at most ``max_entries`` of them: the newest by
    date, undated ones after dated ones in document order; returned in document order."""
    max_entries = limits.max_entries
    seen: set[str] = set()
    unique = []
    for item in items:
        if item.id not in seen:
            seen.add(item.id)
            unique.append(item)
    if len(unique) <= max_entries:
        return unique
    oldest = datetime.min.replace(tzinfo=UTC)
    ranked = sorted(range(len(unique)), key=lambda i: unique[i].published or oldest, reverse=True)
    keep = set(ranked[:max_entries])
    warnings.append(f"{len(unique) - max_entries} entries were left out: polling.max_entries keeps the "
                    f"{max_entries} newest")
    return [item for i, item in enumerate(unique) if i in keep]


# --- JSON Feed -----------------------------------------------------------------------------------------


def _parse_json_feed(text: str, limits: _Limits) -> ParsedFeed:
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ParseError(limits.feed_id, f"the body starts like JSON but is not valid JSON ({exc})") from exc
    wire = _ninjs_items(doc)
    if wire is not None:
        return _parse_ninjs(wire, doc, limits)
    if not isinstance(doc, dict) or not str(doc.get("version", "")).startswith(
        ("https://jsonfeed.org/version/", "http://jsonfeed.org/version/")
    ):
        raise NotAFeedError(limits.feed_id, "the body is JSON but not a JSON Feed (no jsonfeed.org version)")
    raw_items = doc.get("items")
    if not isinstance(raw_items, list):
        raise ParseError(limits.feed_id, "the JSON Feed has no 'items' list")
    warnings: list[str] = []
    cap = 2 * limits.max_entries
    if len(raw_items) > cap:
        # The first and last entries, as for XML: an oldest-first feed keeps its newest.
        warnings.append(_middle_cut(len(raw_items) - cap))
        raw_items = raw_items[: cap // 2] + raw_items[len(raw_items) - (cap - cap // 2) :]
    items = []
    for raw in raw_items:
        if not isinstance(raw, dict):
            continue
        content_text = _json_str(raw.get("content_text"))
        raw_text = content_text or _json_str(raw.get("content_html")) or _json_str(raw.get("summary"))
        published = _json_date(raw.get("date_published")) or _json_date(raw.get("date_modified"))
        guid = raw.get("id")
        item = _make_item(
            limits,
            guid if isinstance(guid, str | int) else None,
            _json_str(raw.get("url")) or _json_str(raw.get("external_url")),
            _json_str(raw.get("title")),
            raw_text,
            _bounded_date(published, limits.fetched),
            plain=bool(content_text),
        )
        if item is not None:
            items.append(item)
    hubs = doc["hubs"] if isinstance(doc.get("hubs"), list) else []
    hub = next((url for h in hubs if isinstance(h, dict) and (url := _http_url(h.get("url"), public_only=False))), None)
    return ParsedFeed(
        format="json",
        title=html_to_text(_json_str(doc.get("title")), TITLE_MAX_CHARS) or None,
        items=_select(_tell_apart_shared_guids(items, limits, warnings), limits, warnings),
        hub=hub,
        warnings=warnings,
    )


def _json_str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _json_date(value: Any) -> datetime | None:
    if not isinstance(value, str) or not _plausible_date_string(value):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --- IPTC ninjs (wire) ----------------------------------------------------------------------------------

_PUBSTATUS = {"usable": "usable", "withheld": "withheld", "canceled": "canceled", "cancelled": "canceled"}


def _ninjs_items(doc: Any) -> list[dict[str, Any]] | None:
    """The ninjs items of a document (one item, a list, or a page with ``items``/``data``), or None."""
    if isinstance(doc, dict) and isinstance(doc.get("uri"), str):
        return [doc]
    candidates = doc if isinstance(doc, list) else None
    if isinstance(doc, dict):
        for key in ("items", "data", "results"):
            if isinstance(doc.get(key), list):
                candidates = doc[key]
                break
    if candidates is None:
        return None
    items = [raw for raw in candidates if isinstance(raw, dict) and isinstance(raw.get("uri"), str)]
    if not items and candidates:
        return None
    return items


def _ninjs_names(values: Any) -> list[str]:
    """Names from ninjs ``subjects``/``located``: a list of objects with ``name``, or plain strings."""
    if isinstance(values, dict):
        values = [values]
    names = []
    for value in values if isinstance(values, list) else []:
        name = value.get("name") if isinstance(value, dict) else value
        if isinstance(name, str) and name.strip():
            names.append(clean_text(name).strip()[:200])
    return names[:50]


def _ninjs_text(raw: dict[str, Any]) -> str:
    for key in ("body_text", "description_text"):
        if _json_str(raw.get(key)):
            return _json_str(raw[key]).replace("&", "&amp;").replace("<", "&lt;")
    body = raw.get("body_html") or raw.get("description_html")
    if isinstance(body, str):
        return body
    # ninjs 2.x allows several bodies/descriptions as a list of {role, value} objects.
    for key in ("bodies", "descriptions"):
        for part in raw.get(key) or []:
            if isinstance(part, dict) and isinstance(part.get("value"), str):
                return part["value"]
    return ""


def _ninjs_headline(raw: dict[str, Any]) -> str:
    if isinstance(raw.get("headline"), str):
        return raw["headline"]
    for part in raw.get("headlines") or []:
        if isinstance(part, dict) and isinstance(part.get("value"), str):
            return part["value"]
    return ""


def _parse_ninjs(raw_items: list[dict[str, Any]], doc: Any, limits: _Limits) -> ParsedFeed:
    """Wire items (IPTC ninjs 1.x-3.x): ``uri`` is the stable identity across versions; the content hash
    also covers ``version`` and ``pubstatus`` so that a kill or a new version is queued even when its text
    is unchanged."""
    items = []
    newest: datetime | None = None
    for raw in raw_items[: 2 * limits.max_entries]:
        if raw.get("type") not in (None, "text"):
            continue  # pictures, video, graphics: nothing to brief
        created = _json_date(raw.get("versioncreated"))
        published = _json_date(raw.get("firstcreated")) or created
        if created is not None and (newest is None or created > newest):
            newest = created
        item = _make_item(limits, raw["uri"][:GUID_MAX_CHARS], raw.get("uri") if _http_url(raw.get("uri")) else
                          _json_str(raw.get("link")) or None, _ninjs_headline(raw), _ninjs_text(raw),
                          _bounded_date(published, limits.fetched))
        status = _PUBSTATUS.get(_json_str(raw.get("pubstatus")).lower(), "usable")
        if item is None:
            if status == "usable":
                continue
            # A kill often carries no text: it still has to reach the worker to withdraw the entry.
            item = Item(id=item_id(limits.feed_id, raw["uri"][:GUID_MAX_CHARS], None, ""), feed=limits.feed_id,
                        outlet=limits.outlet, guid=raw["uri"][:GUID_MAX_CHARS], fetched=limits.fetched,
                        content_hash="")
        version = raw.get("version")
        version_number = ascii_int(str(version)) if isinstance(version, int | str) and version is not True else None
        urgency = raw.get("urgency")
        located = _ninjs_names(raw.get("located"))
        update = {
            "version": version_number,
            "pubstatus": status,
            "embargoed": _json_date(raw.get("embargoed")),
            "urgency": urgency if isinstance(urgency, int) and 0 < urgency < 10 else None,
            "subjects": _ninjs_names(raw.get("subjects") or raw.get("subject")),
            "located": located[0] if located else None,
        }
        update["content_hash"] = content_hash(
            f"{item.title}\x00{version_number}\x00{status}", item.text
        )
        items.append(item.model_copy(update=update))
    cursor = doc.get("next_cursor") or doc.get("cursor") if isinstance(doc, dict) else None
    warnings: list[str] = []
    return ParsedFeed(
        format="ninjs",
        items=_select(items, limits, warnings),
        warnings=warnings,
        cursor=str(cursor) if isinstance(cursor, str | int) and cursor else (newest.isoformat() if newest else None),
    )
