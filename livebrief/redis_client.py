"""Redis clients from one URL, the same in every livebrief process.

redis-py reads ``redis://``, ``rediss://`` (TLS) and ``unix://`` URLs itself. For a Redis kept highly
available by Sentinel, livebrief adds:

    redis+sentinel://[[username]:password@]host[:port][,host[:port]...]/service[/db][?option=value&...]
    rediss+sentinel://...    the same over TLS, to the sentinels and to the master

The hosts are sentinels (port 26379 when omitted), ``service`` the name they monitor the master under.
The username and password are the master's. Options are redis-py's URL options (``socket_timeout``,
``ssl_ca_certs``, ``ssl_cert_reqs``, ...), plus ``sentinel_username`` and ``sentinel_password`` when the
sentinels ask for their own credentials. The client asks the sentinels where the master is before every
attempt to connect, so a worker that retries a command after a failover lands on the new master.

How long a client waits for a lost Redis is ``retry_options``.

Why one URL and not settings of their own: ``livebrief run`` hands its URL to the worker processes it
starts (``REDIS_URL``), and RQ's scheduler rebuilds its connection from the client's pool, so whatever a
URL names must come back from the URL alone.
"""

from __future__ import annotations

import contextlib
import copy
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlencode

import redis
import structlog
from redis.backoff import AbstractBackoff, ExponentialBackoff
from redis.connection import SSLConnection, parse_url
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelManagedConnection

from livebrief.errors import RedisUrlError
from livebrief.numbers import ascii_int

log = structlog.get_logger(__name__)
_T = TypeVar("_T")

SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}  # scheme -> TLS
PLAIN_SCHEMES = ("redis", "rediss", "unix")
SENTINEL_PORT = 26379
# Options of the master's connections that the sentinels' connections take too: how long to wait, and TLS.
_SHARED_OPTIONS = ("socket_timeout", "socket_connect_timeout", "socket_keepalive", "ssl_ca_certs", "ssl_ca_path",
                   "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs", "ssl_check_hostname")


@dataclass(frozen=True)
class SentinelTarget:
    """What a ``redis+sentinel://`` URL names."""

    sentinels: list[tuple[str, int]]
    service: str
    client_options: dict[str, Any] = field(default_factory=dict)  # the master's connections
    sentinel_options: dict[str, Any] = field(default_factory=dict)  # the sentinels' connections


def scheme_of(url: str) -> str:
    return url.partition("://")[0].lower() if "://" in url else ""


def check_url(url: str) -> None:
    """Raise ``RedisUrlError`` unless ``url`` is a Redis URL livebrief can connect with."""
    scheme = scheme_of(url)
    if scheme in SENTINEL_SCHEMES:
        parse_sentinel_url(url)
    elif scheme not in PLAIN_SCHEMES:
        raise RedisUrlError(url, f"the scheme must be one of {', '.join([*PLAIN_SCHEMES, *SENTINEL_SCHEMES])}")
    else:
        try:
            parse_url(url)
        except ValueError as exc:
            raise RedisUrlError(url, str(exc)) from None


def parse_sentinel_url(url: str) -> SentinelTarget:
    """The sentinels, service and connection options a ``redis+sentinel://`` URL names (module docstring)."""
    scheme, _, rest = url.partition("://")
    tls = SENTINEL_SCHEMES.get(scheme.lower())
    if tls is None:
        raise RedisUrlError(url, f"not a sentinel URL (schemes: {', '.join(SENTINEL_SCHEMES)})")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, _, hosts = netloc.rpartition("@")
    sentinels = [_host_port(part, url) for part in hosts.split(",")]
    parts = [unquote(p) for p in path.split("/") if p]
    if not parts or len(parts) > 2:
        raise RedisUrlError(url, "name the service the sentinels monitor, and optionally a database: "
                                 "redis+sentinel://host:26379/mymaster/0")
    if len(parts) == 2 and ascii_int(parts[1]) is None:
        raise RedisUrlError(url, f"the database must be a number, not {parts[1]!r}")
    options = dict(parse_qsl(query, keep_blank_values=True))
    sentinel_options: dict[str, Any] = {}
    for name in ("sentinel_username", "sentinel_password"):
        if name in options:
            sentinel_options[name.removeprefix("sentinel_")] = options.pop(name)
    try:
        # redis-py's own parser types the options (timeouts as numbers, ...) as it would in a plain URL.
        client_options = parse_url(f"{'rediss' if tls else 'redis'}://localhost/{parts[1] if len(parts) == 2 else 0}"
                                   f"?{urlencode(options)}")
    except ValueError as exc:
        raise RedisUrlError(url, str(exc)) from None
    for name in ("host", "port", "connection_class"):  # the sentinels say where; the pool picks the class
        client_options.pop(name, None)
    if userinfo:
        username, has_password, password = userinfo.partition(":")
        if username:
            client_options["username"] = unquote(username)
        if has_password:
            client_options["password"] = unquote(password)
    if tls:
        client_options["ssl"] = sentinel_options["ssl"] = True
    for name in _SHARED_OPTIONS:
        if name in client_options:
            sentinel_options[name] = client_options[name]
    return SentinelTarget(sentinels, parts[0], client_options, sentinel_options)


