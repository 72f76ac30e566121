"""Fault injection against a real MLflow server (issue 17, item 6): killed mid-reconcile, restarted.

A dedicated ``mlflow server`` (sqlite backend) is SIGKILLed while the controller reconciles and
downloads, then restarted on the same port and store. After recovery every version carries the
verdict a fault-free scan gives, including one registered after the restart, and no malicious
version was ever seen approved. It runs with the soak (``MLGATE_SOAK_SECONDS``, docs/fault-injection.md);
CI covers registry outages with tests/mlflow/test_resilience.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from helpers_mlflow import CLEAN_FILES, MlflowServer, free_port, malicious_dir, register, signed_tags, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.environ.get("MLGATE_SOAK_SECONDS"),
        reason="starts a fresh MLflow server twice (1-2 min): part of the soak run (docs/fault-injection.md)",
    ),
]


def _start(home: Path, port: int) -> MlflowServer:
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    cmd += ["--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}", "--artifacts-destination", str(home / "art")]
    log = home / "server.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=home)
    server = MlflowServer("faults", f"http://127.0.0.1:{port}", proc, log)
    wait_for(server.healthy, timeout=120, interval=0.2, what="mlflow server up")
    return server


def _kill(server: MlflowServer) -> None:
    try:
        children = psutil.Process(server.proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)
    for child in children:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass


def test_server_killed_mid_reconcile_and_restarted(tmp_path, make_controller, prefix):
    home = tmp_path / "server"
    home.mkdir()
    port = free_port()
    server = _start(home, port)
    try:
        client = server.client()
        clean = [(f"{prefix}clean{i}", register(client, f"{prefix}clean{i}", CLEAN_FILES, tmp_path)) for i in range(2)]
        evil = [(f"{prefix}evil{i}", register(client, f"{prefix}evil{i}", malicious_dir(), tmp_path)) for i in range(2)]
        wrong: list[str] = []
        stop = threading.Event()

        def watch() -> None:  # nothing malicious is ever approved, at any moment
            while not stop.is_set():
                for name, version in evil:
                    try:
                        tags = signed_tags(server.client(), name, version)
                    except Exception:  # noqa: BLE001 - the server is down part of the time
                        continue
                    if tags and tags.get("mlgate.verdict") == "approved":
                        wrong.append(f"{name}/{version}")
                stop.wait(0.2)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        make_controller(server.url)
        time.sleep(0.5)  # the first reconcile pass is under way
        _kill(server)
        time.sleep(2.0)
        server = _start(home, port)
        client = server.client()
        late = (f"{prefix}late", register(client, f"{prefix}late", malicious_dir(), tmp_path))
        evil.append(late)
        for name, version in clean:
            tags = wait_for(lambda n=name, v=version: signed_tags(client, n, v), timeout=90, what=f"{name} verdict")
            assert tags["mlgate.verdict"] == "approved"
        for name, version in evil:
            tags = wait_for(lambda n=name, v=version: signed_tags(client, n, v), timeout=90, what=f"{name} verdict")
            assert tags["mlgate.verdict"] == "quarantined"
        stop.set()
        watcher.join(5)
        assert not wrong, f"approved while faults were injected: {wrong}"
    finally:
        _kill(server)
