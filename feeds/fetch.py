"""HTTP fetching of one feed, politely and within limits.

- conditional GET (ETag / Last-Modified) so an unchanged feed costs a 304 and no parsing;
- one total deadline for the whole exchange (connect, redirects, every byte), not a per-read timeout,
  so a server trickling bytes cannot hold a poller;
- the body is decompressed here, chunk by chunk, with a cap on the *decoded* size (gzip bombs stop at
  the cap, not after filling memory);
- redirects are followed by hand (at most ``MAX_REDIRECTS``), each hop checked against private, loopback
  and link-local addresses before any connection is made, unless ``allow_private`` or the hop's exact
  ``host:port`` is in ``allow_hosts`` (SSRF). A host's verdict is cached for ``ADDRESS_CACHE_SECONDS``
  (resolving per request costs more than the request); like any check-then-connect scheme it does not
  stop DNS rebinding (the connection resolves the name again), with or without the cache;
- 429/503 ``Retry-After`` is parsed and reported so the scheduler can honour it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
import zlib
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from pydantic import BaseModel

from livebrief.errors import (
    BlockedURLError,
    FetchError,
    FetchTimeoutError,
    HTTPStatusError,
    TooLargeError,
)

MAX_REDIRECTS = 5
ADDRESS_CACHE_SECONDS = 60.0
DRAIN_MAX = 64 * 1024
_ADDRESS_CACHE_MAX = 50_000
_ACCEPT = (
    "application/atom+xml, application/rss+xml, application/feed+json, application/json;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)


class FetchLimits(BaseModel):
    timeout: float = 20.0
    connect_timeout: float = 10.0
    max_body_bytes: int = 10 * 1024 * 1024
    allow_private: bool = False
    allow_hosts: list[str] = []
    user_agent: str = "livebrief"


class FetchResult(BaseModel):
    url: str
    final_url: str
    status: int
    body: bytes = b""
    headers: dict[str, str] = {}
    etag: str | None = None
    last_modified: str | None = None
    elapsed_ms: float = 0.0

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None when absent/invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def check_url(feed_id: str, url: str, limits: FetchLimits) -> None:
    """Refuse, without connecting, a URL that is not http(s) or whose host resolves to a non-public address
    (in every spelling: 127.1, 2130706433, [::ffff:127.0.0.1], localhost, 0.0.0.0, 169.254.169.254...).

    ``allow_private`` allows everything; ``allow_hosts`` allows exact ``host:port`` pairs as spelled in the
    URL, so allowing ``127.0.0.1:8080`` does not allow ``127.1:8080`` or ``localhost:6379``.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BlockedURLError(feed_id, f"only http(s) URLs are fetched, not {url!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise BlockedURLError(feed_id, f"the URL {url!r} has an invalid port") from exc
    if limits.allow_private or _host_port(parts.hostname, port) in limits.allow_hosts:
        return
    key = (parts.hostname, port)
    now = time.monotonic()
    cached = _address_cache.get(key)
    if cached is None or cached[0] <= now:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:  # not cached: a name that fails to resolve is tried again next time
            raise FetchError(feed_id, f"cannot resolve host {parts.hostname!r}: {exc.strerror}") from exc
        if len(_address_cache) >= _ADDRESS_CACHE_MAX:
            _address_cache.clear()
        cached = (now + ADDRESS_CACHE_SECONDS, _blocked_address(infos))
        _address_cache[key] = cached
    if cached[1] is not None:
        raise BlockedURLError(
            feed_id,
            f"{_host_port(parts.hostname, port)} resolves to {cached[1]}, a private/loopback address; "
            f"if it is a trusted intranet feed, add {_host_port(parts.hostname, port)!r} to polling.allow_hosts",
        )


# (host, port) -> (monotonic expiry, the first non-public address it resolved to, or None when all are public)
_address_cache: dict[tuple[str, int], tuple[float, str | None]] = {}


def _blocked_address(infos: list[tuple[Any, ...]]) -> str | None:
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if not address.is_global or address.is_multicast:
            return str(address)
    return None


class _Decoder:
    """Streams Content-Encoding decoding with a cap on the decoded output."""

    def __init__(self, encoding: str, feed_id: str, cap: int) -> None:
        self.feed_id = feed_id
        self.cap = cap
        self.size = 0
        self.parts: list[bytes] = []
        encoding = encoding.strip().lower()
        if encoding in ("gzip", "x-gzip"):
            self._z: zlib._Decompress | None = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._z = zlib.decompressobj()
        elif encoding in ("", "identity"):
            self._z = None
        else:
            raise FetchError(feed_id, f"unsupported Content-Encoding {encoding!r}")

    def _add(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.cap:
            raise TooLargeError(self.feed_id, f"the decoded body exceeds {self.cap} bytes")
        self.parts.append(data)

    def feed(self, chunk: bytes) -> None:
        if self._z is None:
            self._add(chunk)
            return
        data = chunk
        while data:
            try:
                # max_length bounds each step's output, so a bomb never expands beyond cap + 64 KiB.
                out = self._z.decompress(data, 65536)
            except zlib.error as exc:
                raise FetchError(self.feed_id, f"corrupt compressed body: {exc}") from exc
            self._add(out)
            data = self._z.unconsumed_tail
            if not out and not data:
                break

    def finish(self) -> bytes:
        if self._z is not None:
            try:
                self._add(self._z.flush())
            except zlib.error:
                pass
        return b"".join(self.parts)


def _timeout_error(feed_id: str, exc: httpx.TimeoutException, limits: FetchLimits) -> FetchTimeoutError:
    if isinstance(exc, httpx.ConnectTimeout):
        return FetchTimeoutError(feed_id, f"no connection within {limits.connect_timeout:g} s")
    return FetchTimeoutError(feed_id, f"no complete answer within {limits.timeout:g} s")


async def _drain(response: httpx.Response) -> None:
    """Read a small body (a 304 has none, a redirect a line or two) to its end, so the connection goes back
    to the keep-alive pool: closing a response before its end closes the connection, and a new TCP
    connection per unchanged feed costs more than the rest of the request. Past ``DRAIN_MAX`` bytes (or on
    any error) the response is simply closed by the caller, dropping the connection."""
    size = 0
    try:
        async for chunk in response.aiter_raw():
            size += len(chunk)
            if size > DRAIN_MAX:
                return
    except httpx.HTTPError:
        return


async def _exchange(
    client: httpx.AsyncClient,
    feed_id: str,
    url: str,
    limits: FetchLimits,
    etag: str | None,
    last_modified: str | None,
) -> FetchResult:
    headers = {"User-Agent": limits.user_agent, "Accept": _ACCEPT, "Accept-Encoding": "gzip, deflate"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        await check_url(feed_id, current, limits)
        request = client.build_request("GET", current, headers=headers)
        try:
            response = await client.send(request, stream=True, follow_redirects=False)
        except httpx.TimeoutException as exc:
            raise _timeout_error(feed_id, exc, limits) from exc
        except httpx.HTTPError as exc:
            raise FetchError(feed_id, f"{type(exc).__name__}: {exc or 'connection failed'}") from exc
        try:
            if response.is_redirect and "location" in response.headers:
                current = urljoin(current, response.headers["location"])
                await _drain(response)
                continue
            result_headers = {k.lower(): v for k, v in response.headers.items()}
            if response.status_code == 304:
                await _drain(response)
                return FetchResult(url=url, final_url=current, status=304, headers=result_headers,
                                   etag=etag, last_modified=last_modified)
            if response.status_code >= 400:
                raise HTTPStatusError(
                    feed_id, response.status_code, parse_retry_after(response.headers.get("retry-after"))
                )
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > limits.max_body_bytes * 4:
                raise TooLargeError(feed_id, f"Content-Length {declared} is over the limit")
            decoder = _Decoder(response.headers.get("content-encoding", ""), feed_id, limits.max_body_bytes)
            raw_size = 0
            try:
                async for chunk in response.aiter_raw():
                    raw_size += len(chunk)
                    if raw_size > limits.max_body_bytes:
                        raise TooLargeError(feed_id, f"the body exceeds {limits.max_body_bytes} bytes")
                    decoder.feed(chunk)
            except httpx.TimeoutException as exc:
                raise _timeout_error(feed_id, exc, limits) from exc
            except httpx.HTTPError as exc:
                raise FetchError(
                    feed_id, f"the connection failed mid-body: {type(exc).__name__}: {exc or 'closed'}"
                ) from exc
            return FetchResult(
                url=url, final_url=current, status=response.status_code, body=decoder.finish(),
                headers=result_headers, etag=response.headers.get("etag"),
                last_modified=response.headers.get("last-modified"),
            )
        finally:
            await response.aclose()
    raise FetchError(feed_id, f"more than {MAX_REDIRECTS} redirects (a redirect loop?)")


async def fetch_feed(
    client: httpx.AsyncClient,
    feed_id: str,
    url: str,
    limits: FetchLimits,
    etag: str | None = None,
    last_modified: str | None = None,
) -> FetchResult:
    """Fetch one feed under a total deadline; raises a ``FetchError`` subclass carrying the feed id."""
    started = time.perf_counter()
    try:
        # asyncio.timeout, not wait_for: the same total deadline without a task per fetch.
        async with asyncio.timeout(limits.timeout):
            result = await _exchange(client, feed_id, url, limits, etag, last_modified)
    except TimeoutError as exc:
        raise FetchTimeoutError(feed_id, f"no complete answer within {limits.timeout:g} s") from exc
    result.elapsed_ms = (time.perf_counter() - started) * 1000
    return result


def make_client(limits: FetchLimits, max_connections: int = 64) -> httpx.AsyncClient:
    """One shared client per poller: connection pooling across feeds, redirects handled by hand."""
    timeout = httpx.Timeout(limits.timeout, connect=limits.connect_timeout)
    return httpx.AsyncClient(
        timeout=timeout,
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        follow_redirects=False,
        trust_env=False,
    )


class ClientPool:
    """``slots`` concurrent fetches over several small ``AsyncClient``s of ``per_client`` connections each.

    httpcore's pool scans every pooled connection (quadratically, with a readability syscall on each) twice
    per request, so one client with 32 keep-alive connections spends more time on its pool than on HTTP; a
    few small clients keep the same keep-alive reuse at a fraction of the cost. A fetch takes a slot
    (``acquire``), uses ``client(slot)``, and gives it back (``release``); as a client never has more
    requests than connections, no request ever waits inside httpcore.
    """

    def __init__(self, limits: FetchLimits, slots: int, per_client: int = 4) -> None:
        self.slots = max(1, slots)
        self.per_client = max(1, min(per_client, self.slots))
        count = -(-self.slots // self.per_client)
        self.clients = [make_client(limits, max_connections=self.per_client) for _ in range(count)]
        self._free: asyncio.LifoQueue[int] | None = None

    def _queue(self) -> asyncio.LifoQueue[int]:
        if self._free is None:
            self._free = asyncio.LifoQueue()
            for slot in reversed(range(self.slots)):
                self._free.put_nowait(slot)
        return self._free

    async def acquire(self) -> int:
        return await self._queue().get()

    def release(self, slot: int) -> None:
        self._queue().put_nowait(slot)

    def client(self, slot: int) -> httpx.AsyncClient:
        return self.clients[slot // self.per_client]

    async def __aenter__(self) -> ClientPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()
