"""Push: WebSub subscription and verification, signed content distribution, signed direct wire pushes."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx
import pytest
import redis

from feeds.poller import Poller
from feeds.push import PushReceiver, Subscription, Subscriptions, needs_subscription
from livebrief.config import Config
from livebrief.feedserver import FeedServer
from livebrief.keys import Keys
from livebrief.redis_server import free_port
from livebrief.signing import hub_signature, sign
from livebrief.workers import run_worker
from tests.conftest import fixture_bytes, make_config
from tests.helpers import stream_headlines

PUSH_SECRET = "whsec_" + base64.b64encode(b"push-secret-for-livebrief-tests!").decode()


class FakeHub:
    """A WebSub hub on 127.0.0.1: accepts subscriptions, verifies the callback, distributes content."""

    def __init__(self) -> None:
        self.subscriptions: dict[str, dict[str, str]] = {}
        self.verified = threading.Event()
        self.unsubscribed = threading.Event()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                return

            def do_POST(self) -> None:  # noqa: N802
                form = {
                    k: v[0] for k, v in parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode()).items()
                }
                hub.subscriptions[form["hub.topic"]] = form
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()
                threading.Thread(target=hub._verify, args=(form,), daemon=True).start()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def _verify(self, form: dict[str, str]) -> None:
        challenge = secrets.token_hex(8)
        query = urlencode(
            {
                "hub.mode": form["hub.mode"],
                "hub.topic": form["hub.topic"],
                "hub.challenge": challenge,
                "hub.lease_seconds": "3600",
            }
        )
        try:
            response = httpx.get(f"{form['hub.callback']}?{query}", timeout=5)
        except httpx.HTTPError:
            return  # the subscriber is gone (a test ended): a hub would simply not confirm
        if response.status_code == 200 and response.text == challenge:
            (self.unsubscribed if form["hub.mode"] == "unsubscribe" else self.verified).set()

    def publish(self, topic: str, body: bytes, secret: str | None = None) -> httpx.Response:
        form = self.subscriptions[topic]
        signature = hub_signature(secret or form["hub.secret"], body)
        return httpx.post(
            form["hub.callback"],
            content=body,
            timeout=5,
            headers={"Content-Type": "application/rss+xml", "X-Hub-Signature": signature},
        )

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def rss(hub: str, items: list[tuple[str, str]]) -> bytes:
    body = "".join(
        f"<item><title>{t}</title><link>https://p.example/{g}</link><guid>{g}</guid>"
        f"<description>{t}, officials said on Monday.</description></item>"
        for g, t in items
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel>'
        f'<title>P</title><atom:link rel="hub" href="{hub}"/>{body}</channel></rss>'
    ).encode()


@pytest.fixture
def hub() -> Any:
    fake = FakeHub()
    yield fake
    fake.stop()


def push_config(redis_url: str, feed_server: FeedServer, port: int) -> Config:
    return make_config(
        redis_url,
        [{"id": "p", "name": "Pushed", "url": feed_server.url("/p.xml"), "interval": 1}],
        push={
            "enabled": True,
            "listen": f"127.0.0.1:{port}",
            "public_url": f"http://127.0.0.1:{port}",
            "fallback_interval": 600,
            "secret": PUSH_SECRET,
        },
    )


def subscribed(
    redis_url: str, client: redis.Redis, feed_server: FeedServer, hub: FakeHub
) -> tuple[Config, PushReceiver]:
    port = free_port()
    config = push_config(redis_url, feed_server, port)
    feed_server.set("/p.xml", rss(hub.url, [("g1", "Port authority reopens grain terminal")]))
    receiver = PushReceiver(config, client).start()
    poller = Poller(config, client, parse_workers=0)
    asyncio.run(poller.poll_once(force=True))
    assert hub.verified.wait(10), "the hub's verification request was not answered with the challenge"
    return config, receiver


def test_feed_naming_a_hub_is_subscribed_and_verified(
    client: redis.Redis, redis_url: str, feed_server: FeedServer, hub: FakeHub
) -> None:
    config, receiver = subscribed(redis_url, client, feed_server, hub)
    try:
        sub = Subscriptions(client, Keys(config.prefix)).get("p")
        assert sub is not None and sub.state == "active" and sub.lease_until > time.time() + 3000
        form = hub.subscriptions[feed_server.url("/p.xml")]
        assert form["hub.callback"] == f"{config.push.public_url}/websub/p"
        assert len(form["hub.secret"]) >= 32
    finally:
        receiver.stop()


def test_pushed_update_reaches_the_stream(
    client: redis.Redis, redis_url: str, feed_server: FeedServer, hub: FakeHub
) -> None:
    config, receiver = subscribed(redis_url, client, feed_server, hub)
    try:
        run_worker(config, client, burst=True, simple=True)
        body = rss(
            hub.url,
            [("g2", "Rail link to the border reopens for passengers"), ("g1", "Port authority reopens grain terminal")],
        )
        assert hub.publish(feed_server.url("/p.xml"), body).status_code == 202
        run_worker(config, client, burst=True, simple=True)
    finally:
        receiver.stop()
    assert stream_headlines(client, config.prefix) == [
        "Port authority reopens grain terminal",
        "Rail link to the border reopens for passengers",
    ]


def test_push_with_a_bad_signature_is_acknowledged_and_dropped(
    client: redis.Redis, redis_url: str, feed_server: FeedServer, hub: FakeHub
) -> None:
    config, receiver = subscribed(redis_url, client, feed_server, hub)
    try:
        run_worker(config, client, burst=True, simple=True)
        forged = rss(hub.url, [("g9", "Forged story that must never appear")])
        assert hub.publish(feed_server.url("/p.xml"), forged, secret="not-the-secret").status_code == 202
        run_worker(config, client, burst=True, simple=True)
    finally:
        receiver.stop()
    assert "Forged story that must never appear" not in stream_headlines(client, config.prefix)


def test_verification_of_a_topic_never_asked_for_is_refused(
    client: redis.Redis, redis_url: str, feed_server: FeedServer
) -> None:
    port = free_port()
    receiver = PushReceiver(push_config(redis_url, feed_server, port), client).start()
    try:
        query = urlencode({"hub.mode": "subscribe", "hub.topic": "https://evil.example/feed", "hub.challenge": "x"})
        response = httpx.get(f"http://127.0.0.1:{port}/websub/p?{query}", timeout=5)
    finally:
        receiver.stop()
    assert response.status_code == 404 and response.text != "x"


def test_signed_direct_wire_push_is_accepted_and_unsigned_refused(
    client: redis.Redis, redis_url: str, feed_server: FeedServer
) -> None:
    port = free_port()
    config = push_config(redis_url, feed_server, port)
    receiver = PushReceiver(config, client).start()
    body = json.dumps(json.loads(fixture_bytes("wire/ninjs-v1.json"))["items"][0]).encode()
    now = int(time.time())
    headers = {
        "content-type": "application/json",
        "webhook-id": "msg_1",
        "webhook-timestamp": str(now),
        "webhook-signature": sign(PUSH_SECRET, "msg_1", now, body),
    }
    try:
        unsigned = httpx.post(f"http://127.0.0.1:{port}/push/p", content=body, timeout=5)
        signed = httpx.post(f"http://127.0.0.1:{port}/push/p", content=body, headers=headers, timeout=5)
        run_worker(config, client, burst=True, simple=True)
    finally:
        receiver.stop()
    assert unsigned.status_code == 401
    assert signed.status_code == 202
    assert stream_headlines(client, config.prefix) == ["Missile strike hits port warehouse in Odesa"]


def _raw_post(port: int, headers: dict[str, str], body: bytes) -> int:
    """POST with header values as given (latin-1, as http.server reads them); the answer's status, or 0
    when the connection closed without one."""
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"POST /push/p HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}\r\n".encode("latin-1") + body)
        answer = sock.recv(1024)
    return int(answer.split()[1]) if answer else 0


def test_a_push_with_a_length_or_timestamp_in_odd_digits_gets_an_answer(
    client: redis.Redis, redis_url: str, feed_server: FeedServer
) -> None:
    # '²' passes str.isdigit() and fails int(): the handler raised and the connection closed unanswered.
    port = free_port()
    receiver = PushReceiver(push_config(redis_url, feed_server, port), client).start()
    body = b'{"uri": "urn:x:1", "headline": "H"}'
    try:
        odd_length = _raw_post(port, {"Content-Length": "\u00b2"}, body)
        odd_stamp = _raw_post(port, {"Content-Length": str(len(body)), "webhook-id": "msg_1",
                                     "webhook-timestamp": "\u00b2", "webhook-signature": "v1,x"}, body)
    finally:
        receiver.stop()
    assert (odd_length, odd_stamp) == (413, 401)


def test_pushed_feed_is_still_polled_as_a_safety_net(
    client: redis.Redis, redis_url: str, feed_server: FeedServer, hub: FakeHub
) -> None:
    config, receiver = subscribed(redis_url, client, feed_server, hub)
    try:
        poller = Poller(config, client, parse_workers=0)
        before = time.time()
        asyncio.run(poller.poll_once(force=True))
        due = poller.schedule.due_times()["p"]
    finally:
        receiver.stop()
    assert before + 0.9 * config.push.fallback_interval <= due  # not every second, but still scheduled


def test_lease_is_renewed_when_a_tenth_is_left() -> None:
    sub = Subscription(hub="h", topic="t", secret="s", state="active", requested_at=0, lease_until=10_000)
    assert not needs_subscription(sub, "h", "t", now=10_000 - 2_000, lease=10_000)
    assert needs_subscription(sub, "h", "t", now=10_000 - 900, lease=10_000)
    assert needs_subscription(sub, "other-hub", "t", now=0, lease=10_000)
    assert needs_subscription(None, "h", "t", now=0, lease=10_000)


def test_a_feed_removed_from_the_config_is_unsubscribed_from_its_hub(
    client: redis.Redis, redis_url: str, feed_server: FeedServer, hub: FakeHub
) -> None:
    config, receiver = subscribed(redis_url, client, feed_server, hub)
    receiver.stop()
    feed_server.set("/q.xml", rss(hub.url, []))
    port = int(config.push.listen.rpartition(":")[2])
    without_p = make_config(redis_url, [{"id": "q", "name": "Q", "url": feed_server.url("/q.xml")}],
                            push=config.push.model_dump(exclude_none=True))
    receiver = PushReceiver(without_p, client, listen=f"127.0.0.1:{port}").start()
    try:
        asyncio.run(Poller(without_p, client, parse_workers=0).poll_once(force=True))
        assert hub.unsubscribed.wait(10), "the hub's unsubscribe verification was not answered"
    finally:
        receiver.stop()
    assert hub.subscriptions[feed_server.url("/p.xml")]["hub.mode"] == "unsubscribe"
    assert Subscriptions(client, Keys(config.prefix)).get("p") is None


def test_unsubscribe_verification_nobody_asked_for_is_refused(
    client: redis.Redis, redis_url: str, feed_server: FeedServer, hub: FakeHub
) -> None:
    config, receiver = subscribed(redis_url, client, feed_server, hub)
    try:
        query = urlencode({"hub.mode": "unsubscribe", "hub.topic": feed_server.url("/p.xml"), "hub.challenge": "x"})
        response = httpx.get(f"{config.push.public_url}/websub/p?{query}", timeout=5)
    finally:
        receiver.stop()
    assert response.status_code == 404
    sub = Subscriptions(client, Keys(config.prefix)).get("p")
    assert sub is not None and sub.state == "active"
