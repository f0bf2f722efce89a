"""The pure per-item stages: classify, condense and sign an item, before any Redis work."""

from __future__ import annotations

from pydantic import BaseModel

from livebrief.config import WorkerConfig
from livebrief.models import Item
from worker.classify import Classification, TopicSet, classify
from worker.condense import Condensed, condense
from worker.dedupe import StoryFeatures, TextSignature, exact_keys, story_features, text_signature


class Prepared(BaseModel):
    """An item with everything the worker derives from it without looking at history."""

    item: Item
    classification: Classification
    condensed: Condensed
    signature: TextSignature | None
    features: StoryFeatures
    exact: list[tuple[str, str]]

    @property
    def published_ts(self) -> float:
        return (self.item.published or self.item.fetched).timestamp()


def prepare(item: Item, topics: TopicSet, settings: WorkerConfig) -> Prepared:
    classification = classify(item.title, item.text, topics)
    condensed = condense(item.title, item.text, item.outlet, settings.summary_max_chars)
    published = (item.published or item.fetched).timestamp()
    return Prepared(
        item=item,
        classification=classification,
        condensed=condensed,
        signature=text_signature(condensed.headline, item.text),
        features=story_features(condensed.headline, item.text, classification.topics, published),
        exact=exact_keys(item),
    )
