"""``livebrief demo``: the whole pipeline, offline, on sample feeds written for the project.

It starts a private Redis (unless REDIS_URL is set), serves four sample feeds (RSS 2.0, Atom, JSON Feed, ninjs)
on 127.0.0.1, a webhook receiver that checks Standard Webhooks signatures, and a Redis subscriber that
prints entries as they arrive; then it polls a few "editions" of the feeds: new stories, a syndicated copy
merged into its original, a second outlet joining a story (version 2), a wire story corrected (a new
ninjs version) and another killed (``withdrawn``), and an unchanged round (304s).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from xml.sax.saxutils import escape

import redis

from livebrief.config import SOURCE_ROOT, Config, parse_config
from livebrief.feedserver import FeedServer, QuietHTTPServer
from livebrief.keys import Keys
from livebrief.models import Entry
from livebrief.redis_client import connect
from livebrief.redis_server import EmbeddedRedis
from livebrief.tail import format_entry

# (edition it first appears in, feed, slug, title, text). Invented text in the style of wire copy.
STORIES: list[tuple[int, str, str, str, str]] = [
    (1, "wire", "kharkiv-shelling", "Shelling hits residential district in Kharkiv - Demo Wire",
     "Russian artillery shelled a residential district of Kharkiv overnight, the regional governor said. "
     "Three civilians were killed and eleven wounded when shells struck apartment blocks near a market. "
     "Rescue teams searched the rubble through the morning."),
    (1, "wire", "istanbul-talks", "Negotiators to meet in Istanbul for new round of peace talks",
     "Ukrainian and Russian negotiators will meet in Istanbul on Tuesday for a new round of peace talks, "
     "officials on both sides said. A ceasefire and security guarantees are expected to top the agenda."),
    (1, "daily", "kharkiv-shelling-copy", "Shelling hits residential district in Kharkiv | Demo Daily",
     "Russian artillery shelled a residential district of Kharkiv overnight, the regional governor said. "
     "Three civilians were killed and eleven wounded when shells struck apartment blocks near a market. "
     "Rescue teams searched the rubble through the morning."),
    (1, "daily", "tram-line", "City opens new tram line to the airport",
     "The city opened its new tram line to the airport on Monday after three years of construction. "
     "Trams will run every ten minutes from early morning."),
    (1, "aid", "mariupol-corridor", "Convoy evacuates civilians from Mariupol through humanitarian corridor",
     "A convoy of buses evacuated about two thousand civilians from Mariupol through a humanitarian corridor, "
     "aid workers said. Many of the evacuees had spent weeks in basements without water or power. "
     "SEE ALSO: How to help refugees arriving in Poland"),
    (2, "aid", "lviv-shelters", "Shelters in Lviv fill as refugees arrive from the east",
     "Shelters in Lviv are full as thousands of displaced people arrive from eastern Ukraine each day, "
     "city officials said. Volunteers are converting schools and gyms into temporary housing."),
    (2, "wire", "drone-strike-odesa", "Drone strike sets fuel depot ablaze near Odesa",
     "A drone strike set a fuel depot ablaze near Odesa early on Wednesday, the regional military "
     "administration said. No casualties were reported. Firefighters brought the blaze under control by noon."),
    (2, "daily", "istanbul-talks-daily", "Peace talks resume in Istanbul as delegations meet",
     "Ukrainian and Russian negotiators met in Istanbul on Tuesday for a new round of peace talks. "
     "Officials said a ceasefire and security guarantees topped the agenda, and a further meeting was possible."),
]
OUTLETS = {"wire": "Demo Wire", "daily": "Demo Daily", "aid": "Demo Aid Desk", "agency": "Demo Agency"}

# A wire service (IPTC ninjs) across the editions: a story, its corrected version, a second story, its kill.
AGENCY: dict[int, list[dict[str, Any]]] = {
    1: [{"uri": "urn:demo:agency:zaporizhzhia", "version": "1", "pubstatus": "usable",
         "headline": "Missile strike damages power line near Zaporizhzhia",
         "body_text": "A missile strike damaged a high-voltage power line near Zaporizhzhia overnight, the grid "
                      "operator said. Repair crews were sent to the site at dawn."}],
    2: [{"uri": "urn:demo:agency:zaporizhzhia", "version": "2", "pubstatus": "usable",
         "headline": "Missile strike cuts power to 40,000 homes near Zaporizhzhia",
         "body_text": "A missile strike damaged a high-voltage power line near Zaporizhzhia overnight, cutting power "
                      "to about 40,000 homes, the grid operator said. Repair crews were sent to the site at dawn."},
        {"uri": "urn:demo:agency:ceasefire", "version": "1", "pubstatus": "usable",
         "headline": "Local ceasefire agreed for evacuation of Vuhledar, officials say",
         "body_text": "Negotiators agreed a local ceasefire to allow civilians to leave Vuhledar, officials said."}],
    3: [{"uri": "urn:demo:agency:ceasefire", "version": "2", "pubstatus": "canceled",
         "headline": "KILL: Local ceasefire agreed for evacuation of Vuhledar",
         "body_text": "This story has been withdrawn: the agreement was not confirmed. Do not use."}],
}
BASE = datetime(2022, 3, 29, 6, 0, tzinfo=UTC)


def _items(feed: str, edition: int) -> list[tuple[int, str, str, str]]:
    return [(i, slug, title, text) for i, (ed, f, slug, title, text) in enumerate(STORIES)
            if f == feed and ed <= edition]


def render_rss(edition: int) -> str:
    parts = []
    for i, slug, title, text in _items("wire", edition):
        when = format_datetime(BASE + timedelta(minutes=10 * i))
        parts.append(f"<item><title>{escape(title)}</title><link>https://wire.demo.invalid/{slug}?utm_source=rss"
                     f"</link><guid isPermaLink=\"false\">wire-{slug}</guid><pubDate>{when}</pubDate>"
                     f"<description>{escape('<p>' + text + '</p>')}</description></item>")
    return ('<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Demo Wire</title>'
            "<link>https://wire.demo.invalid/</link><description>sample feed</description>"
            + "".join(parts) + "</channel></rss>")


def render_atom(edition: int) -> str:
    parts = []
    for i, slug, title, text in _items("daily", edition):
        when = (BASE + timedelta(minutes=10 * i + 3)).isoformat()
        parts.append(f"<entry><title>{escape(title)}</title><id>urn:demo:daily:{slug}</id>"
                     f'<link href="https://daily.demo.invalid/{slug}"/><updated>{when}</updated>'
                     f"<published>{when}</published><summary>{escape(text)}</summary></entry>")
    return ('<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
            f"<title>Demo Daily</title><id>urn:demo:daily</id><updated>{BASE.isoformat()}</updated>"
            + "".join(parts) + "</feed>")


def render_ninjs(edition: int) -> str:
    items = [{**item, "type": "text", "firstcreated": (BASE + timedelta(minutes=2)).isoformat(),
              "versioncreated": (BASE + timedelta(minutes=10 * edition)).isoformat()}
             for item in AGENCY.get(edition, [])]
    return json.dumps({"items": items})


def render_json(edition: int) -> str:
    items = [{"id": f"aid-{slug}", "url": f"https://aid.demo.invalid/{slug}", "title": title,
              "content_html": f"<p>{text}</p>",
              "date_published": (BASE + timedelta(minutes=10 * i + 5)).isoformat()}
             for i, slug, title, text in _items("aid", edition)]
    return json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "Demo Aid Desk", "items": items})


class _Receiver:
    """A webhook receiver that checks each delivery's signature, as a real one would."""

    def __init__(self, secret: str, out: Any) -> None:
        from worker.notify import verify

        receiver = self
        self.count = 0

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                return

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                ok = verify(secret, {k.lower(): v for k, v in self.headers.items()}, body)
                event = json.loads(body)
                receiver.count += 1
                print(f"    webhook <- {event['type']} v{event['data']['version']} "
                      f"(signature {'verified' if ok else 'INVALID'}, id {self.headers['webhook-id']})",
                      file=out, flush=True)
                self.send_response(204 if ok else 401)
                self.end_headers()

        self.httpd = QuietHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"


