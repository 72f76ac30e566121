"""The TLS HTTP server in front of the admission handler (stdlib ``http.server`` + ``ssl``).

Routes: ``POST /validate`` (AdmissionReview v1, see ``admission.review``), ``GET /healthz`` and
``GET /readyz``. TLS 1.2+ only; the handshake runs in the request thread, so a slow client never
blocks the accept loop. The certificate and key are re-read when their files change (cert-manager
or the chart rotates them in place through the mounted Secret). Every answer is counted in
``mlgate_admission_requests_total{kind,allowed}``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from mlgate.controller.admission import AdmissionPolicy, Reply, review
from mlgate.controller.metrics import ADMISSION_REQUESTS
from mlgate.controller.verdict_lookup import VerdictLookup

log = logging.getLogger("mlgate.admission")

VALIDATE_PATH = "/validate"
MAX_BODY = 8 * 1024 * 1024  # two copies of an object at etcd's 1.5 MiB limit, with room to spare
SOCKET_TIMEOUT = 10.0  # seconds for the handshake and for reading a request (no slow-loris hold)
RELOAD_CHECK_INTERVAL = 10.0


def tls_context(certfile: str | Path, keyfile: str | Path) -> ssl.SSLContext:
    """A server-side TLS context (TLS 1.2 minimum) holding the given certificate chain and key."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(certfile), str(keyfile))
    return context


class _ReloadingTLS:
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
                    log.info("reloaded the webhook TLS certificate")
            except (OSError, ssl.SSLError) as exc:  # half-written rotation: keep serving the old pair
                log.warning("could not reload the webhook TLS certificate, keeping the old one: %s", exc)
        return self.context


class AdmissionServer(ThreadingHTTPServer):
    """``ThreadingHTTPServer`` speaking TLS and answering AdmissionReviews."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], certfile: str | Path, keyfile: str | Path,
                 lookup: VerdictLookup, policy: AdmissionPolicy) -> None:
        self.tls = _ReloadingTLS(certfile, keyfile)
        self.lookup = lookup
        self.policy = policy
        self.ready = threading.Event()
        super().__init__(address, _Handler)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def finish_request(self, request: Any, client_address: Any) -> None:
        """TLS handshake in the request thread, then the usual HTTP handling."""
        request.settimeout(SOCKET_TIMEOUT)
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

    def start(self) -> threading.Thread:
        """Serve in a background thread; returns it."""
        self._thread = threading.Thread(target=self.serve_forever, name="mlgate-admission", daemon=True)
        self._thread.start()
        self.ready.set()
        return self._thread

    def stop(self) -> None:
        self.ready.clear()
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def judge(self, body: bytes) -> Reply:
        reply = review(body, self.lookup, self.policy)
        ADMISSION_REQUESTS.labels(kind=reply.kind, allowed=str(reply.allowed).lower()).inc()
        if reply.allowed:
            log.info("admission allowed %s uid=%s", reply.kind, reply.document["response"].get("uid", ""))
        else:
            log.warning("admission denied %s: %s", reply.kind, reply.message)
        return reply


class _Handler(BaseHTTPRequestHandler):
    server: AdmissionServer
    server_version = "mlgate"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stall

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._send(200, b"ok\n", "text/plain")
        elif self.path == "/readyz":
            ready = self.server.ready.is_set()
            self._send(200 if ready else 503, b"ok\n" if ready else b"not ready\n", "text/plain")
        else:
            self._send(404, b"not found\n", "text/plain")

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != VALIDATE_PATH:
            self._send(404, b"not found\n", "text/plain")
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._send(411, b"Content-Length required\n", "text/plain")
            return
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            self._send(413, b"request body too large\n", "text/plain")
            return
        body = self.rfile.read(length)
        reply = self.server.judge(body)
        self._send(reply.http_status, json.dumps(reply.document).encode(), "application/json")

    def _send(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def serve(host: str, port: int, certfile: str | Path, keyfile: str | Path, lookup: VerdictLookup,
          policy: AdmissionPolicy) -> AdmissionServer:
    """Start the admission server in the background and return it (``.port``, ``.stop()``)."""
    for path in (certfile, keyfile):
        if not os.access(path, os.R_OK):
            raise FileNotFoundError(f"cannot read TLS file {path}")
    server = AdmissionServer((host, port), certfile, keyfile, lookup, policy)
    server.start()
    return server
