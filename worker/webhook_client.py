"""The HTTP client of webhook deliveries: one kept-alive HTTP/1.1 connection per receiver, per process.

Why a small client of its own on a socket: a delivery job POSTs its entries one after another, and the POST
was about half of a delivery's CPU. To a local receiver, in ``benchmarks/bench_webhooks.py``'s bare loops
on a 2-core VM, httpx (used here first) spent 345-597 us of CPU per POST and ``http.client`` (used here
next) 102-150 us, much of it checking each header and parsing the answer's headers with the ``email``
package; this client 47-71 us. Deliveries need little of HTTP: send one request with a ``Content-Length``
body, read the answer's status and ``Retry-After``, and skip its body when that is cheap, so the
connection can be used again. What the client does:

- a timeout on connecting and on each write, and on the whole answer: a receiver sending it a byte at a
  time, which no timeout per read would catch, cannot keep a worker longer; TLS with certificate and host
  name checks;
- no redirects followed, no proxy from the environment, no compression asked for;
- informational answers (1xx) skipped; the body skipped by its ``Content-Length`` or chunk by chunk, up to
  ``MAX_ANSWER_BYTES``; a larger body, or one that runs to the end of the connection, is not read: the
  connection is closed instead, so a receiver cannot make a worker read megabytes;
- ``Connection: close`` (and HTTP/1.0 without keep-alive) honoured;
- a kept-alive connection the receiver has closed while idle, or that holds bytes the receiver sent past its
  last answer, replaced, and the request sent once more on a fresh one (as ``http.client`` callers here did:
  the same ``webhook-id``, so receivers can drop the repeat); a stray empty line before an answer skipped.

Not thread-safe: RQ runs one job at a time in a worker process. A forked work-horse drops the connections
it inherited and opens its own.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import ssl
import time
from dataclasses import dataclass
from functools import lru_cache
from io import BufferedReader, RawIOBase
from typing import cast
from urllib.parse import quote, unquote, urlsplit

# What is read of a receiver's answer; deliveries only need its status. A larger body is not drained
# (its connection is closed instead), so a receiver cannot make a worker read megabytes.
MAX_ANSWER_BYTES = 64 * 1024
_MAX_LINE = 65536  # longest status, header or chunk-size line read (as http.client)
_MAX_HEADERS = 100  # most header lines in an answer (as http.client)
_MAX_INFORMATIONAL = 10  # most 1xx answers skipped before the final one
_STRAY_LINES = 4  # most empty lines skipped before a status line
_Key = tuple[str, str, int, float]
_STATUS_LINE = re.compile(rb"HTTP/1\.([0-9]) ([1-9][0-9][0-9])(?:[ \t][^\r\n]*)?\r?\n")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,15}")
# The caller's header names (tokens, one per line) and values (no CR, LF or NUL, all on one line), each
# checked in one call: no header or request can be smuggled into the request.
_NAMES = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+(?:\n[!#$%&'*+.^_`|~0-9A-Za-z-]+)*")
_VALUES = re.compile(r"[^\r\n\x00]*")
_SET_BY_CLIENT = frozenset({"host", "content-length", "transfer-encoding", "connection"})
# What a path may hold unescaped in the request line: RFC 3986's reserved and unreserved characters, and
# "%" of escapes already made. Anything else (a space, a control or non-ASCII character) is %-escaped.
_PATH_SAFE = "/?#[]@!$&'()*+,;=:-._~%"


class PostError(Exception):
    """The POST got no HTTP answer (refused, reset, timed out, TLS failure, malformed answer)."""


class ClosedWithoutAnswerError(ConnectionError):
    """The connection ended before any byte of an answer: on a kept-alive connection, most likely closed by
    the receiver while idle, so the request was never handled."""


class BadStatusLineError(PostError):
    """What came back does not start as an HTTP answer. On a kept-alive connection, most likely bytes a
    receiver sent after its previous answer (a body on a 204, say), as ``http.client`` reads it too."""


@dataclass(frozen=True, slots=True)
class Answer:
    """What deliveries read of a receiver's answer: its status, and its ``Retry-After`` (429 and 503 only)."""

    status: int
    retry_after: str | None = None


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str
    port: int
    path: str
    auth: str | None
    host_header: str


