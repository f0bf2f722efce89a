"""The Prometheus scrape endpoint (`livebrief metrics --listen`, `livebrief run --metrics-listen`): real HTTP
scrapes of a real process against a real redis-server, fresh figures on each scrape, a clear 503 while
Redis is down and figures again once it is back."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import yaml

from livebrief.errors import LivebriefError
from livebrief.exporter import CONTENT_TYPE, parse_listen
from livebrief.keys import Keys, counter_field
from livebrief.redis_server import EmbeddedRedis, free_port
from tests.conftest import REPO
from tests.helpers import stop_session

KEYS = Keys("livebrief")


def scrape(port: int, path: str = "/metrics", timeout: float = 30) -> tuple[int, str, str]:
    """(status, content type, body) of a GET, once the exporter answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.getheader("Content-Type") or "", response.read().decode()
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "lb.yaml"
    path.write_text(yaml.safe_dump({
        "topics_file": str(REPO / "config" / "topics.yaml"),
        "feeds": [{"id": "wire", "name": "Wire", "url": "https://wire.example/rss"}],
    }))
    return path


def start(command: list[str], redis_url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "livebrief.cli", *command],
                            env={**os.environ, "REDIS_URL": redis_url}, cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_each_scrape_reads_the_figures_afresh(tmp_path: Path, client: redis.Redis, redis_url: str) -> None:
    client.hincrby(KEYS.counters, counter_field("items", "new_story"), 3)
    port = free_port()
    exporter = start(["metrics", "--listen", f"127.0.0.1:{port}", "--config", str(write_config(tmp_path))], redis_url)
    try:
        status, content_type, body = scrape(port)
        assert (status, content_type) == (200, CONTENT_TYPE)
        assert 'livebrief_items_total{outcome="new_story"} 3' in body
        assert 'livebrief_feed_failures{feed="wire"} 0' in body

        client.hincrby(KEYS.counters, counter_field("items", "new_story"), 2)
        client.rpush(KEYS.deadletter, "{}")

        _, _, body = scrape(port)
        assert 'livebrief_items_total{outcome="new_story"} 5' in body
        assert "livebrief_dead_letters 1" in body
        assert scrape(port, "/")[0] == 404
    finally:
        stop_session(exporter)


def test_a_scrape_while_redis_is_down_gets_a_503_and_the_next_one_after_it_returns_gets_figures(
    tmp_path: Path,
) -> None:
    server = EmbeddedRedis().start()
    port = free_port()
    exporter = start(["metrics", "--listen", str(port), "--config", str(write_config(tmp_path))], server.url)
    try:
        assert scrape(port)[0] == 200
        server.stop()

        status, _, body = scrape(port)
        assert status == 503
        assert "Redis unavailable" in body

        server = EmbeddedRedis(port=server.port).start()
        assert scrape(port)[0] == 200
        assert exporter.poll() is None
    finally:
        stop_session(exporter)
        server.stop()


def test_run_serves_the_metrics_beside_the_pipeline(tmp_path: Path, client: redis.Redis, redis_url: str) -> None:
    port = free_port()
    run = start(["run", "--workers", "1", "--metrics-listen", str(port), "--config", str(write_config(tmp_path))],
                redis_url)
    try:
        status, _, body = scrape(port, timeout=60)
        assert status == 200
        assert 'livebrief_queue_jobs{queue="livebrief-ingest"}' in body
    finally:
        stop_session(run, 30)


@pytest.mark.parametrize(("value", "address"), [
    ("9464", ("127.0.0.1", 9464)), ("0.0.0.0:9464", ("0.0.0.0", 9464)), ("[::1]:9464", ("::1", 9464)),
])
def test_listen_takes_a_port_or_a_host_and_port(value: str, address: tuple[str, int]) -> None:
    assert parse_listen(value) == address


@pytest.mark.parametrize("value", ["", "host:", "9464x", "host:70000"])
def test_a_bad_listen_address_is_refused(value: str) -> None:
    with pytest.raises(LivebriefError, match="HOST:PORT or PORT"):
        parse_listen(value)
