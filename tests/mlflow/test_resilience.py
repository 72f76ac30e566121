"""Registry outages and garbage answers: the controller retries with backoff, reports not-ready, loses nothing."""

from __future__ import annotations

import http.server
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest
from helpers_mlflow import CLEAN_FILES, Forwarder, malicious_dir, register, signed_tags, wait_for

pytestmark = pytest.mark.integration


def _readyz(controller) -> int:
    return _readyz_answer(controller)[0]


def _readyz_answer(controller) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"{controller.runtime.http.url}/readyz", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _alive(controller) -> bool:
    with urllib.request.urlopen(f"{controller.runtime.http.url}/healthz", timeout=5) as resp:
        return resp.status == 200


def test_registry_down_at_start_and_mid_run(plain_server, make_controller, prefix, tmp_path):
    client = plain_server.client()
    proxy = Forwarder(urlsplit(plain_server.url).port)  # down: connection refused
    first = register(client, f"{prefix}a", CLEAN_FILES, tmp_path)
    controller = make_controller(proxy.url)
    time.sleep(2.0)
    assert _readyz(controller) == 503 and _alive(controller)
    assert not controller.runtime.ready()

    proxy.up()
    wait_for(lambda: _readyz(controller) == 200, timeout=20, what="ready after the registry came back")
    assert (
        wait_for(lambda: signed_tags(client, f"{prefix}a", first), what="first verdict")["mlgate.verdict"] == "approved"
    )

    proxy.down()
    second = register(client, f"{prefix}b", malicious_dir(), tmp_path)  # registered while mlgate cannot see it
    wait_for(lambda: _readyz(controller) == 503, timeout=30, what="not ready during the outage")
    time.sleep(1.0)
    assert _alive(controller)
    proxy.up()
    tags = wait_for(
        lambda: signed_tags(client, f"{prefix}b", second), timeout=30, what="version registered in the outage"
    )
    assert tags["mlgate.verdict"] == "quarantined"
    assert _readyz(controller) == 200
    proxy.down()


class _Lease:
    """Leadership switched by the test (the Kubernetes Lease's role)."""

    def __init__(self) -> None:
        self.leading = False

    def is_leader(self) -> bool:
        return self.leading


def test_a_follower_is_ready_and_a_new_leader_waits_for_its_registry(plain_server, make_controller, prefix, tmp_path):
    """Followers serve webhooks and events, so they stay in the Service even when the registry is down."""
    client = plain_server.client()
    proxy = Forwarder(urlsplit(plain_server.url).port)  # down: connection refused
    version = register(client, f"{prefix}a", CLEAN_FILES, tmp_path)
    controller = make_controller(proxy.url, start=False)
    lease = _Lease()
    controller.runtime.leadership = lease
    controller.runtime.start()
    time.sleep(1.5)  # several reconcile ticks: a follower never runs a pass
    status, body = _readyz_answer(controller)
    assert status == 200 and "follower" in body
    assert controller.runtime.ready()

    lease.leading = True  # leader, registry unreachable: not ready, with the reason
    status, body = wait_for(
        lambda: (answer := _readyz_answer(controller))[0] == 503 and answer,
        timeout=10,
        what="a leader without its registry is not ready",
    )
    assert "mlflow" in body
    proxy.up()
    wait_for(lambda: _readyz(controller) == 200, timeout=20, what="ready after the leader's first pass")
    tags = wait_for(lambda: signed_tags(client, f"{prefix}a", version), what="the leader's verdict")
    assert tags["mlgate.verdict"] == "approved"
    proxy.down()


class _Garbage(http.server.BaseHTTPRequestHandler):
    """Answers every MLflow call with something malformed, cycling through the ways a proxy can break."""

    answers = (
        (500, b"upstream exploded"),
        (200, b"<html>login page</html>"),
        (200, b'{"model_versions": "not a list"}'),
        (200, b'{"model_versions": [{"name": 5, "version": {"a": 1}}]}'),
        (200, b"{}"),  # an empty but valid page: the pass goes on to the registered models...
        (200, b'{"registered_models": [{"name": null, "aliases": 7}]}'),  # ...and gets this
        (200, b"[1, 2, 3]"),
        (200, b'{"model_versions": [{"name": "x", "version": "1", "status": "READY", "tags": "zzz"}]}'),
        (200, b'{"model_versions": [{"name": "x", "version": "1", "status": "READY"}]}'),  # queued, then garbage
        (503, b'{"error_code": "TEMPORARILY_UNAVAILABLE", "message": "maintenance"}'),
    )
    hits = 0
    lock = threading.Lock()

    def _answer(self) -> None:
        with _Garbage.lock:
            status, body = self.answers[_Garbage.hits % len(self.answers)]
            _Garbage.hits += 1
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_DELETE = _answer

    def log_message(self, *args) -> None:
        pass


def test_garbage_registry_never_crashes_the_controller(make_controller):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Garbage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        controller = make_controller(f"http://127.0.0.1:{server.server_address[1]}")
        seen = set()

        def reasons() -> bool:
            status, body = _readyz_answer(controller)
            if status == 503:
                seen.add(body.split("SourceUnavailable: ", 1)[-1].split(" during ")[0])
            return {"malformed MLflow answer", "MLflow unreachable"} <= seen

        wait_for(reasons, timeout=40, interval=0.05, what="both kinds of failure reported on /readyz")
        wait_for(lambda: _Garbage.hits >= 2 * len(_Garbage.answers), timeout=40, what="repeated reconcile attempts")
        assert _alive(controller)
        assert all(t.is_alive() for t in controller.runtime._threads)
    finally:
        server.shutdown()
        server.server_close()
