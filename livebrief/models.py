"""The data that crosses a boundary: ``Item`` (feeds to worker, through RQ) and ``Entry`` (worker to the world).

``Entry``'s JSON Schema is a public contract: ``livebrief schema`` prints it and ``schema/entry.schema.json``
in the repository is generated from this model (a test keeps the two equal).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ITEM_SCHEMA_VERSION = 1
ENTRY_SCHEMA_VERSION = 1


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class Item(BaseModel):
    """One normalised update from one feed: small, JSON-serialisable, versioned (``v``)."""

    model_config = ConfigDict(frozen=True)

    v: int = ITEM_SCHEMA_VERSION
    id: str = Field(description="stable id: hash of feed id and guid (else link, else title)")
    feed: str = Field(description="id of the feed in the configuration")
    outlet: str = Field(description="the outlet's display name")
    guid: str | None = None
    url: str | None = Field(default=None, description="canonical link, tracking parameters removed")
    title: str = ""
    text: str = Field(default="", description="plain text: HTML stripped, entities decoded")
    published: datetime | None = None
    fetched: datetime
    content_hash: str = Field(description="hash of title and text; changes when the content does")
    # Wire (ninjs) fields; None for RSS/Atom items.
    version: int | None = Field(default=None, description="wire version; an older one never replaces a newer")
    pubstatus: Literal["usable", "withheld", "canceled"] | None = Field(
        default=None, description="'canceled'/'withheld' withdraws the item's entry"
    )
    embargoed: datetime | None = Field(default=None, description="not published before this time")
    urgency: int | None = Field(default=None, description="ninjs urgency, 1 (most urgent) to 9")
    subjects: list[str] = Field(default_factory=list, description="wire subject names")
    located: str | None = None

    @property
    def withdrawn(self) -> bool:
        return self.pubstatus in ("canceled", "withheld")

    @field_validator("published", "fetched", "embargoed")
    @classmethod
    def _to_utc(cls, value: datetime | None) -> datetime | None:
        return _utc(value)


class Source(BaseModel):
    """One outlet's report that an entry draws on."""

    feed: str
    name: str
    url: str | None = None
    published: datetime | None = None

    @field_validator("published")
    @classmethod
    def _to_utc(cls, value: datetime | None) -> datetime | None:
        return _utc(value)


EntryStatus = Literal["new", "updated", "withdrawn"]


class Entry(BaseModel):
    """A briefing entry: one per story, re-published with ``version`` + 1 when the story gains a source."""

    id: str = Field(description="stable per story")
    version: int = Field(ge=1, description="1 for a new story, grows with each update")
    status: EntryStatus = Field(
        default="new", description="'new' for version 1, 'updated' when a story gains a source"
    )
    headline: str
    summary: str
    topics: list[str] = Field(default_factory=list)
    scores: dict[str, float] = Field(default_factory=dict)
    evidence: dict[str, list[str]] = Field(
        default_factory=dict, description="topic -> phrases that produced its score"
    )
    sources: list[Source]
    published: datetime | None = Field(description="earliest published time among the sources")
    updated: datetime = Field(description="when this version was made")
    schema_version: int = ENTRY_SCHEMA_VERSION

    @field_validator("published", "updated")
    @classmethod
    def _to_utc(cls, value: datetime | None) -> datetime | None:
        return _utc(value)
