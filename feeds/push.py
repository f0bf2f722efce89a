"""Push: WebSub subscriptions and the HTTP receiver for hub notifications and direct wire pushes.

- A feed whose document names a hub (``<link rel="hub">``, JSON Feed ``hubs``, or an HTTP ``Link`` header)
  is subscribed by the poller: ``hub.mode=subscribe`` with a per-subscription ``hub.secret`` and our
  callback ``<push.public_url>/websub/<feed id>``; the lease is renewed when less than a tenth of it is left.
- The receiver answers the hub's verification GET by echoing ``hub.challenge`` (only for a topic we asked
  for), and accepts content POSTs only with a valid ``X-Hub-Signature`` (other POSTs are acknowledged, as
  the specification requires, and dropped). The pushed document goes through the same parse and
  new-item filter as a polled one.
- ``POST /push/<feed id>`` accepts ninjs items (or any feed document) signed like our own outgoing
  webhooks (Standard Webhooks headers, ``push.secret``).
- Polling never stops: a pushed feed is still polled every ``push.fallback_interval`` in case its hub goes
  quiet.
"""

from __future__ import annotations

import secrets
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal, cast
from urllib.parse import parse_qs, urlsplit

import aiohttp
import redis
import structlog
from pydantic import BaseModel

from feeds.parse import parse_feed
from livebrief.config import Config, FeedConfig
from livebrief.errors import FeedError, FetchError, ListenError
from livebrief.exporter import parse_listen
from livebrief.feedserver import QuietHTTPServer
from livebrief.ingest import enqueue_new_items
from livebrief.keys import Keys
from livebrief.numbers import ascii_int
from livebrief.signing import verify, verify_hub_signature

log = structlog.get_logger(__name__)
PENDING_TIMEOUT = 600.0


class Subscription(BaseModel):
    hub: str
    topic: str
    secret: str
    state: Literal["pending", "active", "denied", "unsubscribing"] = "pending"
    requested_at: float = 0.0
    lease_until: float = 0.0
    last_push: float | None = None
    pushes: int = 0

    def active(self, now: float) -> bool:
        return self.state == "active" and self.lease_until > now


class Subscriptions:
    """WebSub subscription state, one Redis hash per feed."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys

    def get(self, feed_id: str) -> Subscription | None:
        return self._decode(cast(dict[bytes, bytes], self.client.hgetall(self.keys.push(feed_id))))

    def get_many(self, feed_ids: list[str]) -> dict[str, Subscription]:
        """The subscriptions of these feeds (those that have one), in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for feed_id in feed_ids:
            pipe.hgetall(self.keys.push(feed_id))
        found = {f: self._decode(raw) for f, raw in zip(feed_ids, pipe.execute(), strict=True)}
        return {f: s for f, s in found.items() if s is not None}

    def feed_ids(self) -> list[str]:
        """Every feed with a subscription record, configured or not (SCAN: for start-up, not hot paths)."""
        prefix = self.keys.push("")
        return [key.decode()[len(prefix):] for key in self.client.scan_iter(match=f"{prefix}*", count=500)]

    def delete(self, feed_id: str) -> None:
        self.client.delete(self.keys.push(feed_id))

    @staticmethod
    def _decode(raw: dict[bytes, bytes]) -> Subscription | None:
        if not raw:
            return None
        return Subscription.model_validate({k.decode(): v.decode() for k, v in raw.items()})

    def put(self, feed_id: str, sub: Subscription) -> None:
        data = {k: str(v) for k, v in sub.model_dump().items() if v is not None}
        self.client.hset(self.keys.push(feed_id), mapping=data)


def needs_subscription(sub: Subscription | None, hub: str, topic: str, now: float, lease: float) -> bool:
    """Whether to (re)subscribe: never asked, another hub or topic, denied long ago, a verification that
    never came, or less than a tenth of the lease left."""
    if sub is None or sub.hub != hub or sub.topic != topic:
        return True
    if sub.state == "pending":
        return now - sub.requested_at > PENDING_TIMEOUT
    if sub.state == "denied":
        return now - sub.requested_at > lease
    return sub.lease_until - now < lease / 10


