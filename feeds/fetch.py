"""HTTP fetching of one feed, politely and within limits.

- conditional GET (ETag / Last-Modified) so an unchanged feed costs a 304 and no parsing;
- one total deadline for the whole exchange (connect, redirects, every byte), not a per-read timeout,
  so a server trickling bytes cannot hold a poller;
- the body is decompressed here, chunk by chunk, with a cap on the *decoded* size (gzip bombs stop at
  the cap, not after filling memory);
- redirects are followed by hand (at most ``MAX_REDIRECTS``), each hop checked against private, loopback
  and link-local addresses before any connection is made, unless ``allow_private`` or the hop's exact
  ``host:port`` is in ``allow_hosts`` (SSRF). A host's verdict is cached for ``ADDRESS_CACHE_SECONDS``
  (resolving per request costs more than the request). The connection itself resolves through
  ``_PublicOnlyResolver``, which drops the same addresses, so a name that answers a public address to the
  check and a private one to the connection (DNS rebinding) gets no connection either;
- 429/503 ``Retry-After`` is parsed and reported so the scheduler can honour it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
import zlib
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from pydantic import BaseModel

from livebrief.errors import (
    BlockedURLError,
    FetchError,
    FetchTimeoutError,
    HTTPStatusError,
    TooLargeError,
)
from livebrief.numbers import ascii_int
from livebrief.retry_after import parse_retry_after

MAX_REDIRECTS = 5
ADDRESS_CACHE_SECONDS = 60.0
DRAIN_MAX = 64 * 1024
_ADDRESS_CACHE_MAX = 50_000
_REDIRECTS = frozenset((301, 302, 303, 307, 308))
_PERMANENT = frozenset((301, 308))
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
    # Where ``url`` moved for good: the last URL reached from it through permanent redirects (301, 308)
    # alone; None when its first answer was no permanent redirect.
    moved_to: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


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
        where = _host_port(parts.hostname, port)
        kind = _address_kind(cached[1])
        # A link-local or reserved address is no intranet feed (169.254.169.254 is a cloud's metadata service).
        hint = (f"; if it is a trusted intranet feed, add {where!r} to polling.allow_hosts"
                if kind in ("private", "loopback") else "")
        raise BlockedURLError(feed_id, f"{where} resolves to {cached[1]}, a {kind} address{hint}")


def _address_kind(host: str) -> str:
    address = ipaddress.ip_address(host)
    for kind in ("loopback", "link_local", "multicast", "private"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    return "reserved (non-public)"


# (host, port) -> (monotonic expiry, the first non-public address it resolved to, or None when all are public)
_address_cache: dict[tuple[str, int], tuple[float, str | None]] = {}


def _non_public(host: str) -> str | None:
    """The address as a canonical string when it is private, loopback, link-local, multicast or otherwise
    not global; None when it is public."""
    address = ipaddress.ip_address(host.split("%", 1)[0])  # an IPv6 zone suffix is not part of the address
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return str(address) if not address.is_global or address.is_multicast else None


def _blocked_address(infos: list[tuple[Any, ...]]) -> str | None:
    for info in infos:
        blocked = _non_public(info[4][0])
        if blocked is not None:
            return blocked
    return None


class _NonPublicAddressError(OSError):
    """Raised by the connection's resolver; ``_client_error`` turns it into a ``BlockedURLError``."""


class _PublicOnlyResolver(AbstractResolver):
    """aiohttp's resolver, minus every non-public address (unless the host is allowed): the connection
    goes only to addresses that pass the same test as ``check_url``, whatever the name answers by then."""

    def __init__(self, limits: FetchLimits) -> None:
        self.limits = limits
        self._inner = ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if self.limits.allow_private or _host_port(host, port) in self.limits.allow_hosts:
            return results
        public = [r for r in results if _non_public(r["host"]) is None]
        if not public:
            raise _NonPublicAddressError(f"{host} resolved to non-public addresses only")
        return public

    async def close(self) -> None:
        await self._inner.close()


