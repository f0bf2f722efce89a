"""Before a feed body reaches an XML parser: decode it the right way, and refuse what is unsafe or no feed.

``prepare_body`` turns fetched bytes into text (HTTP charset, byte-order mark, XML declaration and the
bytes themselves weighed against each other), removes characters XML forbids, and scans the prolog, the
part before the root element, where a DTD lives. Any DTD with an internal subset or an external
identifier is refused with ``UnsafeFeedError`` (billion laughs, quadratic blowup, XXE, remote and
parameter-entity DTDs), so no entity is ever declared, expanded, read from a file or fetched. The one
exception is the well-known Netscape RSS 0.91 DOCTYPE, which carries no subset and is simply dropped.
HTML pages, empty bodies and binary data are refused with ``NotAFeedError`` saying which it was.

Every step is one linear pass over the text at C speed; the prolog scan reads only the prolog.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from livebrief.errors import NotAFeedError, UnsafeFeedError

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# "<?" or "<x" in a UTF-16/32 encoding without a byte-order mark.
_WIDE_WITHOUT_BOM = (
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00<\x00", "utf-16-be"),
    (b"<\x00", "utf-16-le"),
)
_XML_DECL_ENCODING = re.compile(rb"""^\s*<\?xml[^>]{0,200}?encoding\s*=\s*["']([A-Za-z0-9._:-]{1,40})["']""")
_CHARSET_PARAM = re.compile(r"""charset\s*=\s*["']?([A-Za-z0-9._:-]{1,40})""", re.IGNORECASE)
# Labels that in practice mean windows-1252, as browsers treat them (WHATWG Encoding Standard).
_MEANS_CP1252 = {"ascii", "latin-1", "iso8859-1"}
# Characters XML 1.0 forbids; common in the wild (NUL, ESC colour codes) and fatal to a strict parser.
_XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_TERMINAL_ESCAPE = re.compile(r"\x1b\[[0-9;?]{0,32}[ -/]{0,4}[@-~]")
_DECLARED_ENCODING = re.compile(r"""^(<\?xml[^>]*?encoding\s*=\s*)["'][^"']*["']""")
_ROOT_NAME = re.compile(r"<([^\W\d][\w.:-]*)")
_LITERAL = r"""(?:"[^"]*"|'[^']*')"""
_DOCTYPE = re.compile(
    rf"<!DOCTYPE\s+(?P<name>[^\s>\[]+)(?:\s+(?P<kind>SYSTEM|PUBLIC)\s*(?P<id>{_LITERAL})(?:\s*{_LITERAL})?)?\s*>",
    re.IGNORECASE,
)
_FEED_START = re.compile(r"<\?xml\b|<(?:rss|feed|rdf:RDF|RDF)\b")
_AUTODISCOVERY = re.compile(
    r"""<link\b(?=[^>]*\brel=["']?alternate)(?=[^>]*\btype=["']?application/(?:rss|atom)\+xml)"""
    r"""[^>]*\bhref=["']?([^"'\s>]{1,500})""",
    re.IGNORECASE,
)
_NETSCAPE_RSS_091 = "-//netscape communications//dtd rss 0.91//en"
# How far into the body a feed may start after junk (a PHP warning, a stray BOM-less byte run).
_JUNK_WINDOW = 4096


@dataclass
class PreparedBody:
    """A body decoded and checked, ready for a parser."""

    kind: Literal["xml", "json"]
    text: str
    encoding: str
    root: str | None = None
    doctype_version: str | None = None  # "rss091n" when the Netscape RSS 0.91 DOCTYPE was present
    warnings: list[str] = field(default_factory=list)


def xml_bytes(text: str) -> bytes:
    """Decoded XML as UTF-8 bytes, its XML declaration saying so."""
    if text.startswith("<?xml"):
        text = _DECLARED_ENCODING.sub(r'\1"utf-8"', text, count=1)
    return text.encode("utf-8", "replace")


def charset_from_content_type(content_type: str | None) -> str | None:
    if not content_type:
        return None
    match = _CHARSET_PARAM.search(content_type)
    return _codec_name(match.group(1)) if match else None


@lru_cache(maxsize=64)
def _codec_name(label: str) -> str | None:
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return None
    return "cp1252" if name in _MEANS_CP1252 else name


@lru_cache(maxsize=64)
def _is_wide(codec: str) -> bool:
    return codec.startswith(("utf-16", "utf-32"))


def _guess_legacy(body: bytes) -> str | None:
    """windows-1251 or windows-1252 for bytes that are not UTF-8, when the bytes say so clearly; else None.

    Cyrillic text in windows-1251 is runs of bytes from 0xC0 up (whole words); Western text in
    windows-1252 has mostly isolated high bytes (an accent inside an ASCII word). Anything else (random
    corruption of UTF-8) gets no guess.
    """
    runs = re.findall(rb"[\x80-\xff]+", body[:65536])
    if not runs:
        return None
    total = sum(len(run) for run in runs)
    punctuation = b"\x85\x91\x92\x93\x94\x95\x96\x97\xa0\xab\xbb\xb9"
    letters = sum(len(run.translate(None, punctuation)) for run in runs)
    cyrillic = sum(len(run.translate(None, _NOT_CP1251_LETTER)) for run in runs)
    if letters and cyrillic / letters >= 0.9 and total / len(runs) >= 2.5:
        return "cp1251"
    if sum(1 for run in runs if len(run) == 1) / len(runs) >= 0.7:
        return "cp1252"
    return None


# Bytes that are not letters in windows-1251 (deleted with bytes.translate when counting letters).
_NOT_CP1251_LETTER = bytes(
    b for b in range(256) if not (b >= 0xC0 or b in b"\xa1\xa2\xa5\xa8\xaa\xaf\xb2\xb3\xb4\xb8\xba\xbf")
)


def decode_body(body: bytes, content_type: str | None = None) -> tuple[str, str, list[str]]:
    """``(text, codec, warnings)`` for a fetched body.

    Order of evidence: a byte-order mark; then bytes that are valid UTF-8 (and not plain ASCII) are UTF-8
    whatever the labels say, since legacy-encoded text practically never is; then the HTTP charset, then
    the XML declaration, but for a Latin label over bytes that are clearly windows-1251 (every byte decodes
    as windows-1252, into mojibake); for undecodable bytes labelled UTF-8, windows-1251 or -1252 when the
    bytes make it clear, else UTF-8 with U+FFFD for the bad bytes. Never raises.
    """
    for bom, codec in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(codec, "replace"), codec, []
    for prefix, codec in _WIDE_WITHOUT_BOM:
        if body.startswith(prefix):
            return body.decode(codec, "replace"), codec, []
    declared: list[str] = []
    for label in (charset_from_content_type(content_type), _xml_declared(body)):
        # A wide encoding declared in bytes that are evidently not wide is a wrong label.
        if label and not _is_wide(label) and label not in declared:
            declared.append(label)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        if declared and declared[0] != "utf-8" and not body.isascii():
            return text, "utf-8", [f"declared {declared[0]} but the bytes are UTF-8"]
        return text, "utf-8", []
    guess: str | None = None
    guessed = False
    for codec in declared:
        if codec == "utf-8":
            continue
        if codec == "cp1252" and not guessed:
            guess, guessed = _guess_legacy(body), True
        if codec == "cp1252" and guess == "cp1251":
            # Every byte decodes as windows-1252, so a Latin label (Apache's default charset, say) over a
            # Cyrillic feed would always win, into mojibake: the document's own declaration, or the
            # guess, goes first.
            continue
        try:
            text = body.decode(codec)
        except (UnicodeError, LookupError):  # UnicodeError: a codec that decodes nothing ("undefined")
            continue
        if codec != declared[0]:
            return text, codec, [f"declared {declared[0]} over HTTP but {codec} in the document; read as {codec}"]
        return text, codec, []
    label = declared[0] if declared else "no charset"
    if not guessed:
        guess = _guess_legacy(body)
    if guess:
        return body.decode(guess, "replace"), guess, [f"declared {label} but the bytes look like {guess}"]
    return body.decode("utf-8", "replace"), "utf-8", [f"invalid bytes for {label}, replaced with U+FFFD"]


def _xml_declared(body: bytes) -> str | None:
    match = _XML_DECL_ENCODING.match(body[:256])
    return _codec_name(match.group(1).decode("ascii")) if match else None


def prepare_body(body: bytes, feed_id: str, content_type: str | None = None) -> PreparedBody:
    """Decode ``body`` and check it is a feed that is safe to parse.

    Raises ``NotAFeedError`` (empty, binary, HTML, plain text) or ``UnsafeFeedError`` (a DTD).
    """
    if not body or body.isspace():
        raise NotAFeedError(feed_id, "the body is empty" if not body else "the body is only whitespace")
    text, codec, warnings = decode_body(body, content_type)
    text = text.lstrip()
    if text.startswith(("{", "[")):
        return PreparedBody("json", text, codec, warnings=warnings)
    if not text.startswith("<"):
        start = _FEED_START.search(text, 0, _JUNK_WINDOW)
        if start is None:
            raise NotAFeedError(feed_id, _describe_non_xml(body, text))
        warnings.append(f"skipped {start.start()} characters before the document")
        text = text[start.start() :]
    if _XML_ILLEGAL.search(text):
        if "\x1b" in text:
            text = _TERMINAL_ESCAPE.sub("", text)
        text = _XML_ILLEGAL.sub("", text)
        warnings.append("removed characters XML does not allow")
    text, root, version = _check_prolog(text, feed_id)
    return PreparedBody("xml", text, codec, root=root, doctype_version=version, warnings=warnings)


def _describe_non_xml(body: bytes, text: str) -> str:
    if body.startswith(b"\x1f\x8b"):
        return "the body is gzip data: it was not decompressed"
    head = text[:512]
    if "\ufffd" in head or any(ch < " " and ch not in "\t\r\n" for ch in head):
        return f"the body is binary data (starts with bytes {body[:8].hex(' ')}), not XML or JSON"
    return f"the body is plain text, not XML or JSON (starts with {text[:40]!r})"


def _check_prolog(text: str, feed_id: str) -> tuple[str, str | None, str | None]:
    """``(text, root element name, version hint)``; the DOCTYPE removed if it is the harmless kind."""
    pos, end, version = 0, len(text), None
    while pos < end:
        while pos < end and text[pos] in " \t\r\n":
            pos += 1
        if text.startswith("<?", pos):
            close = text.find("?>", pos)
            pos = end if close < 0 else close + 2
        elif text.startswith("<!--", pos):
            close = text.find("-->", pos)
            pos = end if close < 0 else close + 3
        elif text[pos : pos + 9].upper() == "<!DOCTYPE":
            close = text.find(">", pos)
            declaration = text[pos : end if close < 0 else close + 1]
            version = _check_doctype(declaration, text, feed_id)
            text = text[:pos] + text[pos + len(declaration) :]
            end = len(text)
        elif text.startswith("<!", pos):
            raise UnsafeFeedError(
                feed_id,
                f"the document has a markup declaration {text[pos : pos + 12]!r} before its root element; refused",
            )
        else:
            match = _ROOT_NAME.match(text, pos)
            root = match.group(1) if match else None
            if root and root.lower() == "html":
                raise NotAFeedError(feed_id, _html_reason(text))
            return text, root, version
    return text, None, version


def _check_doctype(declaration: str, text: str, feed_id: str) -> str | None:
    if declaration[9:].lstrip()[:4].lower() == "html":
        raise NotAFeedError(feed_id, _html_reason(text))
    if "[" in declaration:
        what = "entity declarations" if text.find("<!ENTITY", 0, 1 << 20) >= 0 else "an internal DTD subset"
        raise UnsafeFeedError(
            feed_id,
            f"the document declares {what} in its DOCTYPE; DTDs are refused so "
            "no entity is expanded and nothing is read or fetched",
        )
    match = _DOCTYPE.fullmatch(declaration)
    if match is None:
        raise UnsafeFeedError(feed_id, f"the document has an unrecognised DOCTYPE {declaration[:80]!r}; refused")
    if match["kind"] is None:
        return None  # "<!DOCTYPE rss>" names the root element and nothing else
    identifier = match["id"][1:-1]
    if match["kind"].upper() == "PUBLIC" and identifier.lower() == _NETSCAPE_RSS_091:
        return "rss091n"
    raise UnsafeFeedError(
        feed_id,
        f"the document refers to an external DTD ({match['kind']} {identifier!r}); DTDs are refused and never fetched",
    )


def _html_reason(text: str) -> str:
    link = _AUTODISCOVERY.search(text, 0, 65536)
    hint = f"; the page advertises a feed at {link.group(1)!r}" if link else ""
    return f"the body is an HTML page, not a feed{hint}"
