"""Helpers for the S3 tests: payloads, a fault-injecting HTTP proxy, and controller wiring."""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
from botocore.config import Config

from mlgate.analyzers.core.policy import Policy
from mlgate.controller.config.buckets import BucketConfig
from mlgate.controller.config.settings import BackoffConfig
from mlgate.controller.runtime.engine import Runtime
from mlgate.controller.s3.object_tags import read_tags
from mlgate.controller.s3.source import S3Source

SIGNING_KEY = b"s3-tests-signing-key-0123456789abcdef"
CANARY = os.environ.get("MLGATE_CANARY_DIR", "/tmp/mlgate-canary")  # checked by tests/conftest.py
FAST_BACKOFF = BackoffConfig(initial_seconds=0.05, max_seconds=0.3, max_scan_attempts=2)
MARKER = "MODEL_CARD.md"  # a plain-text marker: its model's verdict depends only on the other files


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- content --------------------------------------------------------------------------------------


def evil_pickle(name: str) -> bytes:
    """A protocol-2 pickle that would run ``touch /tmp/mlgate-canary/<name>`` if it were ever loaded."""
    command = f"touch {CANARY}/{name}".encode()
    return b"\x80\x02cposix\nsystem\nq\x00X" + len(command).to_bytes(4, "little") + command + b"q\x01\x85q\x02Rq\x03."


def clean_weights(n: int = 4096, seed: int = 7) -> bytes:
    """Raw float-like bytes with no format: a plain weights blob."""
    out = bytearray()
    x = seed
    while len(out) < n:
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        out += x.to_bytes(4, "little")
    return bytes(out[:n])


def safetensors_file(n_floats: int = 64) -> bytes:
    """A valid safetensors file: one float32 tensor of zeros."""
    header = json.dumps(
        {
            "weight": {"dtype": "F32", "shape": [n_floats], "data_offsets": [0, 4 * n_floats]},
            "__metadata__": {"format": "pt"},
        }
    ).encode()
    header += b" " * (-len(header) % 8)
    return len(header).to_bytes(8, "little") + header + bytes(4 * n_floats)


def hf_config() -> bytes:
    return json.dumps({"architectures": ["BertModel"], "model_type": "bert", "hidden_size": 8}).encode()


def model_card(title: str = "demo") -> bytes:
    return f"# {title}\n\nA small model used in mlgate's S3 tests.\n".encode()


# -- clients --------------------------------------------------------------------------------------


def client(service: str, endpoint: str, attempts: int = 3) -> Any:
    options: dict[str, Any] = {"retries": {"mode": "standard", "max_attempts": attempts}}
    if service == "s3":
        options["s3"] = {"addressing_style": "path"}
    return boto3.session.Session().client(
        service, endpoint_url=endpoint, region_name="us-east-1", config=Config(**options)
    )


def factory(endpoint: str, attempts: int = 3) -> Callable[[str, BucketConfig], Any]:
    """An ``S3Source`` client factory pointed at ``endpoint`` (moto, or the fault proxy in front of it)."""
    return lambda service, _cfg: client(service, endpoint, attempts)


def tags(s3: Any, bucket: str, key: str, version_id: str | None = None) -> dict[str, str]:
    return read_tags(s3, bucket, key, version_id)


def verdict(s3: Any, bucket: str, key: str, version_id: str | None = None) -> str | None:
    return tags(s3, bucket, key, version_id).get("mlgate.verdict")


def make_source(cfg: BucketConfig | list[BucketConfig], endpoint: str, attempts: int = 3, **kw: Any) -> S3Source:
    configs = cfg if isinstance(cfg, list) else [cfg]
    return S3Source(configs, Policy(), SIGNING_KEY, client_factory=factory(endpoint, attempts), **kw)


def reconcile(source: S3Source, timeout: float = 60.0) -> Runtime:
    """One reconcile pass through the real runtime, waiting for its scans; the runtime (stopped) for results."""
    runtime = Runtime([source], FAST_BACKOFF, workers=1)
    try:
        assert runtime.run_once(timeout), "reconcile pass did not finish"
    finally:
        runtime.stop()
    return runtime


def reconcile_until(source: S3Source, done: Callable[[], bool], passes: int = 5) -> int:
    """Reconcile passes until ``done()``; how many it took (a model whose scan S3 cut short waits for one)."""
    for n in range(1, passes + 1):
        reconcile(source)
        if done():
            return n
    raise AssertionError(f"not done after {passes} reconcile passes")


