"""The controller's HTTP server: ``/metrics`` plus routes other modules add (health, webhooks, admission).

A route is ``handler(request: HttpRequest) -> (status, content_type, body)``.
Threaded, optional TLS, bodies capped at ``MAX_BODY`` bytes, no per-request
access log (events are logged by the handlers that understand them).
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from mlgate.controller.metrics import REGISTRY

log = logging.getLogger("mlgate.http")

MAX_BODY = 1 << 20


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    query: str
    headers: Mapping[str, str]  # case-insensitive (email.message.Message)
    body: bytes


Response = tuple[int, str, bytes]
Handler = Callable[[HttpRequest], Response]


def metrics_handler(_request: HttpRequest) -> Response:
    return 200, CONTENT_TYPE_LATEST, generate_latest(REGISTRY)


class HttpServer:
    """Routes (method, path) to handlers; ``port=0`` picks a free port (see ``.port`` after ``start``)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, tls_cert_file: str = "", tls_key_file: str = "") -> None:
        self.host = host
        self._requested_port = port
        self._tls = (tls_cert_file, tls_key_file) if tls_cert_file else None
        self._routes: dict[tuple[str, str], Handler] = {("GET", "/metrics"): metrics_handler}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def add_route(self, method: str, path: str, handler: Handler) -> None:
        self._routes[(method.upper(), path)] = handler

    @property
    def port(self) -> int:
        return self._server.server_address[1] if self._server else self._requested_port

    @property
    def url(self) -> str:
        scheme = "https" if self._tls else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def start(self) -> None:
        routes = self._routes

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "mlgate"
            sys_version = ""

            def _dispatch(self) -> None:
                parts = urlsplit(self.path)
                handler = routes.get((self.command, parts.path))
                length = self.headers.get("Content-Length")
                try:
                    size = int(length) if length else 0
                except ValueError:
                    size = -1
                if size < 0 or size > MAX_BODY:
                    self._send(413 if size > MAX_BODY else 400, "text/plain", b"bad request body\n")
                    return
                body = self.rfile.read(size) if size else b""
                if handler is None:
                    known = any(path == parts.path for _, path in routes)
                    self._send(405 if known else 404, "text/plain", b"not found\n" if not known else b"bad method\n")
                    return
                request = HttpRequest(self.command, parts.path, parts.query, self.headers, body)
                try:
                    status, ctype, payload = handler(request)
                except Exception:
                    log.exception("HTTP handler failed")
                    status, ctype, payload = 500, "text/plain", b"internal error\n"
                self._send(status, ctype, payload)

            def _send(self, status: int, ctype: str, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = ThreadingHTTPServer((self.host, self._requested_port), _Handler)
        server.daemon_threads = True
        if self._tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(*self._tls)
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="mlgate-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
