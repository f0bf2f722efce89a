"""Configuration: defaults, precedence, and errors that name the file, the field and the problem."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from livebrief.config import load_config, resolve_config_path
from livebrief.errors import ConfigError
from tests.conftest import REPO


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lb.yaml"
    path.write_text(text)
    return path


def test_feed_needs_only_id_url_and_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    config = load_config(write(tmp_path, "feeds:\n  - {id: a, url: 'https://a.example/rss', name: A}\n"))
    assert config.feeds[0].kind == "auto"
    assert config.polling.timeout > 0 and config.worker.summary_max_chars == 280
    assert config.redis_url is None


def test_redis_url_from_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://elsewhere:6380/1")
    config = load_config(write(tmp_path, "redis_url: redis://file:6379/0\nfeeds: []\n"))
    assert config.redis_url == "redis://elsewhere:6380/1"


def test_config_path_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEBRIEF_CONFIG", str(tmp_path / "env.yaml"))
    assert resolve_config_path("explicit.yaml") == Path("explicit.yaml")
    assert resolve_config_path(None) == tmp_path / "env.yaml"
    monkeypatch.delenv("LIVEBRIEF_CONFIG")
    assert resolve_config_path(None).name == "livebrief.yaml"


@pytest.mark.parametrize(
    ("text", "field", "problem"),
    [
        ("feeds:\n  - {id: a, name: A}\n", "feeds.0.url", "Field required"),
        ("feeds:\n  - {id: a, url: 'ftp://x/y', name: A}\n", "feeds.0.url", "http"),
        ("feeds:\n  - {id: 'bad id!', url: 'https://x/y', name: A}\n", "feeds.0.id", "letters"),
        ("feeds: []\npolling: {timout: 3}\n", "polling.timout", "unknown setting"),
        ("feeds: []\npolling: {timeout: -1}\n", "polling.timeout", "greater than 0"),
        ("webhooks:\n  - {id: w, url: 'https://h/x'}\n", "webhooks.0", "secret"),
        ("webhooks:\n  - {id: w, url: 'https://h/x', secret: nope}\n", "webhooks.0", "whsec_"),
        ("feeds:\n  - {id: a, url: 'https://a/1', name: A}\n  - {id: a, url: 'https://a/2', name: B}\n",
         "(top level)", "duplicate feeds id"),
    ],
)
def test_invalid_config_names_file_field_and_problem(tmp_path: Path, text: str, field: str, problem: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    assert field in message
    assert problem in message


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "feeds:\n  - id: a\n    url: [unclosed\n")
    with pytest.raises(ConfigError, match=r"line \d+, column \d+"):
        load_config(path)


def test_missing_file_says_how_to_point_at_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found.*--config"):
        load_config(tmp_path / "nope.yaml")


def test_cli_reports_config_errors_and_exits_2(tmp_path: Path) -> None:
    path = write(tmp_path, "feeds:\n  - {id: a, name: A}\n")
    result = subprocess.run(
        [sys.executable, "-m", "livebrief.cli", "run", "--once", "--config", str(path)],
        capture_output=True, text=True, timeout=60, cwd=REPO, env={**os.environ, "REDIS_URL": "redis://127.0.0.1:1/0"},
    )
    assert result.returncode == 2
    assert f"invalid configuration in {path}" in result.stderr
    assert "feeds.0.url: Field required" in result.stderr


def test_shipped_config_is_valid() -> None:
    config = load_config(REPO / "config" / "livebrief.yaml")
    assert len(config.feeds) >= 8
    assert config.topics_path.exists()
