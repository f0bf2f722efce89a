"""The HTTP client of webhook deliveries: one kept-alive connection per receiver, per process.

Why not httpx (used here before): a delivery job POSTs its entries one after another, and httpx spent
~270 us of CPU on each POST to a local receiver, http.client ~55 us (``benchmarks/bench_latency.py``
moves 1,000 deliveries a second through the same two cores as the pipeline). What httpx gave that
deliveries use is small and kept here: a timeout on connecting and on each read, TLS with certificate
checks, no redirects followed, no proxy from the environment, and a fresh connection when a kept-alive
one turns out to have been closed by the receiver.

Not thread-safe: RQ runs one job at a time in a worker process. A forked work-horse drops the connections
it inherited and opens its own.
"""

from __future__ import annotations

import base64
import http.client
import os
import ssl
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote, urlsplit

# What is read of a receiver's answer; deliveries only need its status. A larger body is not drained
# (its connection is closed instead), so a receiver cannot make a worker read megabytes.
MAX_ANSWER_BYTES = 64 * 1024
_Key = tuple[str, str, int, float]


class PostError(Exception):
    """The POST got no HTTP answer (refused, reset, timed out, TLS failure, malformed answer)."""


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


@lru_cache(maxsize=256)
def _target(url: str) -> _Target:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PostError(f"not an http(s) URL: {url!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise PostError(f"bad port in {url!r}") from exc
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    auth = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        auth = "Basic " + base64.b64encode(pair).decode("ascii")
    return _Target(parts.scheme, parts.hostname, port, path, auth)


@lru_cache(maxsize=1)
def _tls() -> ssl.SSLContext:
    return ssl.create_default_context()


_connections: dict[_Key, http.client.HTTPConnection] = {}
_owner = os.getpid()


def _connection(target: _Target, timeout: float) -> tuple[http.client.HTTPConnection, bool]:
    """A kept-alive connection to the target (and whether it was used before), or a new one."""
    global _owner
    if os.getpid() != _owner:  # a forked child must not share its parent's sockets
        _connections.clear()
        _owner = os.getpid()
    key = _key(target, timeout)
    conn = _connections.get(key)
    if conn is not None and conn.sock is not None:
        return conn, True
    if target.scheme == "https":
        conn = http.client.HTTPSConnection(target.host, target.port, timeout=timeout, context=_tls())
    else:
        conn = http.client.HTTPConnection(target.host, target.port, timeout=timeout)
    _connections[key] = conn
    return conn, False


def _key(target: _Target, timeout: float) -> _Key:
    return (target.scheme, target.host, target.port, timeout)


def _drop(target: _Target, timeout: float) -> None:
    conn = _connections.pop(_key(target, timeout), None)
    if conn is not None:
        conn.close()


def _exchange(conn: http.client.HTTPConnection, target: _Target, body: bytes, headers: dict[str, str]) -> Answer:
    conn.request("POST", target.path, body=body, headers=headers)
    answer = conn.getresponse()
    answer.read(MAX_ANSWER_BYTES)
    if not answer.isclosed():
        conn.close()  # more than we read: do not drain it, reconnect next time
    status = answer.status
    return Answer(status, answer.getheader("retry-after") if status in (429, 503) else None)


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
    """POST ``body`` and return the receiver's answer; ``PostError`` when there is no answer."""
    target = _target(url)
    if target.auth is not None:
        headers = {**headers, "authorization": target.auth}
    conn, reused = _connection(target, timeout)
    try:
        try:
            return _exchange(conn, target, body, headers)
        except (ConnectionError, http.client.BadStatusLine):
            # A kept-alive connection the receiver closed while idle fails on first use without the request
            # having been handled; send once more on a fresh one (the webhook-id lets receivers drop repeats).
            if not reused:
                raise
            _drop(target, timeout)
            conn, _ = _connection(target, timeout)
            return _exchange(conn, target, body, headers)
    except (OSError, http.client.HTTPException) as exc:
        _drop(target, timeout)
        raise PostError(f"{type(exc).__name__}: {exc or 'request failed'}") from exc
