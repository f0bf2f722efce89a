"""The command line on bad input: each command answers a value it cannot use with one clear message and a
non-zero exit, never a traceback, and a command whose reader goes away (`| head`) stops quietly. Every test
runs `python -m livebrief.cli` as a real process, against a real redis-server where the command needs one."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml

from livebrief.keys import Keys
from tests.conftest import REPO, TEST_SECRET

SMALL_EVAL = REPO / "tests" / "fixtures" / "topics-eval-small.jsonl"
FRUIT_TOPICS = "topics:\n  fruit:\n    phrases:\n      0.9: [apple, pear]\n"


def livebrief(*args: str, stdin: bytes = b"", env: dict[str, str] | None = None,
              cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "livebrief.cli", *args], input=stdin, capture_output=True,
                            timeout=90, cwd=cwd, env={**os.environ, **(env or {})})
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(),
                                       result.stderr.decode())


def assert_refused(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


def write_lines(path: Path, records: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def fruit_config(tmp_path: Path) -> Path:
    """A config whose topics file (beside it, relative) holds one topic of its own, ``fruit``."""
    (tmp_path / "fruit-topics.yaml").write_text(FRUIT_TOPICS, encoding="utf-8")
    path = tmp_path / "lb.yaml"
    path.write_text(yaml.safe_dump({"topics_file": "fruit-topics.yaml", "feeds": []}), encoding="utf-8")
    return path


# --- eval-topics: the config's topics -------------------------------------------------------------

@pytest.mark.parametrize("how", ["--config", "LIVEBRIEF_CONFIG"])
def test_eval_topics_scores_the_topics_of_the_config_classify_uses(tmp_path: Path, how: str) -> None:
    config = fruit_config(tmp_path)
    labels = write_lines(tmp_path / "fruit.jsonl", [
        {"id": "a", "title": "An apple a day", "topics": ["fruit"]},
        {"id": "b", "title": "Missile strike on the port", "topics": []},
    ])
    args, env = ((["--config", str(config)], {}) if how == "--config"
                 else ([], {"LIVEBRIEF_CONFIG": str(config)}))
    result = livebrief("eval-topics", str(labels), *args, env=env)
    assert result.returncode == 0, result.stderr
    assert "2 items, topics: fruit\n" in result.stdout
    assert "exact match: 2/2" in result.stdout
    classified = livebrief("classify", *args, stdin=b'{"id": "a", "title": "An apple a day"}\n', env=env)
    assert json.loads(classified.stdout)["topics"] == ["fruit"]


def test_eval_topics_shows_the_topics_it_did_not_score_and_scores_them_when_asked(tmp_path: Path) -> None:
    """Found by QA: a topic no label used was left out of every figure, so the classifier's false positives
    there were hidden (no-topic accuracy 1.000, nothing misclassified)."""
    labels = write_lines(tmp_path / "strikes-only.jsonl", [
        {"id": "a", "title": "Missile strike destroys a power station in Kharkiv", "topics": ["strikes"]},
        {"id": "b", "title": "Russian and Ukrainian delegations resume peace talks in Istanbul", "topics": []},
        {"id": "c", "title": "Local bakery wins a prize for its sourdough bread", "topics": []},
    ])
    result = livebrief("eval-topics", str(labels))
    assert result.returncode == 0, result.stderr
    assert "3 items, topics: strikes\n" in result.stdout and "no-topic accuracy: 1.000 (2/2)" in result.stdout
    assert "not scored (no label uses them; choose with --score): assigned talks to 1 item" in result.stdout

    scored = livebrief("eval-topics", str(labels), "--score", "strikes,talks")
    assert scored.returncode == 0, scored.stderr
    assert "3 items, topics: strikes, talks\n" in scored.stdout
    assert "no-topic accuracy: 0.500 (1/2)" in scored.stdout and "not scored" not in scored.stdout
    assert "- [b] expected - got ['talks']" in scored.stdout

    assert_refused(livebrief("eval-topics", str(labels), "--score", "strikes,weather"),
                   "--score: weather is not a topic of")


def test_eval_topics_refuses_a_label_naming_no_topic(tmp_path: Path) -> None:
    labels = write_lines(tmp_path / "typo.jsonl", [
        {"id": "a", "title": "Missile strike on the port", "topics": ["strikes"]},
        {"id": "b", "title": "Shelling of the city", "topics": ["strikez"]},
    ])
    result = livebrief("eval-topics", str(labels))
    assert_refused(result, f"cannot use {labels}:", "line 2: no topic 'strikez' in", "strikes, talks, humanitarian")
    assert result.stdout == ""


# --- eval-topics: bad input -----------------------------------------------------------------------

_GOOD = json.dumps({"id": "ok", "title": "Missile strike on the port", "topics": ["strikes"]}).encode() + b"\n"


@pytest.mark.parametrize(("line", "says"), [
    (b'{"id": "x", "title": "caf\xe9", "topics": []}', "line 2: not UTF-8"),
    (b'{"id": "x", "title": "t", "topics": 5}', "line 2: 'topics' must be a list of strings"),
    (b'{"id": "x", "title": "t", "topics": [["strikes"]]}', "line 2: 'topics' must be a list of strings"),
    (b'{"id": "x", "title": "t", "topics": "strikes"}', "line 2: 'topics' must be a list of strings"),
    (b'{"id": "x", "title": "t", "topics": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
     "line 2: not usable JSON: nested too deeply"),
    (b'{"id": "x", "title": {"a": 1}, "topics": []}', "line 2: 'title' must be a string"),
], ids=["not-utf8", "number", "nested-list", "string", "deep-nesting", "title-object"])
def test_eval_topics_names_the_bad_line_and_prints_no_figures(tmp_path: Path, line: bytes, says: str) -> None:
    labels = tmp_path / "labels.jsonl"
    labels.write_bytes(_GOOD + line + b"\n")
    result = livebrief("eval-topics", str(labels))
    assert_refused(result, f"cannot use {labels}:\n  {says}")
    assert result.stdout == ""


def test_eval_topics_refuses_an_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    result = livebrief("eval-topics", str(SMALL_EVAL), str(empty))
    assert_refused(result, f"cannot use {empty}:\n  no labelled items")
    assert "macro-F1" not in result.stdout


def test_eval_topics_reports_every_bad_line_of_every_file(tmp_path: Path) -> None:
    first = tmp_path / "first.jsonl"
    first.write_bytes(_GOOD + b'{"id": "x", "title": "t", "topics": 5}\n' + _GOOD + b"[1]\n")
    second = tmp_path / "second.jsonl"
    second.write_bytes(b"\xff\n" + _GOOD)
    result = livebrief("eval-topics", str(first), str(second))
    assert_refused(result, f"cannot use {first}:\n  line 2: 'topics'", "\n  line 4: expected a JSON object",
                   f"cannot use {second}:\n  line 1: not UTF-8")


# --- classify: one error per bad line, the good lines still classified ----------------------------

@pytest.mark.parametrize(("line", "says"), [
    (b"[" * 200_000 + b"]" * 200_000, "line 2: not usable JSON: nested too deeply"),
    (b'{"id": "x", "title": "caf\xe9 \xff"}', "line 2: not UTF-8 (byte 0xe9 at column 26)"),
    (b'{"id": "x", "title": {"a": 1}}', "line 2: 'title' must be a string, not an object"),
    (b'{"id": "x", "title": "t", "text": 5}', "line 2: 'text' must be a string, not a number"),
    (b'{"id": ' + b"7" * 5000 + b', "title": "t"}',
     "line 2: not usable JSON (Exceeds the limit (4300 digits) for integer string conversion)"),
], ids=["deep-nesting", "not-utf8", "title-object", "text-number", "huge-number"])
def test_classify_reports_a_bad_line_and_classifies_the_rest(line: bytes, says: str) -> None:
    good = [json.dumps({"id": n, "title": "Missile strike on the port"}).encode() for n in (1, 3)]
    result = livebrief("classify", stdin=b"\n".join([good[0], line, good[1]]) + b"\n",
                       env={"PYTHONIOENCODING": "utf-8:strict"})
    assert result.returncode == 1
    assert result.stderr == f"livebrief classify: {says}\n"
    assert [json.loads(out)["id"] for out in result.stdout.splitlines()] == [1, 3]


# --- tail --since ---------------------------------------------------------------------------------

@pytest.mark.parametrize("since", ["garbage", "-1", "1-1-1", "1-", "18446744073709551616", ""])
def test_tail_refuses_a_since_that_is_no_stream_id(client: redis.Redis, since: str) -> None:
    assert_refused(livebrief("tail", "--since", since, "--no-follow"), "--since takes a stream id", repr(since))


@pytest.mark.parametrize("since", ["0", "1648533600000", "1648533600000-3", "$"])
def test_tail_takes_an_id_a_time_in_milliseconds_or_now(client: redis.Redis, since: str) -> None:
    result = livebrief("tail", "--since", since, "--no-follow")
    assert result.returncode == 0, result.stderr


# --- listening ------------------------------------------------------------------------------------

@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("command", ["metrics", "serve"])
def test_a_taken_port_is_refused_in_one_line(redis_url: str, taken_port: int, command: str) -> None:
    result = livebrief(command, "--listen", f"127.0.0.1:{taken_port}")
    assert_refused(result, f"livebrief: cannot listen on 127.0.0.1:{taken_port}: Address already in use")
    assert result.stderr.count("\n") == 1


def test_an_address_not_on_this_machine_is_refused(redis_url: str, taken_port: int) -> None:
    # 192.0.2.0/24 is TEST-NET-1 (RFC 5737), never a host's own address
    assert_refused(livebrief("metrics", "--listen", f"192.0.2.1:{taken_port}"),
                   f"cannot listen on 192.0.2.1:{taken_port}", "not an address of this machine")


@pytest.mark.parametrize("command", ["metrics", "serve"])
def test_a_listen_value_that_is_no_address_is_refused(redis_url: str, command: str) -> None:
    assert_refused(livebrief(command, "--listen", "garbage"), "--listen takes HOST:PORT or PORT, not 'garbage'")


# --- a reader that goes away ----------------------------------------------------------------------

@pytest.mark.parametrize("command", [["schema"], ["eval-topics", str(SMALL_EVAL)]], ids=["schema", "eval-topics"])
def test_a_closed_pipe_ends_the_command_quietly(command: list[str]) -> None:
    """As `livebrief schema | head -0` would: the reader is gone before the command writes."""
    proc = subprocess.Popen([sys.executable, "-m", "livebrief.cli", *command], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(90) == 128 + signal.SIGPIPE
    assert err == b""


# --- webhooks replay ------------------------------------------------------------------------------

def test_replay_refuses_a_webhook_that_is_not_configured(tmp_path: Path, client: redis.Redis) -> None:
    config = tmp_path / "lb.yaml"
    config.write_text(yaml.safe_dump({"feeds": [], "webhooks": [
        {"id": "desk", "url": "http://127.0.0.1:9/hook", "secret": TEST_SECRET}]}))
    assert_refused(livebrief("webhooks", "replay", "--webhook", "nope", "--config", str(config)),
                   "no webhook 'nope'", "(configured: desk)")
    # dead letters of a webhook since removed from the config cannot be re-sent: said, not re-queued as 0
    client.rpush(Keys("livebrief").deadletter, json.dumps({"webhook": "gone", "delivery": "d1", "entry": {}}))
    assert_refused(livebrief("webhooks", "replay", "--webhook", "gone", "--config", str(config)),
                   "no webhook 'gone'", "its 1 dead-lettered deliveries wait")
    replayed = livebrief("webhooks", "replay", "--webhook", "desk", "--config", str(config))
    assert replayed.returncode == 0, replayed.stderr
    assert "re-queued 0" in replayed.stdout


def test_poll_once_with_no_feeds_says_so(tmp_path: Path, redis_url: str) -> None:
    config = tmp_path / "empty.yaml"
    config.write_text(yaml.safe_dump({"topics_file": str(REPO / "config" / "topics.yaml"), "feeds": []}))
    result = livebrief("poll", "--once", "--config", str(config), env={"REDIS_URL": redis_url})
    assert result.returncode == 0 and "no_feeds" in result.stdout + result.stderr


def test_webhooks_with_none_configured_says_so(tmp_path: Path, redis_url: str) -> None:
    """Found by QA: it printed nothing at all."""
    config = tmp_path / "empty.yaml"
    # A prefix of its own: other tests leave dead letters under the default one, which the list would show.
    config.write_text(yaml.safe_dump({"topics_file": str(REPO / "config" / "topics.yaml"), "feeds": [],
                                      "prefix": "no-webhooks"}))
    result = livebrief("webhooks", "--config", str(config), env={"REDIS_URL": redis_url})
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"no webhooks configured (webhooks: in {config}) and no dead letters\n"
