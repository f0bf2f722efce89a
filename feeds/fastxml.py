"""A fast reader for plain RSS 2.0 and Atom 1.0 that gives feedparser's values or nothing.

Why it exists: feedparser's SAX handler is Python code that runs for every element, attribute and text
chunk, about 0.6 ms per entry, most of a poll's parse time. Issue 6 keeps feedparser as the parser of
record; this module is the hot path beside it. ``read_plain_feed`` drives expat directly and collects only
what ``feeds.parse`` reads from feedparser's handler (``version``, ``feeddata`` title, ttl and links,
each entry's id, link, title, content, summary, published and updated, with the ``*_parsed`` dates), with
the values feedparser's strict parser gives as ``feeds.parse._run_feedparser`` configures it: no
sanitizing, no relative-URI resolution inside content, no tags, the same base URI. Dates go through
feedparser's own ``_parse_date``, URLs through its ``_urljoin``, so they match by construction.

It accepts only documents it is certain to read exactly as feedparser does:

- the root is ``<rss version="2.x">`` (what feedparser calls ``rss20``) with a single ``<channel>``, or an
  Atom 1.0 ``<feed xmlns="http://www.w3.org/2005/Atom">`` (``atom10``);
- every element is on the whitelists below (``_CHILDREN``), in the place it is listed for: the RSS 2.0
  and Atom 1.0 channel, image, textInput and entry elements, ``content:encoded``, ``dc:creator``,
  ``dc:date``, ``dc:subject``, ``wfw:commentRss``, ``slash:comments``, ``sy:update*``,
  ``feedburner:origLink``, and ``media:content``/``media:thumbnail`` without children; namespaces count by
  URI, as in feedparser, so ``atom:link`` inside RSS is a ``link``;
- text elements hold only text (no child elements) and only the attributes listed in ``_ATTRS``; a text
  construct's ``type`` is text or html;
- no ``xml:base`` or ``base`` attribute, and no namespaced attribute but ``xml:lang``.

Anything else makes it return None and the caller runs feedparser: RSS 0.9x and 1.0, Atom 0.3, xhtml,
base64 or ``src`` content, Atom ``source``, ``dcterms:``, ``itunes:``, other ``media:`` and unknown
elements or namespaces, a DTD or an entity, and every document expat rejects (feedparser's lenient parser
reads those). It never raises.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, NoReturn
from xml.parsers import expat

import structlog
from feedparser.datetimes import _parse_date
from feedparser.html import _cp1252
from feedparser.mixin import _FeedParserMixin
from feedparser.urls import _urljoin, make_safe_absolute_uri

log = structlog.get_logger(__name__)


@dataclass
class FastFeed:
    """The parts of feedparser's handler that ``feeds.parse`` reads, with the same keys and values."""

    version: str
    feeddata: dict[str, Any]
    entries: list[dict[str, Any]]


class _Refuse(Exception):
    """The document holds something this reader does not reproduce; feedparser has to read it."""


_ATOM = "http://www.w3.org/2005/atom"
_XML_LANG = "http://www.w3.org/XML/1998/namespace lang"
# feedparser's namespace table (lower-cased URI -> its prefix); it names elements by these prefixes.
_PREFIXES = {uri.lower(): prefix for uri, prefix in _FeedParserMixin.namespaces.items()}
_HTML_TYPES = _FeedParserMixin.html_types
_map_content_type = _FeedParserMixin.map_content_type
_RSS_VERSIONS = {"0.91": "rss091u", "0.92": "rss092", "0.93": "rss093", "0.94": "rss094"}
# Text-construct types that are neither xhtml (parsed as markup) nor base64-decoded by feedparser.
_TEXT_TYPES = frozenset({"text", "html", "text/plain", "text/html"})
_TYPED = frozenset({"title", "description", "summary", "content", "content_encoded", "subtitle", "rights"})

