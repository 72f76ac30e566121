"""The admission webhook's routes on mlgate's ``HttpServer`` (``controller/runtime/http_server.py``), over TLS.

Routes: ``POST /validate`` (AdmissionReview v1, see ``admission.review``), ``GET /healthz`` and
``GET /readyz`` (503 once ``ready`` is cleared on shutdown, so Kubernetes stops sending requests
before the server stops). TLS, the handshake off the accept loop, certificate reloads and the body
cap are the server's. Every answer is counted in ``mlgate_admission_requests_total{kind,allowed}``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from ..runtime.http_server import HttpRequest, HttpServer, Response
from ..runtime.metrics import ADMISSION_REQUESTS
from .review import AdmissionPolicy, Reply, review
from .verdict_lookup import VerdictLookup

log = logging.getLogger("mlgate.admission")

VALIDATE_PATH = "/validate"
MAX_BODY = 8 * 1024 * 1024  # two copies of an object at etcd's 1.5 MiB limit, with room to spare


class AdmissionWebhook:
    """Answers AdmissionReviews from ``lookup`` under ``policy``; ``install`` adds its routes to a server."""

    def __init__(self, lookup: VerdictLookup, policy: AdmissionPolicy) -> None:
        self.lookup = lookup
        self.policy = policy
        self.ready = threading.Event()

    def install(self, http: HttpServer) -> None:
        http.add_route("POST", VALIDATE_PATH, self.validate)
        http.add_route("GET", "/healthz", lambda _request: (200, "text/plain", b"ok\n"))
        http.add_route("GET", "/readyz", self.readyz)

    def validate(self, request: HttpRequest) -> Response:
        reply = self.judge(request.body)
        return reply.http_status, "application/json", json.dumps(reply.document).encode()

    def readyz(self, _request: HttpRequest) -> Response:
        if self.ready.is_set():
            return 200, "text/plain", b"ok\n"
        return 503, "text/plain", b"not ready\n"

    def judge(self, body: bytes) -> Reply:
        reply = review(body, self.lookup, self.policy)
        ADMISSION_REQUESTS.labels(kind=reply.kind, allowed=str(reply.allowed).lower()).inc()
        if reply.allowed:
            log.info("admission allowed %s uid=%s", reply.kind, reply.document["response"].get("uid", ""))
        else:
            log.warning("admission denied %s: %s", reply.kind, reply.message)
        return reply


def serve(host: str, port: int, certfile: str | Path, keyfile: str | Path, webhook: AdmissionWebhook) -> HttpServer:
    """Start ``webhook`` on its own TLS server in the background, mark it ready, return the server."""
    for path in (certfile, keyfile):
        if not os.access(path, os.R_OK):
            raise FileNotFoundError(f"cannot read TLS file {path}")
    http = HttpServer(host, port, certfile, keyfile, max_body=MAX_BODY, name="mlgate-admission", metrics=False)
    webhook.install(http)
    http.start()
    webhook.ready.set()
    return http
