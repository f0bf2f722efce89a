"""Real parts for the tests: a throwaway redis-server on a free port, real HTTP servers on 127.0.0.1
serving fixture feeds, and a real webhook receiver that checks Standard Webhooks signatures."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis

from livebrief.config import Config, parse_config
from livebrief.feedserver import FeedServer
from livebrief.redis_server import EmbeddedRedis, free_port
from worker.notify import verify

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).parent.parent
TEST_SECRET = "whsec_" + "dGVzdC1zZWNyZXQtZm9yLWxpdmVicmllZi10ZXN0cw=="


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    """One private redis-server for the whole run; each test starts from an empty database."""
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    return redis_server.url


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url)
    conn.flushdb()  # our own throwaway server, never a developer's Redis
    yield conn
    conn.close()


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    with FeedServer() as server:
        yield server


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


class WebhookReceiver:
    """Records POSTs; ``statuses`` then ``status`` set the answers; ``stop()``/``start()`` take it down and back
    on one port."""

    def __init__(self, secret: str = TEST_SECRET) -> None:
        self.secret = secret
        self.port = free_port()
        self.status = 200
        self.statuses: list[int] = []  # answers for the next requests, in order, before ``status`` applies
        self.retry_after: str | None = None  # sent as Retry-After with 429 and 503 answers when set
        self.received: list[dict[str, Any]] = []  # every request, verified or not
        self.on_post: Callable[[int], None] | None = None  # called with each request's number (1, 2, ...) first
        self._httpd: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    @property
    def delivered(self) -> list[dict[str, Any]]:
        """Requests answered 2xx whose signature verified."""
        return [r for r in self.received if r["verified"] and r["answered"] < 300]

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                return

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else receiver.status
                    receiver.received.append({
                        "headers": headers, "body": json.loads(body), "answered": status,
                        "verified": verify(receiver.secret, headers, body), "at": time.time(),
                    })
                    number = len(receiver.received)
                if receiver.on_post is not None:
                    receiver.on_post(number)
                self.send_response(status)
                if status in (429, 503) and receiver.retry_after is not None:
                    self.send_header("Retry-After", receiver.retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._httpd.allow_reuse_address = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver().start()
    yield receiver
    receiver.stop()


def make_config(redis_url: str, feeds: list[dict[str, Any]], **extra: Any) -> Config:
    """A config as a user would write it, pointing at local servers."""
    data: dict[str, Any] = {
        "redis_url": redis_url,
        "topics_file": str(REPO / "config" / "topics.yaml"),
        "feeds": feeds,
        "polling": {"allow_private": True, "timeout": 10, **extra.pop("polling", {})},
    }
    data.update(extra)
    return parse_config(data, str(REPO / "tests" / "generated-config.yaml"))