# What each allowed element is, by feedparser's name for it ("content_encoded", "dc_date"), in each
# place. "skip" elements only write keys that feeds.parse never reads (checked against feedparser 6.0).
_SKIP_IN_FEED = (
    "description subtitle language copyright rights managingeditor webmaster generator docs category id "
    "icon logo cloud dc_creator dc_language sy_updateperiod sy_updatefrequency sy_updatebase"
)
_SKIP_IN_ENTRY = (
    "category comments enclosure dc_creator dc_subject wfw_commentrss slash_comments feedburner_origlink "
    "media_content media_thumbnail"
)
_CHILDREN: dict[str, dict[str, str]] = {
    "rss": {"channel": "channel"},
    "feed": {
        "title": "title",
        "link": "link",
        "ttl": "ttl",
        "item": "entry",
        "entry": "entry",
        "image": "image",
        "textinput": "textinput",
        "author": "person",
        "contributor": "person",
        **dict.fromkeys(("pubdate", "published", "updated", "lastbuilddate", "dc_date"), "date"),
        **dict.fromkeys(_SKIP_IN_FEED.split(), "skip"),
    },
    "entry": {
        "title": "title",
        "link": "link",
        "guid": "guid",
        "id": "guid",
        "description": "summary",
        "summary": "summary",
        "content": "content",
        "content_encoded": "content",
        "pubdate": "published",
        "published": "published",
        "updated": "updated",
        "dc_date": "updated",
        "source": "source",
        "author": "person",
        "contributor": "person",
        **dict.fromkeys(_SKIP_IN_ENTRY.split(), "skip"),
    },
    "image": {"title": "title", **dict.fromkeys(("url", "link", "width", "height", "description"), "skip")},
    "textinput": {"title": "title", **dict.fromkeys(("description", "name", "link"), "skip")},
    "person": dict.fromkeys(("name", "email", "uri"), "skip"),
}
_C1_CONTROLS = re.compile("[\x80-\x9f]")  # the only characters feedparser's _cp1252 table maps
# feedparser's repair of ``&name;`` left in link text ("?a=1&b;=2"): the unescape it applies to links.
_AMP_REF = re.compile("&([A-Za-z0-9_]+);")
_ATTRS: dict[str, frozenset[str]] = {
    "rss": frozenset({"version"}),
    "link": frozenset({"href", "rel", "type", "hreflang", "title", "length"}),
    "guid": frozenset({"ispermalink"}),
    "category": frozenset({"term", "scheme", "label", "domain"}),
    "source": frozenset({"url"}),
    "generator": frozenset({"uri", "version"}),
    "cloud": frozenset({"domain", "port", "path", "registerprocedure", "protocol"}),
    **dict.fromkeys(_TYPED, frozenset({"type"})),
}
_NO_ATTRS: frozenset[str] = frozenset()
# Elements whose attributes feedparser only copies into keys of their own (media_content, links):
# any plain attribute will do, except "base", which feedparser reads as xml:base on every element.
_FREE_ATTRS = frozenset({"enclosure", "media_content", "media_thumbnail"})


def read_plain_feed(data: bytes, baseuri: str) -> FastFeed | None:
    """feedparser's result for ``data`` (UTF-8 XML) if it is plain RSS 2.0 or Atom 1.0, else None.

    ``baseuri`` is the base feedparser's handler starts from (``make_safe_absolute_uri(base_url)``).
    """
    try:
        reader = _Reader(baseuri)
        parser = expat.ParserCreate(None, " ")
        parser.buffer_text = True
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_UNLESS_STANDALONE)  # as xml.sax does
        parser.StartElementHandler = reader.start
        parser.EndElementHandler = reader.end
        parser.CharacterDataHandler = reader.text
        parser.StartNamespaceDeclHandler = reader.namespace
        parser.StartDoctypeDeclHandler = _refuse
        parser.SkippedEntityHandler = _refuse
        parser.ExternalEntityRefHandler = _refuse
        parser.Parse(data, True)
        if reader.version not in ("rss20", "atom10") or reader.stack:
            return None
        return FastFeed(reader.version, reader.feeddata, reader.entries)
    except (_Refuse, expat.ExpatError):
        return None
    except Exception as exc:  # a bug here must cost speed, never a feed
        log.warning("fast_feed_reader_failed", error=f"{type(exc).__name__}: {exc}")
        return None


def _refuse(*_: Any) -> NoReturn:
    raise _Refuse


