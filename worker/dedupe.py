"""Dedupe signatures and decisions: pure functions on items, no Redis here.

Three levels: exact (canonical URL, guid), near-duplicate text (SimHash with LSH bands), same story
(significant-term overlap within a time window). The Redis index that stores these lives in
``worker/story_index.py``.

PLACEHOLDER implementation of levels 2 and 3; the real one replaces it behind the same API.
"""

from __future__ import annotations

import hashlib
import re

from pydantic import BaseModel

from livebrief.models import Item
from livebrief.urls import canonical_url, url_hash

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
BANDS = 4
MIN_TOKENS = 12


class TextSignature(BaseModel):
    simhash: int
    tokens: int


class StoryFeatures(BaseModel):
    terms: list[str]
    topics: list[str] = []
    published: float = 0.0


def exact_keys(item: Item) -> list[tuple[str, str]]:
    """("url", digest) and ("guid", digest) pairs that identify the item exactly."""
    keys: list[tuple[str, str]] = []
    canonical = canonical_url(item.url)
    if canonical:
        keys.append(("url", url_hash(canonical)))
    if item.guid:
        keys.append(("guid", url_hash(item.guid.strip())))
    return keys


def _tokens(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def text_signature(title: str, text: str) -> TextSignature | None:
    tokens = _tokens(f"{title} {text}")
    if len(tokens) < MIN_TOKENS:
        return None
    weights = [0] * 64
    for i in range(len(tokens) - 2):
        h = int.from_bytes(hashlib.blake2b(" ".join(tokens[i : i + 3]).encode(), digest_size=8).digest(), "big")
        for bit in range(64):
            weights[bit] += 1 if h >> bit & 1 else -1
    value = sum(1 << bit for bit in range(64) if weights[bit] > 0)
    return TextSignature(simhash=value, tokens=len(tokens))


def lsh_buckets(sig: TextSignature) -> list[tuple[int, str]]:
    width = 64 // BANDS
    return [(b, format(sig.simhash >> (b * width) & ((1 << width) - 1), "x")) for b in range(BANDS)]


def is_near_duplicate(a: TextSignature, b: TextSignature) -> bool:
    return bin(a.simhash ^ b.simhash).count("1") <= 3


def story_features(title: str, text: str, topics: list[str], published: float) -> StoryFeatures:
    terms = sorted({t for t in _tokens(title) if len(t) > 3})
    return StoryFeatures(terms=terms, topics=topics, published=published)


def index_terms(features: StoryFeatures) -> list[str]:
    return features.terms[:12]


def story_score(a: StoryFeatures, b: StoryFeatures) -> float:
    sa, sb = set(a.terms), set(b.terms)
    if len(sa) < 5 or len(sb) < 5:
        return 0.0
    return len(sa & sb) / min(len(sa), len(sb))
