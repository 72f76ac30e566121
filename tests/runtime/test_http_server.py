"""mlgate's one HTTP server (controller probes, metrics and MLflow webhooks; the admission webhook over TLS).

The failure modes are the ones a server on a cluster network meets: a client that opens a connection
and never speaks TLS, small request/answer pairs on a kept-alive connection (the Nagle/delayed-ACK
stall), and bodies larger than any legitimate request.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import statistics
import time
from collections.abc import Iterator

import pytest

from mlgate.controller.runtime import http_server
from mlgate.controller.runtime.http_server import HttpRequest, HttpServer, Response


def _echo(request: HttpRequest) -> Response:
    return 200, "application/octet-stream", request.body


@pytest.fixture
def tls_server(tls_files: dict, monkeypatch: pytest.MonkeyPatch) -> Iterator[HttpServer]:
    monkeypatch.setattr(http_server, "SOCKET_TIMEOUT", 1.0)
    server = HttpServer("127.0.0.1", 0, tls_files["cert"], tls_files["key"])
    server.add_route("POST", "/echo", _echo)
    server.start()
    yield server
    server.stop()


def _https(server: HttpServer, tls_files: dict, timeout: float = 3.0) -> http.client.HTTPSConnection:
    context = ssl.create_default_context(cafile=str(tls_files["ca"]))
    return http.client.HTTPSConnection("localhost", server.port, context=context, timeout=timeout)


def test_a_client_that_never_handshakes_blocks_nobody(tls_server: HttpServer, tls_files: dict) -> None:
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=5) as stalled:
        time.sleep(0.2)  # the server has accepted it and waits for a ClientHello that never comes
        started = time.monotonic()
        conn = _https(tls_server, tls_files)
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        assert response.status == 200 and b"mlgate_" in response.read()
        conn.close()
        assert time.monotonic() - started < 1.0
        # The stalled connection is dropped once the handshake timeout runs out.
        assert stalled.recv(1) == b""


def test_small_requests_on_a_kept_alive_connection_do_not_stall(tls_files: dict) -> None:
    server = HttpServer()
    server.add_route("POST", "/echo", _echo)
    server.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        times = []
        for _ in range(30):
            started = time.perf_counter()
            conn.request("POST", "/echo", body=b"x" * 100)
            assert conn.getresponse().read() == b"x" * 100
            times.append(time.perf_counter() - started)
        conn.close()
    finally:
        server.stop()
    # With Nagle on, every answer waits for the client's delayed ACK: about 40 ms on Linux.
    assert statistics.median(times) < 0.015


def test_oversized_bodies_are_refused_and_the_connection_closed(tls_files: dict) -> None:
    server = HttpServer(max_body=1024)
    server.add_route("POST", "/echo", _echo)
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
            raw.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2048\r\n\r\n" + b"y" * 2048)
            answer = b""
            while chunk := raw.recv(4096):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 413")  # and the server closed: the loop above ended
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        conn.request("POST", "/echo", body=b"z" * 1024)
        assert conn.getresponse().read() == b"z" * 1024
        conn.close()
    finally:
        server.stop()


def test_routes_methods_and_tls_answers(tls_server: HttpServer, tls_files: dict) -> None:
    conn = _https(tls_server, tls_files)
    for method, path, expected in (("POST", "/echo", 200), ("GET", "/echo", 405), ("GET", "/nope", 404)):
        conn.request(method, path, body=b"ok" if method == "POST" else None)
        response = conn.getresponse()
        response.read()
        assert response.status == expected, (method, path)
    conn.close()
