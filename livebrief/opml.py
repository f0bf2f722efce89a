"""OPML, the subscription list feed readers import and export: read one into feed settings, write ours.

A desk moving from another reader (Miniflux, Feedly, NetNewsWire, ``reader``) brings its feeds as OPML;
``opml:`` in the config follows them without copying each into the YAML, and ``livebrief feeds --opml``
writes the configured feeds back out. Pure functions: the config loader reads the files.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from urllib.parse import urlsplit
from xml.etree import ElementTree

from livebrief.urls import canonical_url

_SLUG_CUT = re.compile(r"[^a-z0-9]+")


class OpmlError(ValueError):
    """The bytes are not an OPML subscription list we can read."""


def feed_id(name: str, url: str) -> str:
    """A stable id for a feed from a list: its name as a slug, and a digest of its URL, so two lists (or a
    reordered one) give a feed the same id, and two feeds of one name never share one."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = _SLUG_CUT.sub("-", ascii_name.lower()).strip("-")[:40].rstrip("-") or "feed"
    return f"{slug}-{hashlib.sha1(url.encode()).hexdigest()[:6]}"


def read_opml(data: bytes) -> list[dict[str, str]]:
    """Feed settings (``id``, ``url``, ``name``) for every outline with an ``xmlUrl``, in document order,
    nested folders included; the first of several outlines with one URL counts."""
    if b"<!DOCTYPE" in data[:4096].upper():
        raise OpmlError("a DOCTYPE is not accepted in an OPML file (entities could expand without bound)")
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise OpmlError(f"not valid XML ({exc})") from None
    if root.tag != "opml":
        raise OpmlError(f"not an OPML document: the root element is <{root.tag}>, not <opml>")
    feeds: list[dict[str, str]] = []
    seen: set[str] = set()
    for outline in root.iter("outline"):
        url = _http_spelling((outline.get("xmlUrl") or outline.get("xmlurl") or "").strip())
        # One feed listed twice, in two folders or spelt two ways ("/rss" and "/rss/"), is followed once.
        spelling = canonical_url(url) or url
        if not url or spelling in seen:
            continue
        seen.add(spelling)
        name = (outline.get("title") or outline.get("text") or _host(url) or url).strip()
        feeds.append({"id": feed_id(name, url), "url": url, "name": name})
    return feeds


def _http_spelling(url: str) -> str:
    """``url`` as http(s) spells it: ``feed://host/x`` and ``feed:https://host/x`` (the feed: pseudo-scheme
    some readers export) and an upper-case scheme (``HTTP://``) are the URLs they stand for."""
    lower = url[:14].lower()
    if lower.startswith("feed:http://") or lower.startswith("feed:https://"):
        url = url[5:]
    elif lower.startswith("feed://"):
        url = "http://" + url[7:]
    scheme, sep, rest = url.partition("://")
    return f"{scheme.lower()}{sep}{rest}" if sep and scheme.lower() in ("http", "https") else url


def _host(url: str) -> str | None:
    """The URL's host, to name an untitled outline; None for a URL urlsplit refuses (an unclosed IPv6 bracket),
    which the config loader then reports against the outline."""
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


def write_opml(feeds: list[tuple[str, str]], title: str) -> str:
    """An OPML 2.0 document listing ``(name, url)`` feeds."""
    opml = ElementTree.Element("opml", version="2.0")
    head = ElementTree.SubElement(opml, "head")
    ElementTree.SubElement(head, "title").text = title
    body = ElementTree.SubElement(opml, "body")
    for name, url in feeds:
        ElementTree.SubElement(body, "outline", type="rss", text=name, title=name, xmlUrl=url)
    ElementTree.indent(opml)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(opml, encoding="unicode") + "\n"
