"""The webhook HTTP client against real servers on 127.0.0.1: kept-alive connections, receivers that close
them, never answer, answer too much, want basic auth, or present a certificate nobody trusts."""

from __future__ import annotations

import contextlib
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


def _post_twice(url: str) -> None:
    for _ in range(2):
        assert webhook_client.post(url, b"{}", {}, 5).status == 200


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
        _times_out(listener.getsockname()[1], 0.5)
    finally:
        listener.close()


def _times_out(port: int, timeout: float) -> None:
    """A POST to the receiver on ``port`` fails on its whole-answer deadline, well before a test would hang."""
    started = time.monotonic()
    with pytest.raises(PostError, match=f"no whole answer within {timeout:g} s"):
        webhook_client.post(f"http://127.0.0.1:{port}/", b"{}", {}, timeout)
    assert time.monotonic() - started < 5


def test_a_receiver_trickling_its_answer_times_out_on_the_whole_answer() -> None:
    # A byte every 0.2 s never trips a timeout per read: a worker was kept as long as the receiver liked.
    listener = socket.create_server(("127.0.0.1", 0))

    def trickle() -> None:
        sock, _ = listener.accept()
        with sock, contextlib.suppress(OSError):
            sock.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Slow: " + b"x" * 200 + b"\r\n\r\nok":
                sock.sendall(bytes([byte]))
                time.sleep(0.2)

    threading.Thread(target=trickle, daemon=True).start()
    try:
        _times_out(listener.getsockname()[1], 1.0)
    finally:
        listener.close()


def test_a_refused_connection_is_a_post_error() -> None:
    with pytest.raises(PostError, match="ConnectionRefused"):
        webhook_client.post(f"http://127.0.0.1:{free_port()}/", b"{}", {}, 5)


def test_a_huge_answer_is_not_read_and_the_next_post_still_arrives() -> None:
    srv = _Server(answer_bytes=20 * 1024 * 1024)
    try:
        _post_twice(srv.url())
        assert srv.connections == 2  # not drained: the client hung up and reconnected rather than read 20 MB
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


class _Scripted:
    """A receiver on a raw socket that reads each request (head and Content-Length body) and writes back the
    next of ``answers`` byte for byte, closing the connection after an answer when told: for answers that
    http.server would not give (chunked, informational, malformed, cut short)."""

    def __init__(self, answers: list[tuple[bytes, bool]]) -> None:
        self.answers = list(answers)
        self.requests: list[tuple[bytes, bytes]] = []
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        reader = sock.makefile("rb")
        with sock, reader, contextlib.suppress(OSError):  # a client that hangs up on an answer it will not read
            while self.answers:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = reader.readline()
                    if not line:
                        return
                    head += line
                length = int(next(v for k, _, v in (h.partition(b":") for h in head.split(b"\r\n"))
                                  if k.lower() == b"content-length"))
                self.requests.append((head, reader.read(length)))
                answer, close = self.answers.pop(0)
                sock.sendall(answer)
                if close:
                    return

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.listener.close()


def _scripted(*answers: bytes | tuple[bytes, bool]) -> _Scripted:
    return _Scripted([a if isinstance(a, tuple) else (a, False) for a in answers])


