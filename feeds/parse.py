"""Feed bytes to ``Item``s: RSS 0.9x/1.0/2.0 and Atom through feedparser, JSON Feed directly.

Never lets feedparser fetch anything: it is given bytes and the response headers only.
"""

from __future__ import annotations

import calendar
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import feedparser
from pydantic import BaseModel

from feeds.text import html_to_text
from livebrief.errors import NotAFeedError, ParseError
from livebrief.models import Item
from livebrief.urls import clean_url


class ParsedFeed(BaseModel):
    format: str
    title: str | None = None
    items: list[Item]
    ttl_seconds: int | None = None
    hub: str | None = None


def item_id(feed_id: str, guid: str | None, link: str | None, title: str) -> str:
    basis = guid or link or title
    return hashlib.blake2b(f"{feed_id}\x00{basis}".encode(), digest_size=10).hexdigest()


def content_hash(title: str, text: str) -> str:
    return hashlib.blake2b(f"{title}\x00{text}".encode(), digest_size=8).hexdigest()


def _make_item(
    feed_id: str, outlet: str, guid: str | None, link: str | None, title: str, text: str,
    published: datetime | None, fetched: datetime,
) -> Item:
    url = clean_url(link)
    return Item(
        id=item_id(feed_id, guid, url, title), feed=feed_id, outlet=outlet, guid=guid, url=url,
        title=title, text=text, published=published, fetched=fetched,
        content_hash=content_hash(title, text),
    )


def _struct_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (OverflowError, ValueError, TypeError):
        return None


def _parse_json_feed(
    doc: dict[str, Any], feed_id: str, outlet: str, fetched: datetime, max_entries: int, max_text: int
) -> ParsedFeed:
    items = []
    for raw in (doc.get("items") or [])[:max_entries]:
        if not isinstance(raw, dict):
            continue
        title = html_to_text(str(raw.get("title") or ""), 1000)
        body = raw.get("content_text") or html_to_text(str(raw.get("content_html") or raw.get("summary") or ""))
        text = html_to_text(str(body), max_text)
        published = None
        if raw.get("date_published"):
            try:
                published = datetime.fromisoformat(str(raw["date_published"]).replace("Z", "+00:00"))
            except ValueError:
                published = None
        guid = str(raw["id"]) if raw.get("id") is not None else None
        if not (title or text):
            continue
        items.append(_make_item(feed_id, outlet, guid, raw.get("url"), title, text, published, fetched))
    return ParsedFeed(format="json", title=doc.get("title"), items=items)


def parse_feed(
    body: bytes,
    *,
    feed_id: str,
    outlet: str,
    fetched: datetime,
    headers: Mapping[str, str] | None = None,
    base_url: str | None = None,
    max_entries: int = 500,
    max_text_chars: int = 20_000,
) -> ParsedFeed:
    """Parse a fetched body; raises ``NotAFeedError``/``ParseError`` carrying the feed id."""
    stripped = body.lstrip()
    if not stripped:
        raise NotAFeedError(feed_id, "the body is empty")
    if stripped[:1] in (b"{", b"["):
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(feed_id, f"invalid JSON: {exc}") from exc
        if isinstance(doc, dict) and "jsonfeed.org" in str(doc.get("version", "")):
            return _parse_json_feed(doc, feed_id, outlet, fetched, max_entries, max_text_chars)
        raise NotAFeedError(feed_id, "JSON body is not a JSON Feed")
    parsed = feedparser.parse(
        body, response_headers={k.lower(): v for k, v in (headers or {}).items()}, sanitize_html=False
    )
    if not parsed.get("version") and not parsed.entries:
        raise NotAFeedError(feed_id)
    items = []
    for entry in parsed.entries[:max_entries]:
        title = html_to_text(entry.get("title", ""), 1000)
        content = entry.get("content")
        raw = content[0].get("value", "") if content else entry.get("summary", "")
        text = html_to_text(raw, max_text_chars)
        if not (title or text):
            continue
        published = _struct_time(entry.get("published_parsed") or entry.get("updated_parsed"))
        items.append(_make_item(feed_id, outlet, entry.get("id"), entry.get("link"), title, text,
                                published, fetched))
    ttl = parsed.feed.get("ttl")
    return ParsedFeed(
        format=parsed.get("version") or "unknown", title=parsed.feed.get("title"), items=items,
        ttl_seconds=int(ttl) * 60 if str(ttl or "").isdigit() else None,
    )
