"""mlgate's one HTTP server: ``/metrics`` plus the routes other modules add (health, webhooks, admission).

A route is ``handler(request: HttpRequest) -> (status, content_type, body)``. Threaded; optional
TLS 1.2+ whose handshake runs in the request thread under a socket timeout (a stalled client never
blocks the accept loop), with the certificate re-read when its files change (cert-manager or the
chart rotates it in place through a mounted Secret); Nagle off (headers and body are separate
writes: no 40 ms delayed-ACK stall); bodies capped at ``max_body`` bytes; no per-request access log
(events are logged by the handlers that understand them).
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .metrics import REGISTRY

log = logging.getLogger("mlgate.http")

MAX_BODY = 1 << 20
SOCKET_TIMEOUT = 10.0  # seconds for the TLS handshake and for each read of a request (no slow-loris hold)
RELOAD_CHECK_INTERVAL = 10.0  # seconds between checks of the certificate files


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


def tls_context(certfile: str | Path, keyfile: str | Path) -> ssl.SSLContext:
    """A server-side TLS context (TLS 1.2 minimum) holding the given certificate chain and key."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(certfile), str(keyfile))
    return context


class ReloadingTLS:
    """Holds the current TLS context and swaps in a new one when the certificate files change."""

    def __init__(self, certfile: str | Path, keyfile: str | Path) -> None:
        self._files = (Path(certfile), Path(keyfile))
        self._stamp = self._mtimes()
        self._checked = time.monotonic()
        self._lock = threading.Lock()
        self.context = tls_context(certfile, keyfile)

    def _mtimes(self) -> tuple[float, ...]:
        return tuple(p.stat().st_mtime_ns for p in self._files)

    def current(self) -> ssl.SSLContext:
        now = time.monotonic()
        if now - self._checked < RELOAD_CHECK_INTERVAL:
            return self.context
        with self._lock:
            self._checked = now
            try:
                stamp = self._mtimes()
                if stamp != self._stamp:
                    self.context = tls_context(*self._files)
                    self._stamp = stamp
                    log.info("reloaded the TLS certificate %s", self._files[0])
            except (OSError, ssl.SSLError) as exc:  # half-written rotation: keep serving the old pair
                log.warning("could not reload the TLS certificate, keeping the old one: %s", exc)
        return self.context


class _Server(ThreadingHTTPServer):
    """``ThreadingHTTPServer`` whose TLS handshake (if any) runs in the request thread."""

    daemon_threads = True
    allow_reuse_address = True
    tls: ReloadingTLS | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(SOCKET_TIMEOUT)
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        try:
            tls_socket = self.tls.current().wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.debug("TLS handshake with %s failed: %s", client_address, exc)
            return
        try:
            super().finish_request(tls_socket, client_address)
        finally:
            try:
                tls_socket.close()
            except OSError:
                pass

    def shutdown_request(self, request: socket.socket) -> None:
        try:
            request.close()
        except OSError:
            pass


class HttpServer:
    """Routes (method, path) to handlers; ``port=0`` picks a free port (see ``.port`` after ``start``).

    ``GET /metrics`` is a route unless ``metrics=False``.
    The TLS certificate is loaded when the server is built, so a bad pair fails at construction.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        tls_cert_file: str | Path = "",
        tls_key_file: str | Path = "",
        max_body: int = MAX_BODY,
        name: str = "mlgate-http",
        metrics: bool = True,
    ) -> None:
        self.host = host
        self.max_body = max_body
        self.name = name
        self._requested_port = port
        self.tls = ReloadingTLS(tls_cert_file, tls_key_file) if tls_cert_file else None
        self._routes: dict[tuple[str, str], Handler] = {("GET", "/metrics"): metrics_handler} if metrics else {}
        self._prefixes: dict[tuple[str, str], Handler] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def add_route(self, method: str, path: str, handler: Handler) -> None:
        self._routes[(method.upper(), path)] = handler

    def add_prefix_route(self, method: str, prefix: str, handler: Handler) -> None:
        """Route every path under ``prefix`` (ending in ``/``) that has no exact route to ``handler``."""
        self._prefixes[(method.upper(), prefix)] = handler

    @property
    def port(self) -> int:
        return int(self._server.server_address[1]) if self._server else self._requested_port

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def start(self) -> None:
        server = _Server((self.host, self._requested_port), _handler_class(self._routes, self.max_body, self._prefixes))
        server.tls = self.tls
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def _handler_class(
    routes: Mapping[tuple[str, str], Handler],
    max_body: int,
    prefixes: Mapping[tuple[str, str], Handler] | None = None,
) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "mlgate"
        sys_version = ""
        disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stall

        def _dispatch(self) -> None:
            parts = urlsplit(self.path)
            handler = routes.get((self.command, parts.path))
            if handler is None and prefixes:
                handler = next(
                    (h for (m, p), h in prefixes.items() if m == self.command and parts.path.startswith(p)), None
                )
            if self.headers.get("Transfer-Encoding"):
                self.close_connection = True  # no chunked bodies: what follows could not be framed
                self._send(411, "text/plain", b"Content-Length required\n")
                return
            length = self.headers.get("Content-Length")
            try:
                size = int(length) if length else 0
            except ValueError:
                size = -1
            if size < 0 or size > max_body:
                self.close_connection = True  # the unread body must not be parsed as the next request
                self._send(
                    413 if size > max_body else 400,
                    "text/plain",
                    b"request body too large\n" if size > max_body else b"bad request body\n",
                )
                return
            body = self.rfile.read(size) if size else b""
            if handler is None:
                known = any(path == parts.path for _, path in routes) or any(
                    parts.path.startswith(p) for _, p in (prefixes or {})
                )
                self._send(405 if known else 404, "text/plain", b"bad method\n" if known else b"not found\n")
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

    return _Handler