def callback_url(config: Config, feed_id: str) -> str:
    return f"{(config.push.public_url or '').rstrip('/')}/websub/{feed_id}"


async def _post_form(http: aiohttp.ClientSession, url: str, form: dict[str, str], timeout: float) -> int:
    async with http.post(url, data=form, allow_redirects=False,
                         timeout=aiohttp.ClientTimeout(total=timeout)) as response:
        await response.read()
        return response.status


async def subscribe(
    http: aiohttp.ClientSession, subs: Subscriptions, config: Config, feed: FeedConfig, hub: str, now: float
) -> Subscription:
    """Ask ``hub`` to push ``feed``; the hub confirms later by calling our callback (see the receiver)."""
    old = subs.get(feed.id)
    secret = old.secret if old is not None and old.hub == hub else secrets.token_hex(24)
    sub = Subscription(hub=hub, topic=feed.url, secret=secret, state="pending", requested_at=now,
                       lease_until=old.lease_until if old else 0.0)
    subs.put(feed.id, sub)
    form = {"hub.mode": "subscribe", "hub.topic": feed.url, "hub.callback": callback_url(config, feed.id),
            "hub.secret": secret, "hub.lease_seconds": str(config.push.lease_seconds)}
    try:
        status = await _post_form(http, hub, form, config.polling.timeout)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise FetchError(feed.id, f"WebSub subscription to {hub} failed: {type(exc).__name__}") from exc
    if status >= 300:
        raise FetchError(feed.id, f"WebSub hub {hub} refused the subscription: HTTP {status}")
    log.info("websub_subscribe_requested", feed=feed.id, hub=hub)
    return sub


async def unsubscribe(
    http: aiohttp.ClientSession, subs: Subscriptions, config: Config, feed_id: str, sub: Subscription, now: float
) -> None:
    """Ask the hub to stop pushing a feed that is no longer configured; the hub confirms by calling back."""
    subs.put(feed_id, sub.model_copy(update={"state": "unsubscribing", "requested_at": now}))
    form = {"hub.mode": "unsubscribe", "hub.topic": sub.topic, "hub.callback": callback_url(config, feed_id)}
    try:
        status = await _post_form(http, sub.hub, form, config.polling.timeout)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise FetchError(feed_id, f"WebSub unsubscription from {sub.hub} failed: {type(exc).__name__}") from exc
    if status >= 300:
        raise FetchError(feed_id, f"WebSub hub {sub.hub} refused the unsubscription: HTTP {status}")
    log.info("websub_unsubscribe_requested", feed=feed_id, hub=sub.hub)