class _Decoder:
    """Streams Content-Encoding decoding with a cap on the decoded output."""

    def __init__(self, encoding: str, feed_id: str, cap: int) -> None:
        self.feed_id = feed_id
        self.cap = cap
        self.size = 0
        self.parts: list[bytes] = []
        # "gzip, identity": identity adds nothing to the encodings applied before it.
        codings = [c for c in (part.strip().lower() for part in encoding.split(",")) if c not in ("", "identity")]
        encoding = codings[0] if len(codings) == 1 else ",".join(codings)
        self._kind, self._raw_deflate_tried = encoding, False
        if encoding in ("gzip", "x-gzip"):
            self._z: zlib._Decompress | None = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._z = zlib.decompressobj()
        elif encoding == "":
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
                if self._raw_deflate():
                    continue
                raise FetchError(self.feed_id, f"corrupt compressed body: {exc}") from exc
            self._add(out)
            data = self._z.unconsumed_tail
            if self._z.eof and self._kind in ("gzip", "x-gzip"):
                # Concatenated gzip members are one gzip stream (RFC 1952, 2.2), which Python's gzip reads whole.
                rest = self._z.unused_data
                if not rest.strip(b"\0"):  # nothing, or the zero padding some servers add
                    break
                self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
                data = rest
                continue
            if not out and not data:
                break

    def _raw_deflate(self) -> bool:
        """For "deflate" without its zlib header (as some servers send it, and as browsers and urllib3 accept
        it): start again reading raw deflate, once, if nothing was decoded yet."""
        if self._kind != "deflate" or self._raw_deflate_tried or self.size:
            return False
        self._raw_deflate_tried = True
        self._z = zlib.decompressobj(-zlib.MAX_WBITS)
        return True

    def finish(self) -> bytes:
        if self._z is not None:
            try:
                self._add(self._z.flush())
            except zlib.error:
                pass
        return b"".join(self.parts)


def _client_error(feed_id: str, exc: aiohttp.ClientError, limits: FetchLimits) -> FetchError:
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, _NonPublicAddressError):
        return BlockedURLError(feed_id, f"{exc.os_error} when connecting (its address changed since the check?)")
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return FetchTimeoutError(feed_id, f"no connection within {limits.connect_timeout:g} s")
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return FetchTimeoutError(feed_id, f"no complete answer within {limits.timeout:g} s")
    return FetchError(feed_id, f"{type(exc).__name__}: {exc or 'connection failed'}")


async def _drain(response: aiohttp.ClientResponse) -> None:
    """Read a small body (a 304 has none, a redirect a line or two) to its end, so the connection goes back
    to the keep-alive pool: a response released before its end closes the connection, and a new TCP
    connection per unchanged feed costs more than the rest of the request. Past ``DRAIN_MAX`` bytes (or on
    any error) the response is simply released by the caller, dropping the connection."""
    size = 0
    try:
        async for chunk in response.content.iter_any():
            size += len(chunk)
            if size > DRAIN_MAX:
                return
    except aiohttp.ClientError:
        return


