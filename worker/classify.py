"""Topic classification: a pure function of an item's text and the topic definitions in config/topics.yaml.

PLACEHOLDER implementation (plain phrase matching); the real rule engine replaces it behind the same API.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from pydantic import BaseModel, Field

from livebrief.errors import ConfigError


class Classification(BaseModel):
    topics: list[str] = Field(default_factory=list, description="topics at or above their threshold")
    scores: dict[str, float] = Field(default_factory=dict, description="topic -> score in [0, 1]")
    evidence: dict[str, list[str]] = Field(default_factory=dict, description="topic -> matched phrases")


class TopicSet:
    """Compiled topic definitions; build once with ``load_topics`` and share."""

    def __init__(self, patterns: dict[str, re.Pattern[str]]) -> None:
        self.patterns = patterns

    @property
    def names(self) -> list[str]:
        return list(self.patterns)


def load_topics(path: Path) -> TopicSet:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(str(path), [f"cannot read topics: {exc}"]) from exc
    patterns = {}
    for name, spec in (data.get("topics") or {}).items():
        phrases = [p for p in spec.get("phrases", [])]
        patterns[name] = re.compile(r"\b(" + "|".join(re.escape(p) for p in phrases) + r")\b", re.I)
    return TopicSet(patterns)


def classify(title: str, text: str, topics: TopicSet) -> Classification:
    result = Classification()
    blob = f"{title}\n{text}"
    for name, pattern in topics.patterns.items():
        found = sorted({m.group(0).lower() for m in pattern.finditer(blob)})
        score = 1.0 if found else 0.0
        result.scores[name] = score
        if found:
            result.topics.append(name)
            result.evidence[name] = found
    return result
