"""How a story record is stored in ``P:story:<id>``, and read back only as far as a decision needs.

A batch reads ~20 candidate stories per item and only scores most of them: it needs their status,
feeds, features and text signature, not the entry (headline, summary, sources, evidence), whose
validation costs about five times as much. So a record is stored as two JSON documents, the *head*
(what scoring reads) and then the *body* (the rest), compressed together as one stream (two streams
cost ~10% more bytes: the body repeats the head's words). ``decode_story`` inflates the record and
parses the head; the returned ``StoryHandle`` parses the body on first use of ``handle.record``.

Format, by the first byte:

- ``\x02``: varint length of the head JSON, then raw deflate of head + body primed with ``_STORY_ZDICT``;
- ``\x01``: the whole record as one JSON document, raw deflate primed with ``_STORY_ZDICT`` (read, not
  written);
- ``\x78``: the whole record as plain zlib (the first format; read, not written).

The dictionary is part of the format: changing it needs a new format byte.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from functools import partial

from pydantic import BaseModel

from livebrief.config import STORY_CACHE
from livebrief.models import Entry
from worker.dedupe import StoryFeatures, TextSignature, cache_views
from worker.stories import StoryHandle, StoryRecord

_SPLIT_FORMAT = b"\x02"
_DICT_FORMAT = b"\x01"

# Story records are small JSON documents that mostly repeat one shape, which a compressor starts each
# record without knowing; primed with that shape (a preset dictionary) a record stores in ~27% fewer bytes.
_STORY_ZDICT = (
    b'"status":"updated","status":"withdrawn","topics":["strikes","talks","humanitarian"],'
    b'"evidence":{"strikes":["talks":["humanitarian":["'
    b'{"entry":{"id":"s","version":1,"status":"new","headline":"","summary":"","topics":[],'
    b'"scores":{"strikes":0.0,"talks":0.0,"humanitarian":0.0},"evidence":{},'
    b'"sources":[{"feed":"","name":"","url":"https://","published":"2026-11-25T00:00:00Z"}],'
    b'"published":"2026-11-25T00:00:00Z","updated":"2026-11-25T00:00:00.000000Z","schema_version":1},'
    b'"signature":{"fp":""},"features":{"terms":["",""],"entities":["",""],"topics":[],'
    b'"published":1700000000.0,"also":[["","@"]]},"feeds":[""],"items":[""],"lead_item":""}'
)


class _Head(BaseModel):
    status: str
    feeds: list[str]
    features: StoryFeatures
    signature: TextSignature | None = None


class _Body(BaseModel):
    entry: Entry
    items: list[str]
    lead_item: str | None = None


class _StoryCache:
    """Decoded stories by their stored bytes, most recently used last.

    Candidate stories recur from batch to batch (a developing story is read by every report of it).
    Keyed by the exact bytes, a hit can never be stale; a record this worker wrote is cached as written,
    since the next batch is likely to read it back. Records are never mutated (``worker/stories.py``
    derives new ones with ``model_copy``), so sharing them is safe.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        # OrderedDict, not dict: evicting the oldest of a plain dict (``next(iter(d))``) walks over the
        # slots its earlier evictions left empty, which cost more than the decoding it saved.
        self._handles: OrderedDict[bytes, StoryHandle] = OrderedDict()

    def get(self, raw: bytes) -> StoryHandle | None:
        handle = self._handles.get(raw)
        if handle is not None:
            try:
                self._handles.move_to_end(raw)
            except KeyError:  # evicted by another thread meanwhile (tests race workers in threads)
                pass
        return handle

    def put(self, raw: bytes, handle: StoryHandle) -> None:
        self._handles[raw] = handle
        if len(self._handles) > self.size:
            try:
                self._handles.popitem(last=False)
            except KeyError:
                pass

    def resize(self, size: int) -> None:
        self.size = size
        while len(self._handles) > size:
            self._handles.popitem(last=False)


_stories = _StoryCache(STORY_CACHE)  # until ``cache_stories`` sets ``worker.story_cache``


def cache_stories(count: int) -> None:
    """Keep up to ``count`` decoded stories, and their scoring views, in this process (``worker.story_cache``).

    A candidate missing from the cache is inflated, parsed and given new scoring views (tens of us); once the
    index holds many more stories than the cache, most candidates miss (see the README's "Sustained load")."""
    _stories.resize(count)
    # A story's features change with every join, and each version has its views: twice as many.
    cache_views(2 * count)


def _deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, -15, zdict=_STORY_ZDICT)
    return packer.compress(data) + packer.flush()


def _inflate(data: bytes) -> bytes:
    unpacker = zlib.decompressobj(-15, zdict=_STORY_ZDICT)
    return unpacker.decompress(data) + unpacker.flush()


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _read_varint(raw: bytes, at: int) -> tuple[int, int]:
    """The number at ``at`` and the offset after it."""
    n = shift = 0
    while True:
        byte = raw[at]
        at += 1
        n |= (byte & 0x7F) << shift
        if byte < 0x80:
            return n, at
        shift += 7


def pack_story(record: StoryRecord) -> bytes:
    """Story records are the index's biggest values: compressed, head first (see the module docstring)."""
    # Parts of a validated record: put together without validating again.
    head = _Head.model_construct(status=record.entry.status, feeds=record.feeds, features=record.features,
                                 signature=record.signature).model_dump_json().encode()
    body = _Body.model_construct(entry=record.entry, items=record.items, lead_item=record.lead_item)
    return _SPLIT_FORMAT + _varint(len(head)) + _deflate(head + body.model_dump_json().encode())


def written_story(raw: bytes, record: StoryRecord) -> bytes:
    """``raw`` (``pack_story(record)``), which this worker is writing: cached as ``record``, since the next
    batch is likely to read it back."""
    _stories.put(raw, StoryHandle.of(record))
    return raw


def _whole_record(head: _Head, body: bytes) -> StoryRecord:
    parts = _Body.model_validate_json(body)
    return StoryRecord.model_construct(
        entry=parts.entry, signature=head.signature, features=head.features, feeds=head.feeds,
        items=parts.items, lead_item=parts.lead_item,
    )


def decode_story(raw: bytes) -> StoryHandle:
    """The story stored as ``raw``, its body parsed only when ``handle.record`` is first read."""
    handle = _stories.get(raw)
    if handle is not None:
        return handle
    if raw[:1] == _SPLIT_FORMAT:
        size, at = _read_varint(raw, 1)
        data = _inflate(raw[at:])
        head = _Head.model_validate_json(data[:size])
        handle = StoryHandle(head.status, head.feeds, head.features, head.signature,
                             partial(_whole_record, head, data[size:]))
    elif raw[:1] == _DICT_FORMAT:
        handle = StoryHandle.of(StoryRecord.model_validate_json(_inflate(raw[1:])))
    else:
        handle = StoryHandle.of(StoryRecord.model_validate_json(zlib.decompress(raw)))
    _stories.put(raw, handle)
    return handle
