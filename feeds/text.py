"""HTML to plain text: tags stripped, entities decoded, scripts and styles dropped, whitespace folded.

Regular expressions rather than an HTML parser: this runs on every entry, and the output is plain text,
so all that matters is that no markup survives, not that the document tree is rebuilt. Every pattern is
linear (no nested quantifiers; a quoted attribute value stops at the next ``<``), so hostile input such as
50,000 nested ``<div>``s or an unterminated tag costs one pass, never a recursion or a backtracking storm.
"""

from __future__ import annotations

import html
import re

# Elements whose content is code or chrome, never article text.
_DROP_ELEMENTS = "script|style|noscript|iframe|object|embed|svg|math|template|head|textarea|select"
_DROPPED = re.compile(rf"<({_DROP_ELEMENTS})\b[^>]*>.*?(?:</\1\s*>|\Z)", re.IGNORECASE | re.DOTALL)
_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)|<!\[CDATA\[|\]\]>|<[!?][^<>]*>?", re.DOTALL)
# A start or end tag whose closing ">" may be missing (the tag then ends at the next "<").
_TAG_BODY = r"""(?:[^<>"']|"[^"<]*"|'[^'<]*')*>?"""
_BLOCK_TAG = re.compile(
    r"</?(?:p|div|br|li|ul|ol|dl|dt|dd|h[1-6]|tr|td|th|table|blockquote|section|article|aside|nav|"
    rf"figure|figcaption|header|footer|pre|hr|address|details|summary|main)\b{_TAG_BODY}",
    re.IGNORECASE,
)
_TAG = re.compile(rf"</?[a-zA-Z][^\s/<>]*{_TAG_BODY}")
# Line breaks in the HTML source. In HTML they are plain whitespace (only block elements and <br> break
# lines), and CMSs wrap their output at a fixed width, so keeping them split sentences into paragraphs.
_SOURCE_BREAKS = re.compile(r"\r\n?|\n")
# After decoding, text that still looks like markup came from double-escaped HTML ("&amp;lt;p&amp;gt;").
_MARKUP_LEFT = re.compile(r"<[a-zA-Z/!?]")
_ENTITY_LEFT = re.compile(r"&(?:[a-zA-Z][a-zA-Z0-9]{1,31}|#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6});")
# C0/C1 controls except tab and newline, lone surrogates and non-characters: never valid in published text.
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]")
_WHITE = r"[ \t\r\f\v\u00a0\u2000-\u200a\u202f\u205f\u3000]"
# Runs to fold into one space; a single plain space (the common case) is not even a match.
_SPACES = re.compile(rf"{_WHITE}{{2,}}|[\t\r\f\v\u00a0\u2000-\u200a\u202f\u205f\u3000]")
_BLANK_LINES = re.compile(r" ?\n[ \n]*")

# HTML larger than this many times the output limit is cut before stripping: the work stays bounded for
# a 5 MB entry, and markup rarely outweighs text by more than this.
_INPUT_FACTOR = 16
_MIN_INPUT_WINDOW = 64 * 1024
# The first window read (times the output limit; see html_to_text), and how far past the limit its text
# must reach to be used: a window's last characters may be an entity or a space cut in two.
_FIRST_WINDOW = 2
_MIN_FIRST_WINDOW = 4096
_WINDOW_MARGIN = 64


def clean_text(value: str) -> str:
    """``value`` with control characters, lone surrogates and non-characters removed."""
    return _UNPRINTABLE.sub("", value)


def _strip_markup(fragment: str) -> str:
    text = _DROPPED.sub(" ", fragment)
    if "<!" in text or "<?" in text:
        text = _COMMENT.sub(" ", text)
    # Only text with block markup is laid out as HTML: without any (plain text, or text with a link or
    # two), its line breaks are all the paragraph structure there is, and condense joins the wrapped ones.
    if ("\n" in text or "\r" in text) and _BLOCK_TAG.search(text):
        text = _SOURCE_BREAKS.sub(" ", text)
    text = _BLOCK_TAG.sub("\n", text)
    text = _TAG.sub("", text)
    return html.unescape(text) if "&" in text else text


def html_to_text(fragment: str, max_chars: int | None = None) -> str:
    """Plain text of an HTML fragment: no tags, entities decoded, paragraph breaks kept as newlines,
    other whitespace folded (in a fragment with block markup, a line break of the source is whitespace, as
    in a browser); at most ``max_chars`` characters, cut at a word boundary when there is one.

    With ``max_chars``, only as much of the fragment is read as that text needs (a whole article's HTML was
    stripped to keep its first few thousand characters): a window of ``_FIRST_WINDOW`` times ``max_chars``,
    growing fourfold while its text falls short, up to ``_INPUT_FACTOR`` times. A window ends before a tag,
    so what it renders is the start of what the whole fragment renders.
    """
    if not fragment:
        return ""
    if max_chars is None:
        return _render(fragment)
    limit = max(_MIN_INPUT_WINDOW, max_chars * _INPUT_FACTOR)
    window = min(max(_MIN_FIRST_WINDOW, max_chars * _FIRST_WINDOW), limit)
    while True:
        if len(fragment) <= window:
            text = _render(fragment)
            break
        part = fragment[:window]
        # End before a tag (escaped or not): a tag cut in two could leave its attributes (a data: URI) as text.
        end = max(part.rfind("<"), part.rfind("&lt;"))
        text = _render(part[:end] if end >= 0 else part)
        if len(text) > max_chars + _WINDOW_MARGIN or window == limit:
            break
        window = min(window * 4, limit)
    return _cut(text, max_chars)


def plain_text(value: str, max_chars: int | None = None) -> str:
    """``value`` read as text, not HTML (a JSON Feed's ``content_text``): no entity decoded and no tag
    stripped, so "&copy=2" in a link and "the <b> tag" stay as written; whitespace and unprintable
    characters as in ``html_to_text``, and cut the same way."""
    if max_chars is None:
        return _tidy(value)
    return _cut(_tidy(value[: max(_MIN_INPUT_WINDOW, max_chars * _INPUT_FACTOR)]), max_chars)


def _cut(text: str, max_chars: int) -> str:
    """At most ``max_chars`` characters of ``text``, cut at a word boundary when there is one."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    space = max(cut.rfind(" "), cut.rfind("\n"))
    return (cut[:space] if space > max_chars // 2 else cut).rstrip()


def _render(fragment: str) -> str:
    text = fragment
    # Three rounds cover HTML escaped once ("&lt;p&gt;", undone by the feed parser), twice and thrice.
    for _ in range(3):
        if "<" not in text and "&" not in text:
            break
        text = _strip_markup(text)
        if not _MARKUP_LEFT.search(text):
            if "&" in text and _ENTITY_LEFT.search(text):
                text = html.unescape(text)  # "&amp;amp;" and "&amp;#8217;": escaped once too often
            break
    else:
        # Still markup after three decodings: treat what is left as text, but make sure no tag survives.
        text = _TAG.sub("", text)
    return _tidy(text)


def _tidy(text: str) -> str:
    """Unprintable characters out, runs of spaces and of blank lines folded, the ends stripped."""
    text = _UNPRINTABLE.sub("", text)
    text = _SPACES.sub(" ", text)
    if "\n" in text:
        text = _BLANK_LINES.sub("\n", text)
    return text.strip(" \n")
