"""The webhook HTTP client against real servers on 127.0.0.1: kept-alive connections, receivers that close
them, never answer, answer too much, want basic auth, or present a certificate nobody trusts."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from livebrief.redis_server import free_port
from worker import webhook_client
from worker.webhook_client import PostError


class _Server:
    """A keep-alive HTTP/1.1 receiver that counts connections and can misbehave as told."""

    def __init__(self, *, close_after_answer: bool = False, answer_bytes: int = 0) -> None:
        self.connections = 0
        self.requests: list[dict[str, str]] = []
        self.port = free_port()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def setup(self) -> None:
                super().setup()
                server.connections += 1

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                server.requests.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
                self.send_response(200)
                self.send_header("Content-Length", str(answer_bytes))
                self.end_headers()
                if answer_bytes:
                    try:
                        self.wfile.write(b"x" * answer_bytes)
                    except OSError:
                        pass  # the client stopped reading: what the test wants
                if close_after_answer:
                    # As a receiver whose idle timeout ran out: closes without saying "Connection: close".
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, auth: str = "") -> str:
        return f"http://{auth}127.0.0.1:{self.port}/hook?x=1"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    yield srv
    srv.stop()


def test_posts_to_one_receiver_share_a_kept_alive_connection(server: _Server) -> None:
    for _ in range(5):
        assert webhook_client.post(server.url(), b"{}", {"content-type": "application/json"}, 5).status == 200
    assert len(server.requests) == 5
    assert server.connections == 1


def test_a_connection_the_receiver_closed_while_idle_is_replaced_and_the_post_arrives() -> None:
    srv = _Server(close_after_answer=True)
    try:
        for _ in range(3):
            time.sleep(0.05)  # let the receiver's close reach us before the next POST reuses the socket
            assert webhook_client.post(srv.url(), b"{}", {}, 5).status == 200
        assert len(srv.requests) == 3
        assert srv.connections == 3
    finally:
        srv.stop()


def test_a_receiver_that_never_answers_times_out_with_a_clear_error() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:
        started = time.monotonic()
        with pytest.raises(PostError, match="timed out"):
            webhook_client.post(f"http://127.0.0.1:{listener.getsockname()[1]}/", b"{}", {}, 0.5)
        assert time.monotonic() - started < 5
    finally:
        listener.close()


def test_a_refused_connection_is_a_post_error() -> None:
    with pytest.raises(PostError, match="ConnectionRefused"):
        webhook_client.post(f"http://127.0.0.1:{free_port()}/", b"{}", {}, 5)


def test_a_huge_answer_is_not_read_and_the_next_post_still_arrives() -> None:
    srv = _Server(answer_bytes=20 * 1024 * 1024)
    try:
        assert webhook_client.post(srv.url(), b"{}", {}, 5).status == 200
        assert webhook_client.post(srv.url(), b"{}", {}, 5).status == 200
        # Not drained: the client hung up and reconnected rather than read 20 MB.
        assert srv.connections == 2
    finally:
        srv.stop()


def test_credentials_in_the_url_are_sent_as_basic_auth_and_the_query_kept(server: _Server) -> None:
    assert webhook_client.post(server.url("hook%40user:s3cret@"), b"{}", {}, 5).status == 200
    assert server.requests[0]["authorization"] == "Basic aG9va0B1c2VyOnMzY3JldA=="  # hook@user:s3cret
    assert server.requests[0]["path"] == "/hook?x=1"


def test_a_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(PostError, match="not an http"):
        webhook_client.post("ftp://127.0.0.1/hook", b"{}", {}, 5)


def test_a_receiver_whose_certificate_is_not_trusted_gets_nothing() -> None:
    """HTTPS deliveries check the receiver's certificate: a self-signed one (a test fixture, valid for a
    century, trusted by nobody) fails the handshake before anything is sent."""
    fixtures = Path(__file__).parent / "fixtures" / "tls"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(fixtures / "self-signed-cert.pem", fixtures / "self-signed-key.pem")
    srv = _Server()
    srv.httpd.socket = context.wrap_socket(srv.httpd.socket, server_side=True)
    try:
        with pytest.raises(PostError, match="CERTIFICATE_VERIFY_FAILED"):
            webhook_client.post(f"https://127.0.0.1:{srv.port}/hook", b"{}", {}, 5)
        assert srv.requests == []
    finally:
        srv.stop()
