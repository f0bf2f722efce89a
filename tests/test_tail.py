"""`livebrief tail`: live entries as a subscriber sees them, and catching up from the stream."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import redis
import yaml

from livebrief.redis_server import EmbeddedRedis
from tests.conftest import REPO, make_config
from tests.helpers import make_item, until
from worker.jobs import run_batch
from worker.runtime import configure


def _config_file(tmp_path: Path) -> Path:
    path = tmp_path / "lb.yaml"
    path.write_text(yaml.safe_dump({"topics_file": str(REPO / "config" / "topics.yaml")}))
    return path


def wait_for_reader(client: redis.Redis, timeout: float = 20) -> None:
    """Until a client (tail) waits on the stream."""
    assert until(lambda: any(c.get("cmd") == "xread" for c in client.client_list()), timeout), \
        "tail never started reading"


def test_offline_subscriber_catches_up_from_the_stream(tmp_path: Path, client: redis.Redis, redis_url: str) -> None:
    runtime = configure(make_config(redis_url, []))
    run_batch(client, runtime, [make_item("wire", n) for n in range(3)])
    first_id = client.xrange(runtime.keys.entries_stream)[0][0].decode()
    run_batch(client, runtime, [make_item("wire", n) for n in range(3, 5)])

    result = subprocess.run(
        [sys.executable, "-m", "livebrief.cli", "tail", "--since", first_id, "--no-follow", "--json",
         "--config", str(_config_file(tmp_path))],
        env={**os.environ, "REDIS_URL": redis_url}, capture_output=True, text=True, timeout=60, cwd=REPO,
    )

    assert result.returncode == 0, result.stderr
    entries = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(entries) == 4  # everything after the given id


def _tail(tmp_path: Path, redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "livebrief.cli", "tail", *args, "--config", str(_config_file(tmp_path))]
    return subprocess.run(command, env={**os.environ, "REDIS_URL": redis_url}, capture_output=True, text=True,
                          timeout=60, cwd=REPO)


def test_every_line_tail_prints_says_where_to_go_on_from(tmp_path: Path, client: redis.Redis, redis_url: str) -> None:
    """Stream ids used to be printed only with --since, and never with --json: a follower that stopped had no
    point to go on from."""
    runtime = configure(make_config(redis_url, []))
    run_batch(client, runtime, [make_item("wire", n) for n in range(4)])
    ids = [i.decode() for i, _ in client.xrange(runtime.keys.entries_stream)]

    as_json = _tail(tmp_path, redis_url, "--since", "0", "--no-follow", "--json")
    readable = _tail(tmp_path, redis_url, "--since", "0", "--no-follow")

    entries = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [e["stream_id"] for e in entries] == ids
    assert [line.split()[0] for line in readable.stdout.splitlines() if not line.startswith(" ")] == ids
    rest = _tail(tmp_path, redis_url, "--since", entries[1]["stream_id"], "--no-follow", "--json")
    assert [json.loads(line)["id"] for line in rest.stdout.splitlines()] == [e["id"] for e in entries[2:]]


def test_tail_refuses_a_topic_no_rule_defines(tmp_path: Path, redis_url: str) -> None:
    result = _tail(tmp_path, redis_url, "--topic", "strike", "--no-follow")

    assert result.returncode == 2
    assert "'strike' is not a topic" in result.stderr and "strikes, talks, humanitarian" in result.stderr


def test_tail_prints_entries_live_for_its_topic(tmp_path: Path, client: redis.Redis, redis_url: str) -> None:
    runtime = configure(make_config(redis_url, []))
    tail = subprocess.Popen(
        [sys.executable, "-m", "livebrief.cli", "tail", "--topic", "strikes", "--json",
         "--config", str(_config_file(tmp_path))],
        env={**os.environ, "REDIS_URL": redis_url}, stdout=subprocess.PIPE, text=True, cwd=REPO,
    )
    try:
        wait_for_reader(client)
        strike = make_item("wire", 1, title="Drone strike hits oil depot near Belgorod",
                           text="A drone strike hit an oil depot near Belgorod overnight, the governor said.")
        run_batch(client, runtime, [make_item("wire", 2), strike])
        assert tail.stdout is not None
        line = tail.stdout.readline()
    finally:
        tail.terminate()
        tail.wait(10)
    entry = json.loads(line)
    assert entry["headline"] == "Drone strike hits oil depot near Belgorod"
    assert "strikes" in entry["topics"]


def test_tail_rides_out_a_redis_restart_and_prints_what_was_added_after_it(tmp_path: Path) -> None:
    server = EmbeddedRedis().start()
    client = redis.Redis.from_url(server.url)
    runtime = configure(make_config(server.url, []))
    tail = subprocess.Popen(
        [sys.executable, "-m", "livebrief.cli", "tail", "--json", "--config", str(_config_file(tmp_path))],
        env={**os.environ, "REDIS_URL": server.url}, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True, cwd=REPO,
    )
    assert tail.stdout is not None
    try:
        wait_for_reader(client)
        before = make_item("wire", 1)
        run_batch(client, runtime, [before])
        assert json.loads(tail.stdout.readline())["headline"] == before.title

        server.stop()
        time.sleep(1)
        server = EmbeddedRedis(port=server.port).start()
        client = redis.Redis.from_url(server.url)
        # Added at once, before the tail has had time to reconnect: a subscriber would have missed it.
        after = make_item("wire", 2)
        run_batch(client, runtime, [after])

        assert json.loads(tail.stdout.readline())["headline"] == after.title
        assert tail.poll() is None
    finally:
        tail.terminate()
        tail.wait(10)
        server.stop()
