"""A small real HTTP server on 127.0.0.1 that serves feed documents with ETag/Last-Modified and gzip.

Used by ``livebrief demo``, the test suite and the benchmarks: content can be swapped while it runs, so a
"feed that posted something new" is one ``set`` call away. Not for production use.
"""

from __future__ import annotations

import gzip
import hashlib
import sys
import threading
import time
from collections.abc import Callable
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Handler = Callable[[BaseHTTPRequestHandler], bool]


class QuietHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that does not print a traceback when a client hangs up mid-request."""

    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class FeedServer:
    """Serves ``path -> (body, content type)``; a custom ``route`` may take over any path (faults, 429...)."""

    def __init__(self) -> None:
        self._docs: dict[str, tuple[bytes, str, str, str]] = {}
        self._routes: dict[str, Handler] = {}
        self.requests: list[tuple[str, str]] = []  # (path, status) in arrival order
        self._lock = threading.Lock()
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # silence stderr
                return

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                server._handle(self)

            def do_POST(self) -> None:  # noqa: N802 - only custom routes take POSTs (a hub, a receiver)
                server._handle(self)

        self._httpd = QuietHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def set(self, path: str, body: bytes | str, content_type: str = "application/rss+xml") -> None:
        data = body.encode() if isinstance(body, str) else body
        etag = '"' + hashlib.sha1(data).hexdigest()[:16] + '"'
        with self._lock:
            self._docs[path] = (data, content_type, etag, formatdate(time.time(), usegmt=True))

    def route(self, path: str, handler: Handler) -> None:
        """``handler(request)`` answers the request itself and returns True, or False to serve normally."""
        self._routes[path] = handler

    def count(self, path: str, status: str | None = None) -> int:
        return sum(1 for p, s in self.requests if p == path and (status is None or s == status))

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        # Each request is recorded before it is answered: a client may act on the answer (and a test
        # count the requests) before this thread runs again.
        path = req.path.split("?")[0]  # the query (a wire feed's cursor, say) does not select another document
        handler = self._routes.get(path)
        if handler is not None:
            record = (path, "custom")
            self.requests.append(record)
            if handler(req):
                return
            self.requests.remove(record)
        with self._lock:
            doc = self._docs.get(path) if req.command == "GET" else None
        if doc is None:
            self.requests.append((path, "404"))
            self._send(req, 404, b"not found", "text/plain")
            return
        body, content_type, etag, modified = doc
        if req.headers.get("If-None-Match") == etag or (
            req.headers.get("If-None-Match") is None and req.headers.get("If-Modified-Since") == modified
        ):
            self.requests.append((path, "304"))
            req.send_response(304)
            req.send_header("ETag", etag)
            req.send_header("Content-Length", "0")
            req.end_headers()
            return
        extra = {"ETag": etag, "Last-Modified": modified}
        if "gzip" in (req.headers.get("Accept-Encoding") or ""):
            body = gzip.compress(body)
            extra["Content-Encoding"] = "gzip"
        self.requests.append((path, "200"))
        self._send(req, 200, body, content_type, extra)

    @staticmethod
    def _send(req: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str,
              headers: dict[str, str] | None = None) -> None:
        req.send_response(status)
        req.send_header("Content-Type", content_type)
        req.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            req.send_header(name, value)
        req.end_headers()
        req.wfile.write(body)

    def start(self) -> FeedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FeedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
