"""Helpers shared by the MLflow controller tests (servers themselves are in conftest.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SIGNING_KEY = "mlgate-test-signing-key-0123456789"
WEBHOOK_SECRET = "mlgate-test-webhook-secret"
# The test servers' MLFLOW_WEBHOOK_CACHE_TTL (seconds). An MLflow server keeps the list of webhooks per
# event this long: a webhook registered less than this after the last event of its kind is not called
# for the next one, so a test waits this long after registering a webhook (MLflow's default is 60 s).
WEBHOOK_CACHE_TTL_SECONDS = 1
START_TIMEOUT = 120.0

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.1, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - keep polling; report the last error on timeout
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout:g} s waiting for {what}" + (f" (last error: {last_exc})" if last_exc else "")
    )


@dataclass
class MlflowServer:
    name: str
    url: str
    proc: subprocess.Popen
    log: Path

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def client(self):
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.url, registry_uri=self.url)


def register(client, name: str, files: dict[str, bytes] | Path, tmp_path: Path) -> str:
    """Register a new version of ``name`` whose artifacts are ``files`` (or a folder); returns the version."""
    from mlflow.exceptions import MlflowException

    if isinstance(files, Path):
        src = files
    else:
        src = tmp_path / f"src-{uuid.uuid4().hex[:8]}"
        for rel, data in files.items():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            (src / rel).write_bytes(data)
    experiment = client.get_experiment_by_name("mlgate-tests")
    experiment_id = experiment.experiment_id if experiment else client.create_experiment("mlgate-tests")
    run = client.create_run(experiment_id)
    client.log_artifacts(run.info.run_id, str(src), "model")
    client.set_terminated(run.info.run_id)
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    return str(client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id).version)


CLEAN_FILES = {"README.txt": b"A tiny model card.\nNothing to execute here.\n", "weights.txt": b"0.25 0.5 0.75\n"}


def malicious_dir() -> Path:
    """The committed demo model whose pickle would touch the canary (built by tests/fixtures/demo)."""
    from mlgate.controller.mlflow.demo import demo_model_dir

    return demo_model_dir("churn-pickle")


def signed_tags(client, name: str, version: str) -> dict[str, str] | None:
    """The version's tags once they carry a verdict validly signed (test key) for this very version."""
    from mlgate.controller.verdicts.signing import verify_verdict

    tags = client.get_model_version(name, version).tags
    ok = verify_verdict(
        SIGNING_KEY.encode(),
        name,
        version,
        tags.get("mlgate.digest", ""),
        tags.get("mlgate.verdict", ""),
        tags.get("mlgate.signature"),
    )
    return tags if ok else None


def metric(name: str, **labels: str) -> float:
    from mlgate.controller.runtime.metrics import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


class Forwarder:
    """A TCP forwarder on a fixed loopback port that can be switched off (connection refused) and on again.

    Closing a listening socket does not wake a thread blocked in ``accept()`` on Linux: the kernel keeps
    listening and hands it the next connection, which would bridge the outage. ``down`` therefore shuts the
    listener down first (that does wake ``accept``), and every connection is registered under a lock
    together with the listener generation it came from, so a connection accepted while going down is cut.
    """

    def __init__(self, target_port: int) -> None:
        import threading

        self.port = free_port()
        self._target = target_port
        self._listener: socket.socket | None = None
        self._threading = threading
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        with self._lock:
            self._listener = listener
        self._threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        """Refuse new connections and cut the open ones (keep-alive pools must not bridge the outage)."""
        with self._lock:
            listener, self._listener = self._listener, None
            cut = list(self._open)
            self._open.clear()
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            except OSError:
                pass
            listener.close()
        for sock in cut:
            _cut(sock)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self._target), timeout=10)
            except OSError:
                conn.close()
                continue
            with self._lock:
                live = self._listener is listener
                if live:
                    self._open.update((conn, upstream))
            if not live:  # accepted while going down: refuse it like the closed port would
                _cut(conn)
                _cut(upstream)
                return
            for a, b in ((conn, upstream), (upstream, conn)):
                self._threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                _cut(s)
                with self._lock:
                    self._open.discard(s)


def _cut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def kill_server(server: MlflowServer) -> None:
    """Stop a test MLflow server and every process it started."""
    import signal
    import subprocess

    import psutil

    try:
        children = psutil.Process(server.proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    server.proc.send_signal(signal.SIGTERM)
    try:
        server.proc.wait(10)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait(10)
    for child in children:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