@lru_cache(maxsize=256)
def _target(url: str) -> _Target:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PostError(f"not an http(s) URL: {url!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise PostError(f"bad port in {url!r}") from exc
    path = quote((parts.path or "/") + (f"?{parts.query}" if parts.query else ""), safe=_PATH_SAFE)
    auth = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        auth = "Basic " + base64.b64encode(pair).decode("ascii")
    host = parts.hostname
    try:
        host_name = host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise PostError(f"bad host name in {url!r}") from exc
    shown = f"[{host_name}]" if ":" in host_name else host_name  # an IPv6 address
    default = 443 if parts.scheme == "https" else 80
    host_header = shown if port == default else f"{shown}:{port}"
    return _Target(parts.scheme, host, port, path, auth, host_header)


@lru_cache(maxsize=1)
def _tls() -> ssl.SSLContext:
    return ssl.create_default_context()


class _Deadline(RawIOBase):
    """A socket read against a deadline for a whole answer: each read waits at most what is left of it."""

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self.sock, self.timeout = sock, timeout
        self.deadline = float("inf")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        try:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.sock.settimeout(min(left, self.timeout))
            return self.sock.recv_into(buffer)
        except TimeoutError:
            if time.monotonic() >= self.deadline:
                raise TimeoutError(f"no whole answer within {self.timeout:g} s") from None
            raise


class _Connection:
    """One connection to a receiver: its socket and a buffered reader of what it answers."""

    def __init__(self, target: _Target, timeout: float) -> None:
        sock = socket.create_connection((target.host, target.port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if target.scheme == "https":
                sock = _tls().wrap_socket(sock, server_hostname=target.host)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.raw = _Deadline(sock, timeout)
        self.reader = cast(BufferedReader, BufferedReader(self.raw))  # typeshed types it by its raw stream

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


_connections: dict[_Key, _Connection] = {}
_owner = os.getpid()


def _connection(target: _Target, timeout: float) -> tuple[_Connection, bool]:
    """A kept-alive connection to the target (and whether it was used before), or a new one."""
    global _owner
    if os.getpid() != _owner:  # a forked child must not share its parent's sockets
        _connections.clear()
        _owner = os.getpid()
    key = _key(target, timeout)
    conn = _connections.get(key)
    if conn is not None:
        return conn, True
    conn = _connections[key] = _Connection(target, timeout)
    return conn, False


def _key(target: _Target, timeout: float) -> _Key:
    return (target.scheme, target.host, target.port, timeout)


def _drop(target: _Target, timeout: float) -> None:
    conn = _connections.pop(_key(target, timeout), None)
    if conn is not None:
        conn.close()


def _request_head(target: _Target, length: int, headers: dict[str, str]) -> bytes:
    """The request line and headers of a POST of ``length`` bytes; ``PostError`` for a header that could
    break the request (a name that is not a token, a value with CR, LF or NUL, one the client sets)."""
    names_ok = not headers or _NAMES.fullmatch("\n".join(headers)) is not None
    values_ok = _VALUES.fullmatch(" ".join(headers.values())) is not None
    if not (names_ok and values_ok and _SET_BY_CLIENT.isdisjoint(map(str.lower, headers))):
        raise PostError(f"headers not allowed in a request: {sorted(headers)}")
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    try:
        return (f"POST {target.path} HTTP/1.1\r\nHost: {target.host_header}\r\nContent-Length: {length}\r\n"
                f"Accept-Encoding: identity\r\n{lines}\r\n").encode("latin-1")
    except UnicodeEncodeError as exc:
        raise PostError(f"a header value is not Latin-1 text: {exc}") from exc


_FIELDS = (b"content-length", b"transfer-encoding", b"connection", b"retry-after")  # what deliveries read


def _read_fields(reader: BufferedReader) -> dict[bytes, bytes]:
    """Header (or trailer) lines up to the empty one that ends them, keeping the ``_FIELDS``; ``PostError``
    when they end early, a line is too long, or there are too many."""
    fields: dict[bytes, bytes] = {}
    for _ in range(_MAX_HEADERS + 1):
        line = reader.readline(_MAX_LINE + 1)
        if line in (b"\r\n", b"\n"):
            return fields
        if not line.endswith(b"\n"):
            raise PostError("malformed answer: its headers end early or have an overlong line")
        name, colon, value = line.partition(b":")
        name = name.strip().lower()
        if colon and name in _FIELDS:
            value = value.strip()
            if name == b"content-length" and fields.get(name, value) != value:
                value = b"?"  # lengths that disagree: where the body ends is unknown
            fields[name] = value
    raise PostError(f"malformed answer: more than {_MAX_HEADERS} header lines")


def _read_status_line(reader: BufferedReader) -> re.Match[bytes]:
    line = reader.readline(_MAX_LINE + 1)
    for _ in range(_STRAY_LINES):  # a stray line end before the status line, as some servers leave
        if line not in (b"\r\n", b"\n"):
            break
        line = reader.readline(_MAX_LINE + 1)
    if not line:
        raise ClosedWithoutAnswerError("the receiver closed the connection before answering")
    status_line = _STATUS_LINE.fullmatch(line)
    if status_line is None:
        raise BadStatusLineError(f"malformed answer: status line {line[:80]!r}")
    return status_line


def _read_head(reader: BufferedReader) -> tuple[int, int, dict[bytes, bytes]]:
    """The final answer's (minor HTTP version, status, the header fields deliveries look at)."""
    for _ in range(_MAX_INFORMATIONAL + 1):
        status_line = _read_status_line(reader)
        fields = _read_fields(reader)
        status = int(status_line.group(2))
        if status >= 200 or status == 101:
            return int(status_line.group(1)), status, fields
    raise PostError(f"malformed answer: more than {_MAX_INFORMATIONAL} informational answers")


def _skip_chunked(reader: BufferedReader) -> bool:
    total = 0
    while True:
        line = reader.readline(_MAX_LINE + 1)
        size = _CHUNK_SIZE.fullmatch(line.split(b";", 1)[0].strip()) if line.endswith(b"\n") else None
        if size is None:
            return False
        n = int(size.group(), 16)
        if n == 0:
            break
        total += n
        if total > MAX_ANSWER_BYTES or len(reader.read(n + 2)) < n + 2:  # the chunk and its CRLF
            return False
    try:
        _read_fields(reader)  # trailer lines, then an empty one
    except PostError:
        return False
    return True


def _skip_body(reader: BufferedReader, minor: int, status: int, fields: dict[bytes, bytes]) -> bool:
    """Read past the answer's body; whether the connection can carry the next request."""
    tokens = {t.strip() for t in fields.get(b"connection", b"").lower().split(b",")}
    keep = b"close" not in tokens and (minor >= 1 or b"keep-alive" in tokens)
    if status == 101:
        return False  # switching to another protocol: not HTTP any more
    if status in (204, 304):
        return keep
    coding = fields.get(b"transfer-encoding")
    if coding is not None:
        return keep and coding.lower().rsplit(b",", 1)[-1].strip() == b"chunked" and _skip_chunked(reader)
    length = fields.get(b"content-length")
    if length is None or not length.isdigit() or int(length) > MAX_ANSWER_BYTES:
        return False  # a body that runs to the close, or too long to read: close rather than read it
    n = int(length)
    return keep and len(reader.read(n)) == n


def _exchange(conn: _Connection, head: bytes, body: bytes) -> tuple[Answer, bool]:
    """Send the request, read the answer; the answer and whether the connection can be used again."""
    conn.sock.settimeout(conn.raw.timeout)
    conn.sock.sendall(head + body)
    conn.raw.deadline = time.monotonic() + conn.raw.timeout
    minor, status, fields = _read_head(conn.reader)
    retry_after = None
    if status in (429, 503) and b"retry-after" in fields:
        retry_after = fields[b"retry-after"].decode("latin-1")
    try:
        reusable = _skip_body(conn.reader, minor, status, fields)
    except OSError:
        reusable = False  # the status is in: a body cut short or too slow does not undo the answer
    return Answer(status, retry_after), reusable


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
    """POST ``body`` and return the receiver's answer; ``PostError`` when there is no answer. ``headers`` must
    not hold Host, Content-Length, Transfer-Encoding or Connection: the client sets what it needs."""
    target = _target(url)
    if target.auth is not None:
        headers = {**headers, "authorization": target.auth}
    head = _request_head(target, len(body), headers)
    try:
        conn, reused = _connection(target, timeout)
        try:
            answer, reusable = _exchange(conn, head, body)
        except (ConnectionError, ssl.SSLEOFError, BadStatusLineError):
            # A kept-alive connection the receiver closed while idle fails on first use without the request
            # having been handled, and one that holds what the receiver sent past its last answer cannot be
            # read; send once more on a fresh one (the webhook-id lets receivers drop repeats).
            if not reused:
                raise
            _drop(target, timeout)
            conn, _ = _connection(target, timeout)
            answer, reusable = _exchange(conn, head, body)
        if not reusable:
            _drop(target, timeout)
        return answer
    except PostError:
        _drop(target, timeout)
        raise
    except OSError as exc:
        _drop(target, timeout)
        raise PostError(f"{type(exc).__name__}: {exc or 'request failed'}") from exc
