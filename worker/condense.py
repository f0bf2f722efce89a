"""Condensation: a clean headline and a short summary made only of whole sentences of the source.

PLACEHOLDER implementation; the real one replaces it behind the same API.
"""

from __future__ import annotations

import re

from pydantic import BaseModel


class Condensed(BaseModel):
    headline: str
    summary: str


_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def clean_headline(title: str, outlet: str | None = None) -> str:
    return re.sub(r"\s+[-|–—]\s+[^-|–—]{2,40}$", "", title.strip())


def condense(title: str, text: str, outlet: str | None = None, max_chars: int = 280) -> Condensed:
    summary = ""
    for sentence in _SENTENCE.split(text.strip()):
        candidate = f"{summary} {sentence}".strip()
        if len(candidate) > max_chars:
            break
        summary = candidate
    return Condensed(headline=clean_headline(title, outlet), summary=summary)
