"""Character folding for the text stages (classify, condense)."""

from __future__ import annotations

__all__ = ["fold"]


def fold(text: str, pairs: tuple[tuple[str, str], ...]) -> str:
    """``text`` with each ``old`` of ``pairs`` replaced by its ``new``, in order.

    ``str.translate`` with a mapping looks every character of the text up in a dictionary: on a
    paragraph of news it took ~24 us, a ``str.replace`` per mapped character under 1 us.
    """
    for old, new in pairs:
        if old in text:
            text = text.replace(old, new)
    return text
