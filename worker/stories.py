"""Story assignment: which items start a story, which join one, which are already known. Pure.

Given a batch of prepared items and what the Redis index said about them (``IndexView``), ``plan_batch``
decides, in order:

1. seen:           the item (same id, same content) was published before -> skipped; an older wire
                   ``version`` than the one published -> skipped;
   changed:        same id, changed content -> its story is re-published as ``updated`` when the change
                   is material (headline, summary or topics of the entry change), else only remembered;
   killed:         ``pubstatus`` canceled/withheld -> the story is re-published as ``withdrawn`` (it was the
                   item's own story), or ``updated`` without that source (other outlets still report it);
                   past the story retention only the long-term marks (``worker/marks.py``) are left:
                   the same id with the same content is still skipped;
2. exact:          its canonical URL or guid was published before (its long-term mark is set, or an
                   earlier item of the batch has it) -> dropped, within the story retention and past it;
3. near-duplicate: its text signature matches a story's (syndicated copy, small edit) -> joins it;
4. same story:     its story features score >= threshold against a story within the window, and the
                   story has no item from the same feed yet -> joins it;
5. otherwise it starts a new story.
A story touched by several items of the batch is published once, with every new source.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from pydantic import BaseModel

from livebrief.config import WorkerConfig
from livebrief.models import Entry, Source
from worker.dedupe import (
    StoryFeatures,
    TextSignature,
    is_near_duplicate,
    merge_features,
    story_scorer,
)
from worker.prepare import Prepared

MAX_STORIES_PER_TERM = 8
# A story is a same-story candidate when it is listed under at least this many of the item's index terms
# (under all of them when the item has fewer). Scoring needs ``dedupe.MIN_SHARED`` shared terms, and a
# story met under one index term alone almost never reaches the threshold: over the corpus replayed
# online (``worker/evaluate_dedupe.py``, 12 h window) this scores 16k candidates instead of 206k, and
# every merge is the same. Each candidate costs a record read, a check in the commit and a score.
MIN_TERM_HITS = 2


class StoryRecord(BaseModel):
    """What the index keeps per story (JSON in ``P:story:<id>``)."""

    entry: Entry
    signature: TextSignature | None = None
    features: StoryFeatures
    feeds: list[str] = []
    items: list[str] = []
    lead_item: str | None = None


class StoryHandle:
    """A story as the plan reads it: what deciding needs at hand (``status``, ``feeds``, ``features``,
    ``signature``), the whole record only when the story is joined or changed (``record``, decoded on
    first use: most candidates are only scored; see ``worker/records.py``)."""

    __slots__ = ("status", "feeds", "features", "signature", "_record", "_load")

    def __init__(self, status: str, feeds: list[str], features: StoryFeatures, signature: TextSignature | None,
                 load: Callable[[], StoryRecord] | None = None) -> None:
        self.status = status
        self.feeds = feeds
        self.features = features
        self.signature = signature
        self._record: StoryRecord | None = None
        self._load = load

    @classmethod
    def of(cls, record: StoryRecord) -> StoryHandle:
        handle = cls(record.entry.status, record.feeds, record.features, record.signature)
        handle._record = record
        return handle

    @property
    def record(self) -> StoryRecord:
        record = self._record
        if record is None:
            assert self._load is not None
            # Two threads may both decode it: the same record either way.
            record = self._record = self._load()
        return record


@dataclass(frozen=True)
class SeenMark:
    """What the index remembers of a published item (a field of the packed index, ``worker/packed_index.py``)."""

    content_hash: str
    story_id: str
    version: int | None = None

    def encode(self) -> str:
        return f"{self.content_hash} {self.story_id} {'' if self.version is None else self.version}".rstrip()

    @classmethod
    def decode(cls, value: str) -> SeenMark:
        parts = value.split(" ")
        version = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else None
        return cls(parts[0], parts[1] if len(parts) > 1 else "", version)


@dataclass
class IndexView:
    """The index as read at the start of the transaction."""

    seen: dict[str, SeenMark] = field(default_factory=dict)
    lsh: dict[tuple[int, str], str] = field(default_factory=dict)  # (band, bucket) -> story id
    terms: dict[str, list[str]] = field(default_factory=dict)  # term -> recent story ids
    stories: dict[str, StoryHandle] = field(default_factory=dict)
    remembered: set[int] = field(default_factory=set)  # long-term marks found (worker/marks.py)


@dataclass
class BatchPlan:
    """What to write: the stories to (re)publish and the index entries that go with them."""

    published: dict[str, StoryRecord] = field(default_factory=dict)  # story id -> new state
    # Published updates whose headline, summary and topics are the version before's: a source joined or left.
    sources_only: set[str] = field(default_factory=set)
    stored: dict[str, StoryRecord] = field(default_factory=dict)  # changed but not re-published
    seen: dict[str, SeenMark] = field(default_factory=dict)
    lsh: dict[tuple[int, str], str] = field(default_factory=dict)
    terms: dict[str, list[str]] = field(default_factory=dict)
    marks: list[int] = field(default_factory=list)  # long-term marks of the items and exact keys in ``seen``
    outcomes: dict[str, str] = field(default_factory=dict)  # item id -> what happened, for logs/metrics
    # Per published source: (feed id, seconds from the source's published time to now, first with the story)
    freshness: list[tuple[str, float | None, bool]] = field(default_factory=list)

    @property
    def entries(self) -> list[Entry]:
        return [record.entry for record in self.published.values()]


_Id = TypeVar("_Id", bound=Hashable)


def term_candidates(item_terms: Iterable[str], terms: Mapping[str, Iterable[_Id]]) -> list[_Id]:
    """Stories listed under at least ``MIN_TERM_HITS`` of an item's index terms (all of them, when the
    item has fewer), in the order first met."""
    hits: dict[_Id, int] = {}
    count = 0
    for term in item_terms:
        count += 1
        for story_id in terms.get(term, ()):
            hits[story_id] = hits.get(story_id, 0) + 1
    need = min(MIN_TERM_HITS, count)
    return [story_id for story_id, n in hits.items() if n >= need]


def candidate_story_ids(prepared: list[Prepared], view: IndexView) -> set[str]:
    """Stories the batch may touch: found through seen marks, LSH buckets and terms."""
    ids: set[str] = set()
    for p in prepared:
        if p.item.id in view.seen:
            ids.add(view.seen[p.item.id].story_id)
        ids.update(view.lsh[b] for b in p.buckets if b in view.lsh)
        ids.update(term_candidates(p.terms, view.terms))
    return ids


def _source(p: Prepared) -> Source:
    return Source(feed=p.item.feed, name=p.item.outlet, url=p.item.url, published=p.item.published)


def new_story(p: Prepared, now: datetime) -> StoryRecord:
    """The story ``p`` starts when it matches none: the item's own entry, version 1."""
    c = p.classification
    entry = Entry(
        id=f"s{p.item.id}",
        version=1,
        status="new",
        headline=p.condensed.headline,
        summary=p.condensed.summary,
        topics=list(c.topics),
        scores=dict(c.scores),
        evidence={t: list(c.evidence.get(t, [])) for t in c.topics},
        sources=[_source(p)],
        published=p.item.published or p.item.fetched,
        updated=now,
    )
    return StoryRecord(
        entry=entry, signature=p.signature, features=p.features, feeds=[p.item.feed], items=[p.item.id],
        lead_item=p.item.id,
    )


