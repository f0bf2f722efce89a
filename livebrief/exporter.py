"""A Prometheus scrape endpoint: ``GET /metrics`` answers with what ``livebrief metrics`` prints, read afresh
from Redis on each scrape, so any number of exporters (or none) can run beside the workers.

The server knows nothing of what it serves: ``render`` builds the text (``feeds.status.metrics_text``, wired by
the CLI), which keeps ``livebrief/`` free of imports from ``feeds/``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import redis
import structlog

from livebrief.errors import ListenError, UsageError
from livebrief.numbers import ascii_int

log = structlog.get_logger(__name__)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # Prometheus text exposition format


def parse_listen(value: str, default_host: str = "127.0.0.1", option: str = "--listen") -> tuple[str, int]:
    """``HOST:PORT`` or ``PORT`` (on ``default_host``); IPv6 hosts in brackets. Raises ``UsageError`` naming
    ``option`` (the option or setting the value came from)."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]") if sep else default_host
    number = ascii_int(port, max_digits=5)
    if number is None or not 0 < number < 65536:
        raise UsageError(f"{option} takes HOST:PORT or PORT, not {value!r}")
    return host or default_host, number


class MetricsExporter:
    """Serves ``render()`` at ``/metrics`` on ``listen`` from a thread of its own until ``stop()``."""

    def __init__(self, render: Callable[[], str], listen: tuple[str, int]) -> None:
        self.render = render
        try:
            self._server = ThreadingHTTPServer(listen, self._handler())
        except OSError as exc:
            raise ListenError(listen, exc) from exc
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # scrapes every few seconds: not logged
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path.split("?")[0] != "/metrics":
                    self._answer(404, "not found: metrics are at /metrics\n")
                    return
                try:
                    text = exporter.render()
                except redis.RedisError as exc:
                    # A scrape that fails marks the target down in Prometheus (`up` = 0), which is the truth.
                    log.warning("metrics_unavailable", error=str(exc))
                    self._answer(503, f"Redis unavailable: {exc}\n")
                    return
                except Exception:
                    log.exception("metrics_failed")
                    self._answer(500, "the metrics could not be read; see the exporter's log\n")
                    return
                self._answer(200, text, CONTENT_TYPE)

            def _answer(self, status: int, body: str, content_type: str = "text/plain; charset=utf-8") -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def start(self) -> MetricsExporter:
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-exporter", daemon=True)
        self._thread.start()
        host, port = self.address
        log.info("metrics_exporter_listening", url=f"http://{host}:{port}/metrics")
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