_OVER_LIMIT = webhook_client.MAX_ANSWER_BYTES + 1


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",  # HTTP/1.0 without keep-alive
    b"HTTP/1.1 200 OK\r\n\r\nthe body runs to the close",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",  # where does it end?
    # A chunked body longer than the client reads: not read, so the connection cannot be used again.
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % _OVER_LIMIT + b"x" * _OVER_LIMIT
    + b"\r\n0\r\n\r\n",
], ids=["connection-close", "http-1.0", "runs-to-close", "lengths-disagree", "chunked-over-limit"])
def test_an_answer_that_ends_its_connection_gets_the_next_post_a_new_one(answer: bytes) -> None:
    """The receiver keeps the connection open and would answer on it again: only the answer says not to."""
    srv = _scripted(answer, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    try:
        _post_twice(srv.url())
        assert srv.connections == 2
    finally:
        srv.stop()


_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
_ACCEPTED = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"
_CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n")  # two chunks, then a trailer


@pytest.mark.parametrize(("answers", "statuses", "connections"), [
    # Chunked bodies are read past, trailer included, and the connection carries the next POSTs.
    ([_CHUNKED, _CHUNKED, _ACCEPTED], [200, 200, 202], 1),
    # Informational answers are skipped for the final one.
    ([b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
      _OK], [204, 200], 1),
    # A stray line end after an answer is skipped on the kept connection.
    ([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok\r\n", b"HTTP/1.1 201 Created\r\n\r\n"], [200, 201], 1),
    # Bytes sent past an answer: the second POST reads them instead of its answer (which the receiver sends
    # too, and nobody reads), and is sent once more on a new connection. Both copies are answered alike,
    # whichever the receiver reads first.
    ([b"HTTP/1.1 204 No Content\r\n\r\nunexpected body\r\n", _ACCEPTED, _ACCEPTED], [204, 202], 2),
], ids=["chunked", "informational", "stray-line-end", "bytes-past-the-answer"])
def test_a_receivers_answers_give_these_statuses_over_these_connections(
        answers: list[bytes], statuses: list[int], connections: int) -> None:
    srv = _scripted(*answers)
    try:
        assert [webhook_client.post(srv.url(), b"{}", {}, 5).status for _ in statuses] == statuses
        assert srv.connections == connections
    finally:
        srv.stop()


@pytest.mark.parametrize(("status", "expected"), [(503, "120"), (429, "Wed, 21 Oct 2026 07:28:00 GMT"), (500, None)])
def test_retry_after_is_read_from_the_answers_that_ask_to_wait(status: int, expected: str | None) -> None:
    value = expected or "30"
    srv = _scripted(b"HTTP/1.1 %d Busy\r\nretry-after:  %s \r\nContent-Length: 0\r\n\r\n" % (status, value.encode()))
    try:
        assert webhook_client.post(srv.url(), b"{}", {}, 5) == webhook_client.Answer(status, expected)
    finally:
        srv.stop()


@pytest.mark.parametrize("answer", [b"SSH-2.0-OpenSSH_9.2\r\n", b"HTTP/1.1 OK\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-"])
def test_an_answer_that_is_not_http_is_a_post_error(answer: bytes) -> None:
    srv = _scripted((answer, True))
    try:
        with pytest.raises(PostError, match="malformed answer"):
            webhook_client.post(srv.url(), b"{}", {}, 5)
    finally:
        srv.stop()


def test_the_request_carries_host_length_headers_and_body_and_an_unsafe_path_is_escaped() -> None:
    srv = _scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    try:
        webhook_client.post(srv.url("/hooks/caf\u00e9 1?a=b c"), b'{"x": 1}', {"webhook-id": "msg_1"}, 5)
        head, body = srv.requests[0]
        lines = head.decode("latin-1").split("\r\n")
        assert lines[0] == "POST /hooks/caf%C3%A9%201?a=b%20c HTTP/1.1"
        assert f"Host: 127.0.0.1:{srv.port}" in lines
        assert "Content-Length: 8" in lines
        assert "webhook-id: msg_1" in lines
        assert body == b'{"x": 1}'
    finally:
        srv.stop()


@pytest.mark.parametrize("headers", [{"x-evil": "a\r\nx-injected: 1"}, {"bad name": "1"}, {"Content-Length": "0"},
                                     {"x-text": "\u4e2d"}])
def test_a_header_that_could_break_the_request_is_refused_before_anything_is_sent(headers: dict[str, str]) -> None:
    srv = _scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    try:
        with pytest.raises(PostError, match="header"):
            webhook_client.post(srv.url(), b"{}", headers, 5)
        assert srv.requests == []
    finally:
        srv.stop()


def test_a_receiver_with_a_trusted_certificate_gets_its_posts_over_one_tls_connection(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The same self-signed certificate, trusted this time (as a CA bundle a user would install)."""
    fixtures = Path(__file__).parent / "fixtures" / "tls"
    trusting = ssl.create_default_context(cafile=str(fixtures / "self-signed-cert.pem"))
    monkeypatch.setattr(webhook_client, "_tls", lambda: trusting)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(fixtures / "self-signed-cert.pem", fixtures / "self-signed-key.pem")
    srv = _Server()
    srv.httpd.socket = context.wrap_socket(srv.httpd.socket, server_side=True)
    try:
        for _ in range(3):
            assert webhook_client.post(f"https://127.0.0.1:{srv.port}/hook", b"{}", {}, 5).status == 200
        assert len(srv.requests) == 3
        assert srv.connections == 1
    finally:
        srv.stop()
