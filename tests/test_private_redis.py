"""The private Redis `livebrief run` starts when none is configured or reachable: kept in the data folder, so
a restarted run remembers what it published, and found there by the other commands (`tail`, `feeds`, ...)
while it runs. Real redis-servers on Unix sockets in a temporary folder; localhost:6379 is never asked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
import yaml

from livebrief.keys import Keys
from livebrief.redis_server import redis_url_for, running_url
from tests.conftest import REPO, make_config
from tests.helpers import make_item
from worker.jobs import run_batch
from worker.runtime import configure

KEYS = Keys("livebrief")


@pytest.fixture
def folder(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    # A short path: Unix socket paths are limited to ~107 bytes.
    path = tmp_path_factory.mktemp("lb")
    monkeypatch.setenv("LIVEBRIEF_DATA_DIR", str(path))
    monkeypatch.delenv("REDIS_URL", raising=False)
    return path


def test_the_private_redis_keeps_what_it_was_told_across_a_restart(folder: Path) -> None:
    with redis_url_for(None, allow_local=False) as url:
        assert url == f"unix://{folder / 'redis.sock'}"
        client = redis.Redis.from_url(url)
        client.xadd(KEYS.entries_stream, {"entry": "{}"})
        client.set("livebrief:seen:item-1", "published")
        client.close()
    assert not (folder / "redis.sock").exists()  # stopped with the run

    with redis_url_for(None, allow_local=False) as url:
        client = redis.Redis.from_url(url)
        assert client.get("livebrief:seen:item-1") == b"published"
        assert client.xlen(KEYS.entries_stream) == 1
        client.close()


def test_while_a_run_keeps_it_other_commands_and_a_second_run_use_it(folder: Path, tmp_path: Path) -> None:
    config = tmp_path / "lb.yaml"
    config.write_text(yaml.safe_dump({"topics_file": str(REPO / "config" / "topics.yaml")}))
    item = make_item("wire", 1)
    with redis_url_for(None, allow_local=False) as url:
        client = redis.Redis.from_url(url)
        run_batch(client, configure(make_config(url, [])), [item])

        assert running_url(None) == url
        with redis_url_for(None, allow_local=False) as second:
            assert second == url  # shared, not a second server on the same files
        tail = subprocess.run(
            [sys.executable, "-m", "livebrief.cli", "tail", "--since", "0", "--no-follow", "--json",
             "--config", str(config)],
            env={k: v for k, v in os.environ.items() if k != "REDIS_URL"}, cwd=REPO,
            capture_output=True, text=True, timeout=60,
        )
        client.close()

    assert tail.returncode == 0, tail.stderr
    assert [json.loads(line)["headline"] for line in tail.stdout.splitlines()] == [item.title]


def test_a_configured_url_always_wins(folder: Path) -> None:
    with redis_url_for("redis://cache.example:6379/2") as url:
        assert url == "redis://cache.example:6379/2"
    assert running_url("redis://cache.example:6379/2") == "redis://cache.example:6379/2"
    assert not (folder / "redis.sock").exists()
