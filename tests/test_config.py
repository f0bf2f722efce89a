"""Configuration: defaults, precedence, and errors that name the file, the field and the problem."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from feeds.push import PushReceiver
from livebrief.config import check_webhooks, load_config, resolve_config_path
from livebrief.errors import ConfigError
from tests.conftest import REPO, TEST_SECRET
from worker.classify import load_topics
from worker.runtime import configure

SECRET = TEST_SECRET
TOPICS = REPO / "config" / "topics.yaml"


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
        # URLs the poller or a delivery would stumble on, refused at load.
        ("feeds:\n  - {id: a, url: 'http://[::1', name: A}\n", "feeds.0.url", "Invalid IPv6 URL"),
        ("feeds:\n  - {id: a, url: 'http://a.example:99999/rss', name: A}\n", "feeds.0.url", "Port out of range"),
        ("feeds:\n  - {id: a, url: 'http://:80/rss', name: A}\n", "feeds.0.url", "names no host"),
        ("feeds:\n  - {id: a, url: 'http://a..example/rss', name: A}\n", "feeds.0.url", "host name"),
        ("webhooks:\n  - {id: w, url: '127.0.0.1:59989/ok', secret: " + SECRET + "}\n", "webhooks.0.url", "http"),
        ("webhooks:\n  - {id: w, url: '', secret: " + SECRET + "}\n", "webhooks.0.url", "http"),
        ("webhooks:\n  - {id: w, url: 'ftp://h/x', secret: " + SECRET + "}\n", "webhooks.0.url", "http"),
        ("webhooks:\n  - {id: w, url: 'http://[::1/x', secret: " + SECRET + "}\n", "webhooks.0.url", "IPv6"),
        # Retry intervals RQ's Retry would refuse inside every ingest batch.
        ("webhooks:\n  - {id: w, url: 'https://h/x', secret: " + SECRET + ", retry_intervals: [5, -1]}\n",
         "webhooks.0.retry_intervals.1", "greater than or equal to 0"),
        ("webhooks:\n  - {id: w, url: 'https://h/x', secret: " + SECRET + ", retry_intervals: [true]}\n",
         "webhooks.0.retry_intervals", "not true/false"),
        ("webhooks:\n  - {id: w, url: 'https://h/x', secret: " + SECRET + ", retry_intervals: [1.5]}\n",
         "webhooks.0.retry_intervals.0", "integer"),
        ("webhooks:\n  - {id: w, url: 'https://h/x', secret: " + SECRET + ", retry_intervals: [99999999]}\n",
         "webhooks.0.retry_intervals.0", "less than or equal to 604800"),
        ("webhooks:\n  - {id: w, url: 'https://h/x', secret: " + SECRET + ", retry_intervals: [" + "1, " * 51
         + "1]}\n", "webhooks.0.retry_intervals", "at most 50 items"),
        # Secrets that would fail or weaken every signature.
        ("webhooks:\n  - {id: w, url: 'https://h/x', secret: whsec_abc}\n", "webhooks.0.secret", "base64"),
        ("webhooks:\n  - {id: w, url: 'https://h/x', secret: whsec_}\n", "webhooks.0.secret", "0 bytes"),
        ("webhooks:\n  - {id: w, url: 'https://h/x', secret: whsec_c2VjcmV0}\n", "webhooks.0.secret",
         "at least 24"),
        ("webhooks:\n  - {id: w, url: 'https://h/x', secret: 'whsec_" + "_-" * 16 + "'}\n", "webhooks.0.secret",
         "base64"),
        ("push: {secret: whsec_abc}\n", "push.secret", "base64"),
        # Numbers that read as something else.
        ("polling: {min_interval: 600, max_interval: 60}\n", "polling.max_interval", "less than min_interval"),
        ("polling: {min_interval: 30000}\n", "polling.max_interval", "less than min_interval"),
        ("polling: {backoff_base: 600, backoff_cap: 60}\n", "polling.backoff_cap", "less than backoff_base"),
        ("polling: {interval: .inf}\n", "polling.interval", "finite number"),
        ("polling: {interval: .nan}\n", "polling.interval", "finite number"),
        ("polling: {interval: true}\n", "polling.interval", "not true/false"),
        ("feeds:\n  - {id: a, url: 'https://a/1', name: A, interval: .inf}\n", "feeds.0.interval", "finite"),
        ("feeds:\n  - {id: a, url: 'https://a/1', name: A, interval: yes}\n", "feeds.0.interval", "true/false"),
        ("worker: {retries: true}\n", "worker.retries", "not true/false"),
        # Prefixes that would break key names, SCAN patterns or RQ's comma-joined queue names.
        ("prefix: ''\n", "prefix", "1-64 letters"),
        ("prefix: 'live brief'\n", "prefix", "1-64 letters"),
        ("prefix: '{lb}'\n", "prefix", "1-64 letters"),
        ("prefix: 'lb*'\n", "prefix", "1-64 letters"),
        ("prefix: 'a,b'\n", "prefix", "1-64 letters"),
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


def _run_once(path: Path) -> subprocess.CompletedProcess[str]:
    """``livebrief run --once`` with ``path``, against a Redis that is not there: a config error must come first."""
    return subprocess.run(
        [sys.executable, "-m", "livebrief.cli", "run", "--once", "--config", str(path)],
        capture_output=True, text=True, timeout=60, cwd=REPO, env={**os.environ, "REDIS_URL": "redis://127.0.0.1:1/0"},
    )


def test_cli_reports_config_errors_and_exits_2(tmp_path: Path) -> None:
    path = write(tmp_path, "feeds:\n  - {id: a, name: A}\n")
    result = _run_once(path)
    assert result.returncode == 2
    assert f"invalid configuration in {path}" in result.stderr
    assert "feeds.0.url: Field required" in result.stderr


def test_shipped_config_is_valid() -> None:
    config = load_config(REPO / "config" / "livebrief.yaml")
    assert len(config.feeds) >= 8
    assert config.topics_path.exists()


def test_accepted_settings_keep_their_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    config = load_config(write(tmp_path, (
        "prefix: 'lb:prod.1'\n"
        "feeds:\n  - {id: a, url: 'http://[::1]:8080/rss', name: A, interval: 90}\n"
        "polling: {min_interval: 60, max_interval: 60, backoff_base: 5, backoff_cap: 5}\n"
        f"webhooks:\n  - {{id: w, url: 'https://h.example/x', secret: {SECRET}, retry_intervals: [0, 5]}}\n")))
    assert config.prefix == "lb:prod.1"
    assert config.feeds[0].interval == 90.0
    assert config.webhooks[0].retry_intervals == [0, 5]


def _hook_config(tmp_path: Path, hook: str) -> Path:
    return write(tmp_path, f"topics_file: {TOPICS}\nwebhooks:\n  - {{id: w, url: 'https://h.example/x', {hook}}}\n")


def test_a_webhook_naming_an_unknown_topic_stops_the_worker_naming_the_known_ones(tmp_path: Path) -> None:
    config = load_config(_hook_config(tmp_path, f"secret: {SECRET}, topics: [strikes, strike]"))

    with pytest.raises(ConfigError) as info:
        configure(config)

    assert "webhooks.0.topics.1: unknown topic 'strike'" in info.value.message
    assert "humanitarian, strikes, talks" in info.value.message
    assert info.value.path == config.source_path


def test_a_config_whose_topics_file_is_missing_loads_for_commands_that_need_no_topics(tmp_path: Path) -> None:
    path = write(tmp_path, f"topics_file: nope.yaml\nwebhooks:\n  - {{id: w, url: 'https://h/x', secret: {SECRET}, "
                           "topics: [strike]}\n")
    assert load_config(path).webhooks[0].topics == ["strike"]


def test_run_refuses_a_webhook_naming_an_unknown_topic_before_it_polls(tmp_path: Path) -> None:
    path = _hook_config(tmp_path, f"secret: {SECRET}, topics: [strike]")
    result = _run_once(path)
    assert result.returncode == 2
    assert f"invalid configuration in {path}" in result.stderr
    assert "webhooks.0.topics.0: unknown topic 'strike'" in result.stderr


def test_an_unset_secret_env_stops_the_worker_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LB_TEST_HOOK_SECRET", raising=False)
    config = load_config(_hook_config(tmp_path, "secret_env: LB_TEST_HOOK_SECRET"))

    with pytest.raises(ConfigError, match=r"webhooks.0.secret_env: \$LB_TEST_HOOK_SECRET is not set"):
        configure(config)


def test_a_secret_env_holding_no_valid_secret_is_refused_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(_hook_config(tmp_path, "secret_env: LB_TEST_HOOK_SECRET"))
    monkeypatch.setenv("LB_TEST_HOOK_SECRET", "whsec_abc")

    with pytest.raises(ConfigError, match=r"secret_env: \$LB_TEST_HOOK_SECRET holds no valid secret: .*base64"):
        check_webhooks(config)
    with pytest.raises(ConfigError, match="base64") as read:  # and where the delivery reads it
        config.webhooks[0].resolved_secret()
    assert read.value.path == "$LB_TEST_HOOK_SECRET"

    monkeypatch.setenv("LB_TEST_HOOK_SECRET", SECRET)
    check_webhooks(config)
    assert config.webhooks[0].resolved_secret() == SECRET


def test_an_unset_push_secret_env_stops_the_receiver_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LB_TEST_PUSH_SECRET", raising=False)
    config = load_config(write(tmp_path, "push: {secret_env: LB_TEST_PUSH_SECRET}\n"))

    with pytest.raises(ConfigError, match=r"\$LB_TEST_PUSH_SECRET") as info:
        PushReceiver(config, redis.Redis(port=1), listen="127.0.0.1:0")
    assert "not set" in info.value.message


def test_a_config_file_that_is_not_utf8_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "lb.yaml"
    path.write_bytes("feeds:\n  - {id: a, url: 'https://a/1', name: Caf\u00e9}\n".encode("latin-1"))

    with pytest.raises(ConfigError, match=r"line 2: not UTF-8") as info:
        load_config(path)
    assert info.value.path == str(path)


def test_a_topics_file_that_is_not_utf8_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "topics.yaml"
    war = "\u0432\u0456\u0439\u043d\u0430"  # "war" in Ukrainian, saved as a Windows editor might: cp1251
    path.write_bytes(f"topics:\n  war:\n    phrases:\n      0.9: [shelling]\n      0.5: [{war}]\n".encode("cp1251"))

    with pytest.raises(ConfigError, match=r"line 5: not UTF-8") as info:
        load_topics(path)
    assert info.value.path == str(path)
