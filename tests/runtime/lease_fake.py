"""A small, real HTTP server implementing the coordination.k8s.io/v1 Lease endpoints leader election uses.

GET/POST/PUT on ``/apis/coordination.k8s.io/v1/namespaces/<ns>/leases[/<name>]`` with the API server's
optimistic concurrency: a PUT whose ``metadata.resourceVersion`` is not the current one gets 409
Conflict, a POST for an existing Lease gets 409 AlreadyExists; like it, a write stores
``metadata.annotations`` as sent (a replace without them removes them). Every successful write is logged with
its time and holder so tests can reconstruct who held the lease when. ``steal()`` and ``outage``
simulate another writer and a failing API server; ``delay`` a hanging one.
"""

from __future__ import annotations

import copy
import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PATH = re.compile(r"^/apis/coordination\.k8s\.io/v1/namespaces/(?P<ns>[^/]+)/leases(?:/(?P<name>[^/?]+))?/?(?:\?.*)?$")


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def _keep_annotations(lease: dict[str, Any], body: dict[str, Any]) -> None:
    annotations = (body.get("metadata") or {}).get("annotations")
    if annotations:
        lease["metadata"]["annotations"] = dict(annotations)
    else:
        lease["metadata"].pop("annotations", None)


class FakeLeaseAPI:
    def __init__(self) -> None:
        self.leases: dict[tuple[str, str], dict[str, Any]] = {}
        self.writes: list[tuple[float, str, str | None]] = []  # (time, verb, holder) of successful writes
        self.conflicts = 0
        self.outage = False
        self.delay = 0.0  # seconds every answer waits (a hanging API server)
        self._stopped = False
        self._connections: set[socket.socket] = set()
        self._rv = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeLeaseAPI:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering and close the port (idempotent): connections are then refused."""
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        for connection in list(self._connections):  # keep-alive connections too: nothing answers any more
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def holder(self, namespace: str = "mlgate", name: str = "mlgate-controller") -> str | None:
        with self._lock:
            lease = self.leases.get((namespace, name))
            return lease["spec"].get("holderIdentity") if lease else None

    def steal(self, identity: str, namespace: str = "mlgate", name: str = "mlgate-controller") -> None:
        """Another writer takes the lease (as if the API server granted it to someone else)."""
        with self._lock:
            lease = self.leases[(namespace, name)]
            now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
            lease["spec"].update({"holderIdentity": identity, "acquireTime": now, "renewTime": now})
            self._bump(lease)
            self.writes.append((time.monotonic(), "steal", identity))

    def _bump(self, lease: dict[str, Any]) -> None:
        self._rv += 1
        lease["metadata"]["resourceVersion"] = str(self._rv)

    def _handle(self, method: str, path: str, body: dict[str, Any] | None) -> tuple[int, dict[str, Any]]:
        if self.outage:
            return 503, _status(503, "ServiceUnavailable", "the API server is unavailable")
        match = PATH.match(path)
        if not match:
            return 404, _status(404, "NotFound", f"no route for {path}")
        namespace, name = match["ns"], match["name"]
        with self._lock:
            if method == "GET" and name:
                lease = self.leases.get((namespace, name))
                if lease is None:
                    return 404, _status(404, "NotFound", f'leases.coordination.k8s.io "{name}" not found')
                return 200, copy.deepcopy(lease)
            if method == "POST" and not name and body:
                name = body.get("metadata", {}).get("name", "")
                if (namespace, name) in self.leases:
                    self.conflicts += 1
                    return 409, _status(409, "AlreadyExists", f'leases.coordination.k8s.io "{name}" already exists')
                lease = {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}"},
                    "spec": body.get("spec") or {},
                }
                _keep_annotations(lease, body)
                self._bump(lease)
                self.leases[(namespace, name)] = lease
                self.writes.append((time.monotonic(), "create", lease["spec"].get("holderIdentity")))
                return 201, copy.deepcopy(lease)
            if method == "PUT" and name and body:
                lease = self.leases.get((namespace, name))
                if lease is None:
                    return 404, _status(404, "NotFound", f'leases.coordination.k8s.io "{name}" not found')
                sent = body.get("metadata", {}).get("resourceVersion")
                if sent != lease["metadata"]["resourceVersion"]:
                    self.conflicts += 1
                    return 409, _status(
                        409,
                        "Conflict",
                        "the object has been modified; please apply your changes to the latest version and try again",
                    )
                lease["spec"] = body.get("spec") or {}
                _keep_annotations(lease, body)  # a replace replaces them too (absent: removed)
                self._bump(lease)
                self.writes.append((time.monotonic(), "update", lease["spec"].get("holderIdentity")))
                return 200, copy.deepcopy(lease)
        return 405, _status(405, "MethodNotAllowed", f"{method} not supported")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                api._connections.add(self.connection)

            def finish(self) -> None:
                api._connections.discard(self.connection)
                try:
                    super().finish()
                except OSError:
                    pass

            def _serve(self) -> None:
                if api.delay:
                    time.sleep(api.delay)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                status, doc = api._handle(self.command, self.path, body)
                payload = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except OSError:  # the client gave up (timed out) first
                    self.close_connection = True

            do_GET = do_POST = do_PUT = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
