"""The public contracts: the entry JSON Schema in the repo is the one the model generates."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from livebrief.models import Entry, Item, Source
from tests.conftest import REPO


def test_published_entry_schema_matches_the_model() -> None:
    committed = json.loads((REPO / "schema" / "entry.schema.json").read_text())
    assert committed == Entry.model_json_schema(), "regenerate with: livebrief schema > schema/entry.schema.json"


def test_entry_json_has_the_documented_fields() -> None:
    entry = Entry(id="s1", version=1, headline="h", summary="s", sources=[Source(feed="f", name="F")],
                  published=None, updated=datetime(2022, 3, 29, tzinfo=UTC))
    data = json.loads(entry.model_dump_json())
    assert {"id", "version", "status", "headline", "summary", "topics", "scores", "sources", "published",
            "updated"} <= set(data)
    assert set(data["sources"][0]) == {"feed", "name", "url", "published"}


def test_naive_times_are_taken_as_utc() -> None:
    item = Item(id="i", feed="f", outlet="F", fetched=datetime(2022, 3, 29, 6, 0), content_hash="x",
                published=datetime(2022, 3, 29, 5, 0))
    assert item.fetched.tzinfo is UTC and item.published is not None and item.published.tzinfo is UTC