class _Reader:
    """expat handlers that replay feedparser's handler state for the whitelisted elements."""

    def __init__(self, baseuri: str) -> None:
        # feedparser re-derives the base at every element; without xml:base it settles after one step.
        base = (make_safe_absolute_uri(baseuri, baseuri) or baseuri) if baseuri else _urljoin("", "")
        if base and (make_safe_absolute_uri(base, base) or base) != base:
            raise _Refuse
        self.base = base
        self.version = ""
        self.feeddata: dict[str, Any] = {}
        self.entries: list[dict[str, Any]] = []
        self.stack: list[tuple[str, str, str]] = []  # (context, element, kind) of each open element
        self.pieces: list[str] | None = None  # text of the open text element
        self.namespacemap: dict[str | None, str] = {}
        self.names: dict[str, str] = {}
        self.entry: dict[str, Any] = {}
        self.link: dict[str, str] | None = None  # the feed-level link whose text becomes its href
        self.title_depth = -1
        self.guidislink = False
        self.has_content = False
        self.as_content = False
        self.seen_channel = False

    def namespace(self, prefix: str | None, uri: str | None) -> None:
        if not uri:
            return
        if uri != "".join(uri.split()):
            raise _Refuse  # xml.sax splits names on whitespace; feedparser fails on such a URI
        low = uri.lower()
        if not self.version:
            if prefix is None and low == "http://my.netscape.com/rdf/simple/0.9/":
                self.version = "rss090"
            elif low == "http://purl.org/rss/1.0/":
                self.version = "rss10"
            elif low == _ATOM:
                self.version = "atom10"
        if "backend.userland.com/rss" in low:
            low = "http://backend.userland.com/rss"
        if low in _PREFIXES:
            self.namespacemap[prefix] = _PREFIXES[low]
        self.names.clear()

    def _name(self, raw: str) -> str:
        """feedparser's name for an element: its namespace's prefix (as feedparser maps it) and local name."""
        uri, _, local = raw.rpartition(" ")
        prefix = _PREFIXES.get(uri.lower()) if uri else ""
        if prefix is None or (prefix == "" and uri and uri.lower() != _ATOM):
            raise _Refuse  # an unknown namespace, or one of the old RSS ones feedparser folds into RSS
        if prefix:
            prefix = prefix.lower()
            prefix = self.namespacemap.get(prefix, prefix)
        return f"{prefix}_{local.lower()}" if prefix else local.lower()

    def start(self, raw: str, attrs: dict[str, str]) -> None:
        name = self.names.get(raw)
        if name is None:
            name = self.names[raw] = self._name(raw)
        context = self.stack[-1][2] if self.stack else ""
        if context == "channel":
            context = "feed"
        attrs_d = _attributes(name, attrs) if attrs else {}
        # Only containers have children listed, so markup inside a text element (xhtml to feedparser) stops here.
        kind = _CHILDREN.get(context, {}).get(name) or _refuse() if self.stack else self._root(name, attrs_d)
        self.stack.append((context, name, kind))
        if kind in ("title", "guid", "summary", "content", "published", "updated", "ttl", "date"):
            self.pieces = []
        if kind == "entry":
            self.entry = {}
            self.entries.append(self.entry)
            self.guidislink = False
            self.title_depth = -1
        elif kind in ("image", "textinput", "source"):
            self.title_depth = -1
        elif kind == "channel":
            if self.seen_channel:
                raise _Refuse
            self.seen_channel = True
        elif kind == "guid":
            self.guidislink = attrs_d.get("ispermalink", "true") == "true"
        elif kind == "summary":
            # A second summary before any content is content, and the first one stays the summary.
            self.as_content = "summary" in self.entry and not self.has_content
            self.has_content = self.has_content or self.as_content
        elif kind == "content":
            self.has_content = True
        elif kind == "link":
            self._start_link(context, attrs_d)

    def _root(self, name: str, attrs_d: dict[str, str]) -> str:
        if name == "rss":
            if not self.version.startswith("rss"):
                given = attrs_d.get("version", "")
                self.version = _RSS_VERSIONS.get(given) or ("rss20" if given.startswith("2.") else "rss")
            if self.version != "rss20":
                raise _Refuse
            return "rss"
        if name == "feed" and self.version == "atom10":
            return "channel"
        raise _Refuse

    def _start_link(self, context: str, attrs_d: dict[str, str]) -> None:
        link = dict(attrs_d)
        rel = link.setdefault("rel", "alternate")
        link.setdefault("type", "application/atom+xml" if rel == "self" else "text/html")
        if context == "feed":
            self.feeddata.setdefault("links", []).append(link)
        if "href" not in link:
            self.pieces = []
            self.link = link
            return
        link["href"] = _urljoin(self.base, link["href"])
        if rel == "alternate" and _map_content_type(link["type"]) in _HTML_TYPES and context == "entry":
            self.entry["link"] = link["href"]

    def text(self, data: str) -> None:
        if self.pieces is not None:
            self.pieces.append(data)

    def end(self, raw: str) -> None:
        context, name, kind = self.stack[-1]
        depth = len(self.stack)
        self.stack.pop()
        if self.pieces is None:
            if kind == "entry":
                self.has_content = False
            return
        resolve = kind == "link" or (kind == "guid" and self.guidislink)
        value = _pop_value("".join(self.pieces), self.base if resolve else None)
        self.pieces = None
        target = self.entry if context == "entry" else self.feeddata if context == "feed" else None
        if kind == "title":
            # The first non-empty title at a depth wins; image, textinput, source and entry reset that.
            if not (-1 < self.title_depth <= depth) and target is not None:
                target["title"] = value
            if value:
                self.title_depth = depth
        elif kind == "link":
            self._end_link(context, value)
        elif kind == "date":
            _parse_date(value)  # only so that a crash in it happens here too (feedparser parses it)
        elif kind == "ttl":
            self.feeddata["ttl"] = value
        elif context != "entry":
            return
        elif kind == "guid":
            self.entry["id"] = value
            if self.guidislink:
                self.entry.setdefault("link", value)
        elif kind == "summary" and not self.as_content:
            self.entry["summary"] = value
        elif kind in ("summary", "content"):
            self.as_content = False
            self.entry.setdefault("content", []).append({"value": value})
            self.entry.setdefault("summary", value)
        elif kind in ("published", "updated"):
            self.entry[kind] = value
            self.entry[f"{kind}_parsed"] = _parse_date(value)

    def _end_link(self, context: str, value: str) -> None:
        link, self.link = self.link, None
        if "&" in value:
            value = _AMP_REF.sub(r"&\g<1>", value.replace("&amp;", "&") if context == "entry" else value)
        if context == "entry":
            self.entry["link"] = value
        elif context == "feed" and link is not None:
            link["href"] = value


