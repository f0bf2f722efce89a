"""The one exception hierarchy of livebrief.

Every error a caller can see is a ``LivebriefError``. Feed errors carry the feed id, delivery errors the
webhook id, config errors the file and field: messages say what happened, to what, and what to do.
"""

from __future__ import annotations

import errno


class LivebriefError(Exception):
    """Root of every error livebrief raises on purpose."""

    default_message = "livebrief failed"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)

    @property
    def message(self) -> str:
        return str(self.args[0])

    def __reduce__(self) -> tuple[object, ...]:
        # Pickled as it is (a parse error crosses from the parser process to the poller): the default
        # calls ``cls(*args)``, which the subclasses' own arguments turn into a garbled message.
        return _rebuilt, (type(self), self.args, self.__dict__)


def _rebuilt(cls: type[LivebriefError], args: tuple[object, ...], state: dict[str, object]) -> LivebriefError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class ConfigError(LivebriefError):
    """A configuration file is missing, unreadable or invalid."""

    heading = "invalid configuration in"

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        joined = "\n  ".join(problems)
        super().__init__(f"{self.heading} {path}:\n  {joined}")


class DataFileError(ConfigError):
    """A data file a command reads (labelled items, a corpus) is missing, unreadable or malformed: not
    configuration, so the message does not call it that."""

    heading = "cannot use"


class RedisUnavailableError(LivebriefError):
    default_message = "no Redis server could be reached or started"


def without_password(url: str) -> str:
    """``url`` as it may be shown: any password replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    netloc = rest.split("/")[0].split("?")[0]
    if "@" in netloc:
        userinfo, hosts = netloc.rsplit("@", 1)
        user = userinfo.partition(":")[0]
        rest = f"{user}:***@{hosts}{rest[len(netloc):]}" if ":" in userinfo else rest
    return f"{scheme}{sep}{rest}"


class RedisUrlError(RedisUnavailableError):
    """A Redis URL livebrief cannot connect with; the message shows it without its password."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = without_password(url)
        super().__init__(f"Redis URL {self.url!r}: {reason}")


class WorkerExitedError(LivebriefError):
    """A worker process ``livebrief run`` started kept exiting right after its start."""

    def __init__(self, command: str, exit_code: int, times: int) -> None:
        self.command, self.exit_code = command, exit_code
        super().__init__(f"`{command}` exited {times} times in a row soon after starting (last exit code "
                         f"{exit_code}); its error is in the log above. Nothing is published without workers, "
                         "so run stopped.")


class BatchConflictError(LivebriefError):
    default_message = "a batch kept conflicting with other workers and was not committed; RQ retries it"


class FeedError(LivebriefError):
    """Something went wrong with one feed; the others carry on."""

    kind = "feed_error"
    default_message = "the feed could not be read"

    def __init__(self, feed_id: str, message: str | None = None) -> None:
        self.feed_id = feed_id
        super().__init__(f"feed {feed_id!r}: {message or self.default_message}")
        self.reason = message or self.default_message


class FetchError(FeedError):
    kind = "fetch_error"
    default_message = "the request failed"


class HTTPStatusError(FetchError):
    kind = "http_status"

    def __init__(
        self, feed_id: str, status: int, retry_after: float | None = None, message: str | None = None
    ) -> None:
        self.status = status
        self.retry_after = retry_after
        super().__init__(feed_id, message or f"server answered HTTP {status}")


class BlockedURLError(FetchError):
    kind = "blocked_url"
    default_message = "the URL points at a private or loopback address, which is not allowed"


class TooLargeError(FetchError):
    kind = "too_large"
    default_message = "the body is larger than the configured limit"


class FetchTimeoutError(FetchError):
    kind = "timeout"
    default_message = "the request did not finish within the deadline"


class ParseError(FeedError):
    kind = "parse_error"
    default_message = "the body could not be parsed as a feed"


class NotAFeedError(ParseError):
    kind = "not_a_feed"
    default_message = "the body is not an RSS, Atom, JSON Feed or ninjs document"


class UnsafeFeedError(ParseError):
    kind = "unsafe_feed"
    default_message = "the document declares a DTD or entities, which are refused"


class DeliveryError(LivebriefError):
    """A webhook delivery failed; RQ retries it on the documented schedule."""

    def __init__(self, webhook_id: str, message: str) -> None:
        self.webhook_id = webhook_id
        super().__init__(f"webhook {webhook_id!r}: {message}")


class ReceiverBusyError(DeliveryError):
    """The receiver asked to be called again later (429, or 503 with ``Retry-After``): the delivery waits that
    long instead of failing (``worker/notify.py``), until the wait has lasted as long as the retry schedule."""

    def __init__(self, webhook_id: str, status: int, wait: float) -> None:
        self.status = status
        self.wait = wait
        super().__init__(webhook_id, f"receiver answered HTTP {status}, asking to wait {wait:.0f} s")


class BadLineError(LivebriefError):
    """One line of a JSON-lines input cannot be used; the reader adds the file and line it came from."""


class UsageError(LivebriefError):
    """A command's argument or option has a value the command cannot use; the message says which forms it takes."""


class ListenError(LivebriefError):
    """A server cannot listen on the address it was given: the port is taken, or the address is not this
    machine's."""

    def __init__(self, address: tuple[str, int], exc: OSError) -> None:
        host, port = address
        self.address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        hint = _LISTEN_HINTS.get(exc.errno or 0, "")
        super().__init__(f"cannot listen on {self.address}: {exc.strerror or exc}{hint}")


_LISTEN_HINTS = {
    errno.EADDRINUSE: " (another process listens there: stop it, or choose another port)",
    errno.EADDRNOTAVAIL: " (not an address of this machine: use one of its own, 127.0.0.1 or 0.0.0.0 for all)",
    errno.EACCES: " (ports below 1024 need privileges: choose a higher one)",
}