def _host_port(part: str, url: str) -> tuple[str, int]:
    part = part.strip()
    if part.startswith("["):  # [IPv6]:port
        host, _, tail = part[1:].partition("]")
        port = tail.removeprefix(":")
    else:
        host, _, port = part.partition(":")
    if not host:
        raise RedisUrlError(url, "list at least one sentinel as host[:port], several separated by commas")
    if port and not port.isdigit():
        raise RedisUrlError(url, f"the port of sentinel {host!r} must be a number, not {port!r}")
    return host, int(port) if port else SENTINEL_PORT


class MasterConnection(SentinelManagedConnection):
    """A connection to the master, mending two ways redis-py's own (6.x) fails a long-running worker.

    - It asks the sentinels where the master is before each attempt to connect. redis-py's asks only when
      the pool hands out a new connection: a connection that a retry reconnects after an error goes back
      to the address it had (redis-py issue 3874), so a worker whose master died retried the dead address
      until its retries ran out (~30 s) before it followed the failover, or for ever with endless retries.
    - An exception while it waits for a reply closes it, as redis-py's plain connections do. Its sentinel
      connection keeps the socket open instead, and goes back to the pool with the reply still to come:
      RQ stops a worker on SIGTERM by raising from the signal handler, often inside the blocking pop, and
      the next command on that connection read the pop's reply as its own (a worker hung on shutdown, in
      ``tests/test_redis_client.py``).
    """

    def _connect(self) -> Any:
        # Each socket connect, retries included, goes where the sentinels say the master is now.
        self.host, self.port = self.connection_pool.get_master_address()
        return super()._connect()

    def read_response(self, disable_decoding: bool = False, *, disconnect_on_error: bool | None = True,
                      push_request: bool | None = False) -> Any:
        return super().read_response(disable_decoding=disable_decoding, disconnect_on_error=disconnect_on_error,
                                     push_request=push_request)


class MasterSSLConnection(MasterConnection, SSLConnection):
    pass


# How deep this thread is in ``LoggedRetry.call_with_retry``: redis-py nests a reconnect's retries inside a
# command's, and nested retries would multiply the wait (~33 s each, so minutes for one command).
_nesting = threading.local()
# Set by ``stop_waiting_for_redis``, from signal handlers, so a plain flag that waits poll: a handler taking a
# lock (a threading.Event's) could interrupt the code holding it, or its own earlier run, and wait on it for
# ever (QA: an RQ scheduler hung so on a second SIGTERM).
_stop_asked = False
STOP_POLL = 0.05  # how often a wait looks at the flag


def stop_waiting_for_redis() -> None:
    """Give up waiting for a lost Redis in this process: a retry under way tries once more at once, then
    raises its error. Signal handlers call it, so that SIGTERM stops a process that waits for Redis; it takes
    no lock, so a signal arriving while it runs cannot hang the process."""
    global _stop_asked
    _stop_asked = True