def _pop_value(text: str, base: str | None) -> str:
    """The value feedparser's ``pop`` stores for an element's text: stripped; resolved against ``base``
    if it is a URI; UTF-8 that was read as Latin-1 repaired; C1 controls read as windows-1252."""
    value = text.strip()
    if base is not None and value:
        value = _urljoin(base, value)
    if not value.isascii():  # both repairs leave ASCII unchanged
        try:
            value = value.encode("iso-8859-1").decode("utf-8")
        except UnicodeError:
            pass
        if _C1_CONTROLS.search(value):  # a translate() with a dict costs more than the rest of the parse
            value = value.translate(_cp1252)
    return value


def _attributes(name: str, attrs: dict[str, str]) -> dict[str, str]:
    """feedparser's view of the attributes (keys lower-cased, rel and type values too), if all are allowed."""
    allowed = _ATTRS.get(name, _NO_ATTRS)
    free = name in _FREE_ATTRS
    result = {}
    for key, value in attrs.items():
        if " " in key:
            if key != _XML_LANG:
                raise _Refuse  # xml:base, and namespaced attributes feedparser may read as plain ones
            continue
        low = key.lower()
        if low in result or (low not in allowed and not (free and low != "base")):
            raise _Refuse
        result[low] = value.lower() if low in ("rel", "type") else value
    if name in _TYPED and result.get("type", "text") not in _TEXT_TYPES:
        raise _Refuse  # xhtml is parsed as markup, other types are base64-decoded
    return result
