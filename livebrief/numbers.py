"""Whole numbers as protocols and feeds write them: ASCII digits only.

``str.isdigit`` is true for '²' and '①', which ``int`` refuses, and ``int`` refuses more than 4,300
digits: a check with ``isdigit`` and then ``int`` raised ValueError on such a header or feed field.
"""

from __future__ import annotations


def ascii_int(text: str, max_digits: int = 18) -> int | None:
    """``text`` (surrounding blanks ignored) as a non-negative int when it is 1 to ``max_digits`` ASCII
    digits, else None."""
    text = text.strip()
    if not 0 < len(text) <= max_digits or not text.isascii() or not text.isdigit():
        return None
    return int(text)