def _join(record: StoryRecord, p: Prepared) -> StoryRecord:
    """The story with ``p`` added as a source: topics united, scores maxed, headline kept unless empty."""
    entry = record.entry
    sources = list(entry.sources)
    if not any(s.feed == p.item.feed and s.url == p.item.url for s in sources):
        sources.append(_source(p))
    scores = dict(entry.scores)
    for topic, score in p.classification.scores.items():
        scores[topic] = max(score, scores.get(topic, 0.0))
    topics = list(dict.fromkeys([*entry.topics, *p.classification.topics]))
    evidence = {t: list(v) for t, v in entry.evidence.items()}
    for topic in p.classification.topics:
        evidence[topic] = list(dict.fromkeys([*evidence.get(topic, []), *p.classification.evidence.get(topic, [])]))
    published = [d for d in (entry.published, p.item.published) if d is not None]
    summary = entry.summary or p.condensed.summary
    new_entry = entry.model_copy(
        update={
            "sources": sources, "scores": scores, "topics": topics, "evidence": evidence,
            "published": min(published) if published else None, "summary": summary,
        }
    )
    return record.model_copy(
        update={
            "entry": new_entry,
            "features": merge_features(record.features, p.features),
            "feeds": list(dict.fromkeys([*record.feeds, p.item.feed])),
            "items": list(dict.fromkeys([*record.items, p.item.id])),
        }
    )