async def _exchange(
    session: aiohttp.ClientSession,
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
    moved: str | None = None  # the URL permanent redirects lead to
    only_permanent = True  # every hop so far was one
    for _ in range(MAX_REDIRECTS + 1):
        try:
            await check_url(feed_id, current, limits)
        except BlockedURLError as exc:
            if current == url:
                raise
            raise BlockedURLError(feed_id, f"{url} redirected to {current}, refused: {exc.reason}") from exc
        try:
            response = await session.get(current, headers=headers, allow_redirects=False)
        except aiohttp.ClientError as exc:
            raise _client_error(feed_id, exc, limits) from exc
        except ValueError as exc:  # yarl/aiohttp refuse some URLs outright (bad host, bad port)
            raise FetchError(feed_id, f"cannot request {current!r}: {exc}") from exc
        try:
            status = response.status
            if status in _REDIRECTS:
                location = response.headers.get("location")
                if not location:
                    raise FetchError(feed_id, f"server answered HTTP {status}, a redirect, without a Location")
                try:
                    target = urljoin(current, location)
                except ValueError as exc:  # e.g. an unclosed IPv6 bracket
                    raise FetchError(feed_id, f"server redirected (HTTP {status}) to an invalid URL {location!r}"
                                     ) from exc
                only_permanent = only_permanent and status in _PERMANENT
                current = target
                moved = current if only_permanent else moved
                await _drain(response)
                continue
            if 300 <= status < 400 and status != 304:
                raise FetchError(feed_id, f"server answered HTTP {status}, which is neither a feed nor a redirect "
                                          "livebrief follows")
            result_headers = {k.lower(): v for k, v in response.headers.items()}
            if status == 304:
                await _drain(response)
                if not (etag or last_modified):
                    raise FetchError(feed_id, "server answered HTTP 304 Not Modified to a request with nothing to "
                                              "compare (no ETag or date sent): nothing can be read from it")
                return FetchResult(url=url, final_url=current, status=304, headers=result_headers,
                                   etag=response.headers.get("etag") or etag,
                                   last_modified=response.headers.get("last-modified") or last_modified,
                                   moved_to=moved)
            if status >= 400:
                raise HTTPStatusError(feed_id, status, parse_retry_after(response.headers.get("retry-after")))
            declared = response.headers.get("content-length")
            if declared and (ascii_int(declared) or 0) > limits.max_body_bytes * 4:
                raise TooLargeError(feed_id, f"Content-Length {declared} is over the limit")
            decoder = _Decoder(response.headers.get("content-encoding", ""), feed_id, limits.max_body_bytes)
            raw_size = 0
            try:
                async for chunk in response.content.iter_any():
                    raw_size += len(chunk)
                    if raw_size > limits.max_body_bytes:
                        raise TooLargeError(feed_id, f"the body exceeds {limits.max_body_bytes} bytes")
                    decoder.feed(chunk)
            except aiohttp.ClientError as exc:
                if isinstance(exc, aiohttp.ServerTimeoutError):
                    raise _client_error(feed_id, exc, limits) from exc
                if "ContentLengthError" in repr(exc):  # aiohttp's words for it read like an HTTP 400
                    raise FetchError(feed_id, f"the body ended after {raw_size} bytes, before the length its "
                                              "Content-Length announced (the connection closed early)") from exc
                raise FetchError(
                    feed_id, f"the connection failed mid-body: {type(exc).__name__}: {exc or 'closed'}"
                ) from exc
            return FetchResult(
                url=url, final_url=current, status=status, body=decoder.finish(),
                headers=result_headers, etag=response.headers.get("etag"),
                last_modified=response.headers.get("last-modified"), moved_to=moved,
            )
        finally:
            response.release()
    raise FetchError(feed_id, f"more than {MAX_REDIRECTS} redirects (a redirect loop?)")


async def fetch_feed(
    session: aiohttp.ClientSession,
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
            result = await _exchange(session, feed_id, url, limits, etag, last_modified)
    except TimeoutError as exc:
        raise FetchTimeoutError(feed_id, f"no complete answer within {limits.timeout:g} s") from exc
    result.elapsed_ms = (time.perf_counter() - started) * 1000
    return result


def make_client(limits: FetchLimits, max_connections: int = 64) -> aiohttp.ClientSession:
    """One shared session per poller: keep-alive connections pooled across feeds, redirects handled by
    hand, bodies left compressed (``_Decoder`` inflates them under the size cap), no cookies carried from
    one feed to another, no proxy settings read from the environment. Call it inside a running loop."""
    connector = aiohttp.TCPConnector(limit=max_connections, ttl_dns_cache=int(ADDRESS_CACHE_SECONDS),
                                     resolver=_PublicOnlyResolver(limits))
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=limits.connect_timeout),
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
        raise_for_status=False,
        skip_auto_headers=("User-Agent",),
    )


class ClientPool:
    """One session of ``slots`` keep-alive connections, and the bound of ``slots`` fetches in flight.

    A fetch waits for room (``acquire``), uses ``session``, and leaves (``release``); as the session never
    has more requests than connections, no request waits inside aiohttp's pool. The session is made on
    first use, inside the running loop, as aiohttp requires.
    """

    def __init__(self, limits: FetchLimits, slots: int) -> None:
        self.limits = limits
        self.slots = max(1, slots)
        self._session: aiohttp.ClientSession | None = None
        self._room: asyncio.Semaphore | None = None

    def _bound(self) -> asyncio.Semaphore:
        if self._room is None:
            self._room = asyncio.Semaphore(self.slots)
        return self._room

    async def acquire(self) -> None:
        await self._bound().acquire()

    def release(self) -> None:
        self._bound().release()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = make_client(self.limits, max_connections=self.slots)
        return self._session

    async def __aenter__(self) -> ClientPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
