"""The pure per-item stages: classify, condense and sign an item, before any Redis work."""

from __future__ import annotations

from dataclasses import dataclass

from livebrief.config import WorkerConfig
from livebrief.models import Item
from worker.classify import Classification, TopicSet, classify
from worker.condense import Condensed, condense
from worker.dedupe import (
    StoryFeatures,
    TextSignature,
    exact_keys,
    index_terms,
    lsh_buckets,
    story_features,
    text_signature,
)
from worker.marks import exact_mark, seen_mark


# A plain dataclass, not a model: it never leaves the process, its parts are validated models already,
# and the commit reads the index keys below several times per item.
@dataclass(frozen=True, slots=True)
class Prepared:
    """An item with everything the worker derives from it without looking at history."""

    item: Item
    classification: Classification
    condensed: Condensed
    signature: TextSignature | None
    features: StoryFeatures
    exact: list[tuple[str, str]]
    seen_mark: int  # worker/marks.py: the item with this content
    exact_marks: list[int]  # one per ``exact`` key, in order
    buckets: list[tuple[int, str]]  # lsh_buckets(signature)
    terms: list[str]  # index_terms(features)
    published_ts: float


def prepare(item: Item, topics: TopicSet, settings: WorkerConfig) -> Prepared:
    classification = classify(item.title, item.text, topics)
    condensed = condense(item.title, item.text, item.outlet, settings.summary_max_chars)
    published = (item.published or item.fetched).timestamp()
    signature = text_signature(condensed.headline, item.text)
    features = story_features(condensed.headline, item.text, classification.topics, published)
    exact = exact_keys(item)
    return Prepared(
        item=item,
        classification=classification,
        condensed=condensed,
        signature=signature,
        features=features,
        exact=exact,
        seen_mark=seen_mark(item.id, item.content_hash),
        exact_marks=[exact_mark(kind, digest) for kind, digest in exact],
        buckets=lsh_buckets(signature) if signature is not None else [],
        terms=index_terms(features),
        published_ts=published,
    )