def _refresh(record: StoryRecord, p: Prepared) -> StoryRecord:
    """The story after its item ``p`` changed content: the lead item's text replaces headline, summary
    and classification; another source's edit changes nothing a reader sees."""
    if record.lead_item != p.item.id:
        return record
    c = p.classification
    entry = record.entry.model_copy(update={
        "headline": p.condensed.headline, "summary": p.condensed.summary, "topics": list(c.topics),
        "scores": dict(c.scores), "evidence": {t: list(c.evidence.get(t, [])) for t in c.topics},
    })
    return record.model_copy(update={"entry": entry, "signature": p.signature, "features": p.features})


def _material(before: Entry, after: Entry) -> bool:
    return (before.headline, before.summary, before.topics) != (after.headline, after.summary, after.topics)


def _withdraw(record: StoryRecord, p: Prepared) -> StoryRecord:
    """The story after its item ``p`` was killed: withdrawn when it was the story's lead or only source,
    else the same story without that source."""
    def is_killed(s: Source) -> bool:
        return s.feed == p.item.feed and (p.item.url is None or s.url == p.item.url)

    remaining = [s for s in record.entry.sources if not is_killed(s)]
    if record.lead_item == p.item.id or not remaining:
        entry = record.entry.model_copy(update={"status": "withdrawn", "summary": ""})
    else:
        entry = record.entry.model_copy(update={"sources": remaining})
    return record.model_copy(update={"entry": entry, "items": [i for i in record.items if i != p.item.id]})


def _within_window(story: StoryHandle, p: Prepared, window: float) -> bool:
    return abs(story.features.published - p.published_ts) <= window


def _near_duplicate_story(p: Prepared, lsh: dict[tuple[int, str], str], stories: dict[str, StoryHandle]) -> str | None:
    """The story whose text signature this item's verifies against, among its LSH bucket-mates."""
    if p.signature is None:
        return None
    for bucket in p.buckets:
        story_id = lsh.get(bucket)
        story = stories.get(story_id) if story_id else None
        if (story is not None and story.signature is not None and story.status != "withdrawn"
                and is_near_duplicate(p.signature, story.signature)):
            return story_id
    return None