def notify_to_queue(
    s3: Any, sqs: Any, bucket: str, name: str, max_receive: int = 3, visibility: int = 30
) -> tuple[str, str]:
    """A queue (with a dead-letter queue) receiving the bucket's object events; (queue url, dlq url)."""
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": str(visibility),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive)}),
        },
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}]
        },
    )
    return queue, dlq


def scans(records: list[logging.LogRecord]) -> list[str]:
    """Models actually read from S3 (one ``s3 model read`` log line per scan), in order."""
    return [getattr(r, "target", "") for r in records if r.getMessage() == "s3 model read"]


def drain(consumer: Any, sqs: Any, queue: str, timeout: float = 40.0) -> None:
    """Poll until the queue holds nothing visible or in flight (failed messages go to their DLQ first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        received = consumer.poll_once(wait_seconds=1)
        if received == 0 and queue_counts(sqs, queue) == (0, 0):
            return
    raise AssertionError(f"queue not drained in {timeout:g} s: {queue_counts(sqs, queue)}")


def queue_counts(sqs: Any, url: str) -> tuple[int, int]:
    """(visible, in flight) messages."""
    attrs = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(every)


# -- fault proxy ----------------------------------------------------------------------------------


@dataclass
class Fault:
    """What the proxy does to matching requests, ``times`` times."""

    match: Callable[[str, str], bool]  # (method, decoded path with query) -> bool
    times: int
    status: int = 0  # answer with this S3 error status (0: forward)
    code: str = ""
    delay: float = 0.0  # seconds to wait before forwarding
    before: Callable[[], None] | None = None  # run before forwarding (e.g. delete an object mid-scan)
    hits: int = 0


@dataclass
class FaultProxy:
    """A loopback HTTP proxy in front of moto that injects errors, delays and side effects."""

    upstream: str
    url: str = ""
    faults: list[Fault] = field(default_factory=list)
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    tagging: list[tuple[str, bytes]] = field(default_factory=list)  # (path, body) of every PUT ?tagging forwarded
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # moto checks If-None-Match and then writes, without a lock: two racing conditional PUTs can both win.
    # S3 does not allow that, so the proxy forwards conditional PUTs one at a time.
    _conditional: threading.Lock = field(default_factory=threading.Lock)

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def fault_for(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.hits < fault.times and fault.match(method, path):
                    fault.hits += 1
                    return fault
        return None

    def start(self) -> str:
        proxy = self
        target = urllib.parse.urlsplit(self.upstream)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _handle(self) -> None:
                body = self._body()
                path = urllib.parse.unquote(self.path)
                fault = proxy.fault_for(self.command, path)
                if fault is not None and fault.before is not None:
                    fault.before()
                if fault is not None and fault.delay:
                    time.sleep(fault.delay)
                if fault is not None and fault.status:
                    xml = (
                        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{fault.code}</Code>'
                        f"<Message>injected by the test proxy</Message></Error>"
                    ).encode()
                    self._reply(fault.status, [("Content-Type", "application/xml")], xml)
                    proxy.requests.append((self.command, path, fault.status))
                    return
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("transfer-encoding", "connection", "proxy-connection")
                }
                headers["Content-Length"] = str(len(body))
                if self.command == "PUT" and "tagging" in path:
                    proxy.tagging.append((path, body))
                conditional = self.command == "PUT" and "If-None-Match" in self.headers
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                try:
                    if conditional:
                        proxy._conditional.acquire()
                    try:
                        conn.request(self.command, self.path, body=body, headers=headers)
                        response = conn.getresponse()
                        data = response.read()
                    finally:
                        if conditional:
                            proxy._conditional.release()
                    out = [
                        (k, v)
                        for k, v in response.getheaders()
                        if k.lower() not in ("transfer-encoding", "connection", "content-length")
                    ]
                    self._reply(
                        response.status,
                        out,
                        data,
                        head=self.command == "HEAD",
                        length=response.getheader("Content-Length"),
                    )
                    proxy.requests.append((self.command, path, response.status))
                finally:
                    conn.close()

            def _reply(
                self,
                status: int,
                headers: list[tuple[str, str]],
                data: bytes,
                head: bool = False,
                length: str | None = None,
            ) -> None:
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", length if head and length else str(len(data)))
                self.end_headers()
                if not head:
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"
        return self.url

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
