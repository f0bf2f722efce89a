"""HTML to plain text: tags stripped, entities decoded, scripts and styles dropped, whitespace folded."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

_DROP = {"script", "style", "noscript", "iframe", "object", "embed", "svg", "math", "template", "head"}
_BLOCK = {"p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table",
          "blockquote", "section", "article", "figure", "figcaption", "header", "footer", "pre", "hr"}
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROP:
            self._skip += 1
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROP:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(fragment: str, max_chars: int | None = None) -> str:
    """Plain text of an HTML fragment; paragraph breaks kept as newlines, everything else folded."""
    if not fragment:
        return ""
    if "<" not in fragment and "&" not in fragment:
        text = fragment
    else:
        parser = _TextExtractor()
        parser.feed(fragment)
        parser.close()
        text = "".join(parser.parts)
        # Entities double-escaped by the feed ("&amp;amp;") survive one decode; decode once more.
        if "&" in text:
            text = html.unescape(text)
    text = _CONTROL.sub("", text)
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    text = "\n".join(line for line in lines if line)
    if max_chars is not None and len(text) > max_chars:
        text = text[:max_chars].rsplit(" ", 1)[0]
    return text