class PushReceiver:
    """The HTTP receiver. ``start()`` serves in a background thread; ``stop()`` ends it."""

    def __init__(self, config: Config, client: redis.Redis, listen: str | None = None) -> None:
        # A push.secret_env that is unset or no valid secret: ConfigError naming it now, not a 401 per push.
        config.push.resolved_secret()
        self.config = config
        self.client = client
        self.keys = Keys(config.prefix)
        self.subs = Subscriptions(client, self.keys)
        self.feeds = {f.id: f for f in config.feeds}
        address = parse_listen(listen or config.push.listen, option="--listen" if listen else "push.listen")
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                return

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                receiver._get(self)

            def do_POST(self) -> None:  # noqa: N802
                receiver._post(self)

        try:
            self.httpd = QuietHTTPServer(address, Handler)
        except OSError as exc:
            raise ListenError(address, exc) from exc

    @property
    def address(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> PushReceiver:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        log.info("push_receiver_listening", address=self.address)
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # --- handlers -------------------------------------------------------------------------------------

    @staticmethod
    def _reply(req: BaseHTTPRequestHandler, status: int, body: bytes = b"", content_type: str = "text/plain") -> None:
        req.send_response(status)
        req.send_header("Content-Type", content_type)
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)

    @staticmethod
    def _route(req: BaseHTTPRequestHandler) -> tuple[str, str]:
        """(``websub``/``push``/``healthz``, feed id) of a request path."""
        parts = urlsplit(req.path).path.strip("/").split("/")
        return parts[0], parts[1] if len(parts) == 2 else ""

    def _get(self, req: BaseHTTPRequestHandler) -> None:
        kind, feed_id = self._route(req)
        if kind == "healthz":
            self._reply(req, 200, b"ok")
            return
        if kind != "websub" or not feed_id:
            self._reply(req, 404, b"unknown feed")
            return
        # Looked up by id, not in the config: a removed feed still answers its hub's unsubscribe verification.
        query = {k: v[0] for k, v in parse_qs(urlsplit(req.path).query).items()}
        sub = self.subs.get(feed_id)
        mode, topic = query.get("hub.mode"), query.get("hub.topic")
        if sub is None or topic != sub.topic:
            self._reply(req, 404, b"no such subscription")
            return
        if mode == "unsubscribe":
            if sub.state != "unsubscribing" or "hub.challenge" not in query:
                self._reply(req, 404, b"no unsubscription was asked for")
                return
            self.subs.delete(feed_id)
            log.info("websub_unsubscribed", feed=feed_id)
            self._reply(req, 200, query["hub.challenge"].encode())
            return
        feed = self.feeds.get(feed_id)
        if feed is None:
            self._reply(req, 404, b"unknown feed")
            return
        if mode == "denied":
            self.subs.put(feed.id, sub.model_copy(update={"state": "denied"}))
            log.warning("websub_denied", feed=feed.id, reason=query.get("hub.reason"))
            self._reply(req, 200)
            return
        if mode != "subscribe" or "hub.challenge" not in query:
            self._reply(req, 404, b"unexpected verification")
            return
        lease = ascii_int(query.get("hub.lease_seconds", ""))
        seconds = float(lease if lease is not None else self.config.push.lease_seconds)
        self.subs.put(feed.id, sub.model_copy(update={"state": "active", "lease_until": time.time() + seconds}))
        log.info("websub_verified", feed=feed.id, lease=seconds)
        self._reply(req, 200, query["hub.challenge"].encode())

    def _body(self, req: BaseHTTPRequestHandler) -> bytes | None:
        length = ascii_int(req.headers.get("Content-Length", ""))
        if length is None or length > self.config.polling.max_body_bytes:
            self._reply(req, 413, b"body missing or too large")
            return None
        return req.rfile.read(length)

    def _post(self, req: BaseHTTPRequestHandler) -> None:
        kind, feed_id = self._route(req)
        feed = self.feeds.get(feed_id)
        if kind not in ("websub", "push") or feed is None:
            self._reply(req, 404, b"unknown feed")
            return
        body = self._body(req)
        if body is None:
            return
        headers = {k.lower(): v for k, v in req.headers.items()}
        bound = log.bind(feed=feed.id, via=kind)
        if kind == "websub":
            sub = self.subs.get(feed.id)
            if sub is None or not verify_hub_signature(sub.secret, headers.get("x-hub-signature"), body):
                # The specification asks for a 2xx anyway, so a forger learns nothing.
                bound.warning("push_signature_invalid")
                self._reply(req, 202)
                return
            self.subs.put(feed.id, sub.model_copy(update={"last_push": time.time(), "pushes": sub.pushes + 1}))
        else:
            secret = self.config.push.resolved_secret()
            if not secret or not verify(secret, headers, body):
                bound.warning("push_signature_invalid")
                self._reply(req, 401, b"invalid signature")
                return
        try:
            queued = self.ingest(feed, body, headers)
        except FeedError as exc:
            bound.warning("push_rejected", kind=exc.kind, error=exc.reason)
            self._reply(req, 400, exc.reason.encode())
            return
        bound.info("push_received", new=queued)
        self._reply(req, 202)

    def ingest(self, feed: FeedConfig, body: bytes, headers: dict[str, Any]) -> int:
        """Parse a pushed document and queue its new items, exactly as a poll would."""
        parsed = parse_feed(body, feed_id=feed.id, outlet=feed.name, fetched=datetime.now(UTC), headers=headers,
                            max_entries=self.config.polling.max_entries,
                            max_text_chars=self.config.polling.max_text_chars)
        return enqueue_new_items(self.client, self.config, feed.id, parsed.items, time.time())