def _config(redis_url: str, prefix: str, feeds: FeedServer, hook_url: str, secret: str) -> Config:
    return parse_config({
        "redis_url": redis_url,
        "prefix": prefix,
        "topics_file": str(SOURCE_ROOT / "config" / "topics.yaml"),
        "feeds": [
            {"id": "demo-wire", "name": OUTLETS["wire"], "url": feeds.url("/wire.rss")},
            {"id": "demo-daily", "name": OUTLETS["daily"], "url": feeds.url("/daily.atom")},
            {"id": "demo-aid", "name": OUTLETS["aid"], "url": feeds.url("/aid.json")},
            {"id": "demo-agency", "name": OUTLETS["agency"], "url": feeds.url("/agency.json"), "kind": "ninjs"},
        ],
        "webhooks": [{"id": "demo-receiver", "url": hook_url, "secret": secret, "retry_intervals": [1, 2]}],
        "polling": {"allow_private": True, "timeout": 10},
    }, "(demo configuration)")


def run_demo(rounds: int = 3, pause: float = 2.0, out: Any = sys.stdout) -> int:
    from feeds.poller import Poller
    from livebrief.workers import run_worker

    server = None if os.environ.get("REDIS_URL") else EmbeddedRedis().start()
    redis_url = os.environ.get("REDIS_URL") or (server.url if server else "")
    # In a Redis of the user's, a prefix of this run's own, forgotten at the end: with one name, a second
    # demo found every item already published and showed nothing.
    prefix = "livebrief-demo" if server else f"livebrief-demo-{secrets.token_hex(4)}"
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    feeds = FeedServer().start()
    receiver = _Receiver(secret, out)
    config = _config(redis_url, prefix, feeds, receiver.url, secret)
    keys = Keys(config.prefix)
    client = connect(redis_url)
    stop = threading.Event()

    def subscriber() -> None:
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(keys.all_channel)
        while not stop.is_set():
            message = pubsub.get_message(timeout=0.2)
            if message and message["type"] == "message":
                print(format_entry(Entry.model_validate_json(message["data"])), file=out, flush=True)
        pubsub.close()

    listener = threading.Thread(target=subscriber, daemon=True)
    listener.start()
    print(f"livebrief demo: Redis {redis_url}, feeds on 127.0.0.1:{feeds.port}, entries below as a "
          f"subscriber of {keys.all_channel} sees them.\n", file=out, flush=True)
    poller = Poller(config, client, parse_workers=0)
    try:
        for edition in range(1, rounds + 1):
            content = min(edition, 2)  # the last round serves unchanged feeds: 304 Not Modified
            feeds.set("/wire.rss", render_rss(content), "application/rss+xml")
            feeds.set("/daily.atom", render_atom(content), "application/atom+xml")
            feeds.set("/aid.json", render_json(content), "application/feed+json")
            feeds.set("/agency.json", render_ninjs(edition), "application/json")
            print(f"--- round {edition}: polling 4 feeds ---", file=out, flush=True)
            report = asyncio.run(poller.poll_once(force=True))
            run_worker(config, client, burst=True, simple=True)
            time.sleep(0.5)
            print(f"    fetched {report.fetched}, unchanged (304) {report.not_modified}, failed {report.failed}, "
                  f"new items {report.new_items}", file=out, flush=True)
            if edition < rounds:
                time.sleep(pause)
        print(f"\ndone: {client.xlen(keys.entries_stream)} entry versions on stream {keys.entries_stream}, "
              f"{receiver.count} webhook deliveries.", file=out, flush=True)
    finally:
        stop.set()
        listener.join(2)
        poller.close()
        feeds.stop()
        receiver.httpd.shutdown()
        if server is not None:
            server.stop()
        else:
            _forget(client, prefix)
    return 0


def _forget(client: redis.Redis, prefix: str) -> None:
    """Delete what a demo wrote under ``prefix`` in a Redis it does not own: its keys, and RQ's queues and
    registries of its two queues (its finished jobs expire by themselves)."""
    for pattern in (f"{prefix}:*", f"rq:*:{prefix}-*"):
        found = list(client.scan_iter(match=pattern, count=1000))  # a demo writes a few hundred keys
        for start in range(0, len(found), 500):
            client.unlink(*found[start:start + 500])
    client.srem("rq:queues", f"rq:queue:{prefix}-ingest", f"rq:queue:{prefix}-deliveries")