@contextlib.contextmanager
def stopping_without_redis(event: str) -> Iterator[None]:
    """Around a process's main loop: a Redis error (down, or not answering) raised once a stop was asked is
    the stop, which Redis did not hear of; it is logged as ``event``, a warning, instead of ending the
    process as a crash. Any other error goes on."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        if not _stop_asked:
            raise
        log.warning(event, error=str(exc))


def _pause(seconds: float) -> None:
    """Sleep ``seconds``, or less if a stop is asked meanwhile."""
    end = time.monotonic() + seconds
    while not _stop_asked:
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, STOP_POLL))


class LoggedRetry(Retry):
    """redis-py's retry with backoff, logging each lost attempt, so a process that waits for Redis says so.

    Unlike redis-py's, it retries a refused or failed socket connect (``OSError``) once its client has
    reached Redis: redis-py connects a pooled connection before a command's retries begin, so a command that
    needed a new connection while Redis restarted failed at once, and RQ workers quit on it. A client that
    never reached Redis still fails at once, as a wrong URL should. It retries at the outermost level only:
    inside another retry (redis-py reconnects within a command's) it tries once, and the outer one waits.
    Once ``stop_waiting_for_redis`` is called, it tries once more without waiting, then gives up."""

    def __init__(self, backoff: AbstractBackoff, retries: int, supported_errors: tuple[type[Exception], ...]) -> None:
        super().__init__(backoff, retries, supported_errors)
        self._reached = [False]  # shared by the copies redis-py makes for each connection (``__deepcopy__``)

    def __deepcopy__(self, memo: dict[int, Any]) -> LoggedRetry:
        twin = copy.copy(self)
        twin._backoff = copy.deepcopy(self._backoff, memo)
        return twin

    def call_with_retry(self, do: Callable[[], _T], fail: Callable[[Exception], Any]) -> _T:
        depth = getattr(_nesting, "depth", 0)
        if depth:
            try:
                return do()
            except self._supported_errors as error:
                fail(error)
                raise
        _nesting.depth = depth + 1
        try:
            return self._retrying(do, fail)
        finally:
            _nesting.depth = depth

    def _retrying(self, do: Callable[[], _T], fail: Callable[[Exception], Any]) -> _T:
        self._backoff.reset()
        failures = 0
        while True:
            try:
                result = do()
                self._reached[0] = True
                return result
            except self._supported_errors as error:
                failures += 1
                # One lost connection is routine (an idle one the server closed); more is an outage.
                (log.warning if failures > 1 else log.debug)(
                    "redis_unreachable", error=str(error), attempt=failures,
                    gives_up_after=None if self._retries < 0 else self._retries)
                fail(error)
                # Credentials refused (a password missing or wrong) do not mend in a retry: fail at once.
                if (0 <= self._retries < failures or (isinstance(error, OSError) and not self._reached[0])
                        or isinstance(error, redis.AuthenticationError)
                        # Stopping, it still tries once more, at once: one lost connection is routine. A reply
                        # that never came is not: another try would wait as long again.
                        or (_stop_asked and (failures > 1 or isinstance(error, redis.TimeoutError)))):
                    raise
                _pause(self._backoff.compute(failures))


RETRIES = 8  # ~33 s of backoff (0.2 s doubling, at most 10 s apart): a Redis restart, a Sentinel failover
# How long a command waits for its reply, and a connect for its answer, before they count as a lost
# connection (retried as one). Without them a Redis that accepts connections but never answers (frozen, or
# behind a partition that drops packets) held a process for ever, past SIGTERM. No command livebrief sends
# blocks for more than a second (``livebrief/queues.py``, ``livebrief tail``), and a healthy Redis answers
# the others in milliseconds; RQ's workers block longer, and add their pop to it (``livebrief/workers.py``).
# A timeout in the URL (``?socket_timeout=30``) wins.
REPLY_TIMEOUT = 5.0
CONNECT_TIMEOUT = 5.0


def retry_options(*, forever: bool = False) -> dict[str, Any]:
    """Client options that ride out a lost or silent Redis: ``RETRIES`` retries (~33 s), or retries without
    end for a reader that has nothing else to do and no signal handler of its own to wait for (``livebrief
    tail``); each command waits ``REPLY_TIMEOUT`` for its reply."""
    errors = (redis.ConnectionError, redis.TimeoutError, OSError)
    return {"retry": LoggedRetry(ExponentialBackoff(cap=10, base=0.1), -1 if forever else RETRIES, errors),
            "retry_on_error": list(errors), "health_check_interval": 30,
            "socket_timeout": REPLY_TIMEOUT, "socket_connect_timeout": CONNECT_TIMEOUT}


def connect(url: str, **options: Any) -> redis.Redis:
    """A client for ``url``; ``options`` (retries, timeouts) apply to the master's connections, where the URL
    does not set them itself."""
    if scheme_of(url) in SENTINEL_SCHEMES:
        target = parse_sentinel_url(url)  # checks it too
        sentinel = Sentinel(target.sentinels, sentinel_kwargs=target.sentinel_options)
        connection_class = MasterSSLConnection if target.client_options.get("ssl") else MasterConnection
        return sentinel.master_for(target.service, connection_class=connection_class,
                                   **{**options, **target.client_options})  # the URL's options win
    check_url(url)
    return redis.Redis.from_url(url, **options)