def plan_batch(prepared: list[Prepared], view: IndexView, settings: WorkerConfig, now: datetime,
               fresh: Mapping[str, StoryRecord] | None = None) -> BatchPlan:
    """Decide every item of the batch against the index view (see the module docstring). ``fresh``: by
    item id, the story each item would start (``new_story``), if built already."""
    plan = BatchPlan()
    stories = dict(view.stories)
    seen = dict(view.seen)
    # URLs and guids the batch has published so far (the index knows earlier ones only as marks).
    exact: dict[tuple[str, str], str] = {}
    lsh = dict(view.lsh)
    # Term lists are replaced, never changed in place (``assign``): the view's own lists can be shared.
    terms = dict(view.terms)
    # In the order first touched, which is the order the entries are published in (a set's order follows
    # string hashing, which changes from process to process).
    touched: dict[str, None] = {}

    def remember(p: Prepared, story_id: str, outcome: str) -> None:
        plan.outcomes[p.item.id] = outcome
        seen[p.item.id] = plan.seen[p.item.id] = SeenMark(p.item.content_hash, story_id, p.item.version)
        plan.marks.append(p.seen_mark)

    def assign(p: Prepared, story_id: str, record: StoryRecord, outcome: str) -> None:
        stories[story_id] = StoryHandle.of(record)
        touched[story_id] = None
        remember(p, story_id, outcome)
        if outcome in ("new_story", "near_duplicate", "same_story"):
            lag = (now - p.item.published).total_seconds() if p.item.published else None
            plan.freshness.append((p.item.feed, lag, outcome == "new_story"))
        for key, key_mark in zip(p.exact, p.exact_marks, strict=True):
            if key not in exact:
                exact[key] = story_id
                plan.marks.append(key_mark)
        for bucket in p.buckets:
            lsh[bucket] = plan.lsh[bucket] = story_id
        for term in p.terms:
            listed = terms.get(term, [])
            if story_id in listed:
                ids = [story_id, *(i for i in listed if i != story_id)][:MAX_STORIES_PER_TERM]
            else:  # a new story, mostly: nothing to take out
                ids = [story_id, *listed[: MAX_STORIES_PER_TERM - 1]]
            terms[term] = plan.terms[term] = ids

    for p in prepared:
        item = p.item
        mark = seen.get(item.id)
        if mark is not None:
            if mark.content_hash == item.content_hash:
                plan.outcomes[item.id] = "seen"
                continue
            if item.version is not None and mark.version is not None and item.version < mark.version:
                plan.outcomes[item.id] = "stale_version"
                continue
            story = stories.get(mark.story_id)
            if story is not None and story.status != "withdrawn":
                record = story.record
                if item.withdrawn:
                    assign(p, mark.story_id, _withdraw(record, p), "withdrawn")
                    continue
                refreshed = _refresh(record, p)
                if _material(record.entry, refreshed.entry):
                    assign(p, mark.story_id, refreshed, "content_changed")
                else:
                    stories[mark.story_id] = StoryHandle.of(refreshed)
                    plan.stored[mark.story_id] = refreshed
                    remember(p, mark.story_id, "unchanged_content")
                continue
        elif p.seen_mark in view.remembered:
            # Published before the story retention: its story is gone, the fact that it was published is not.
            plan.outcomes[item.id] = "seen"
            continue
        if item.withdrawn:
            # A kill of something we never published (or have forgotten): remember it, publish nothing.
            remember(p, mark.story_id if mark else "", "withdrawn_unknown")
            continue
        hit = next((exact[k] for k in p.exact if k in exact), None)
        if hit is None and any(m in view.remembered for m in p.exact_marks):
            hit = ""  # the same URL or guid, published by an earlier batch: dropped, nothing to join
        if hit is not None:
            remember(p, hit, "exact_duplicate")
            continue
        twin = _near_duplicate_story(p, lsh, stories)
        if twin is not None:
            assign(p, twin, _join(stories[twin].record, p), "near_duplicate")
            continue
        best: tuple[float, str] | None = None
        # Stories made or joined earlier in this batch count too: they are in ``stories`` already.
        candidates = term_candidates(p.terms, terms)
        score_against = story_scorer(p.features)
        for story_id in sorted(candidates):
            story = stories.get(story_id)
            if story is None or item.feed in story.feeds or story.status == "withdrawn":
                continue
            if not _within_window(story, p, settings.story_window):
                continue
            score = score_against(story.features)
            if score >= settings.story_threshold and (best is None or score > best[0]):
                best = (score, story_id)
        if best is not None:
            assign(p, best[1], _join(stories[best[1]].record, p), "same_story")
            continue
        record = (fresh.get(item.id) if fresh else None) or new_story(p, now)
        assign(p, record.entry.id, record, "new_story")

    for story_id in touched:
        record = stories[story_id].record
        if story_id in view.stories:
            before = view.stories[story_id].record.entry
            status = "withdrawn" if record.entry.status == "withdrawn" else "updated"
            entry = record.entry.model_copy(update={"version": before.version + 1, "status": status, "updated": now})
            record = record.model_copy(update={"entry": entry})
            if status == "updated" and not _material(before, entry):
                plan.sources_only.add(story_id)
        plan.published[story_id] = record
        plan.stored.pop(story_id, None)
    return plan
