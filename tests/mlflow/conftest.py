"""Real MLflow servers for the controller tests (one pair per session) and helpers to drive them.

Two ``mlflow server`` processes (sqlite backend, ``--workers 1``, job execution off,
webhooks allowed to loopback http) start in parallel on free loopback ports:

* ``plain``: no plugin, so tags and aliases can be forged and the controller's
  fallback gate (alias revert) is what stops promotions;
* ``gated``: ``--app-name mlgate`` (the promotion-gate plugin) with the test verdict key.

Each test uses its own model-name prefix and points its controller at it with
``mlflow.model_name_like``, so tests share the servers without seeing each other.
Processes are killed by PID at the end of the session.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from helpers_mlflow import (
    SIGNING_KEY,
    WEBHOOK_CACHE_TTL_SECONDS,
    WEBHOOK_SECRET,
    MlflowServer,
    free_port,
    kill_server,
)
from moto_server import moto_env

START_TIMEOUT = 120.0


def _start_server(
    root: Path, name: str, app: str | None, store: list[str] | None = None, extra_env: dict[str, str] | None = None
) -> MlflowServer:
    from cryptography.fernet import Fernet

    home = root / name
    home.mkdir()
    port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
            "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
            "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "MLFLOW_WEBHOOK_CACHE_TTL": str(WEBHOOK_CACHE_TTL_SECONDS),
            "MLGATE_SIGNING_KEY": SIGNING_KEY,
            **(extra_env or {}),
        }
    )
    env.pop("MLGATE_CONTROLLER_TOKEN", None)
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{home / 'mlflow.db'}",
        *(store if store is not None else ["--artifacts-destination", str(home / "artifacts")]),
    ]
    if app:
        cmd += ["--app-name", app]
    log = home / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=home)
    return MlflowServer(name, f"http://127.0.0.1:{port}", proc, log)


@pytest.fixture(scope="session")
def mlflow_servers(tmp_path_factory) -> Iterator[dict[str, MlflowServer]]:
    root = tmp_path_factory.mktemp("mlflow-servers")
    servers = {"plain": _start_server(root, "plain", None), "gated": _start_server(root, "gated", "mlgate")}
    try:
        deadline = time.monotonic() + START_TIMEOUT
        for server in servers.values():
            while not server.healthy():
                if server.proc.poll() is not None:
                    pytest.fail(f"mlflow server {server.name} exited: {server.log.read_text()[-2000:]}")
                if time.monotonic() > deadline:
                    pytest.fail(f"mlflow server {server.name} not healthy after {START_TIMEOUT:g} s")
                time.sleep(0.2)
        yield servers
    finally:
        for server in servers.values():
            kill_server(server)


def _wait_healthy(server: MlflowServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not server.healthy():
        if server.proc.poll() is not None:
            pytest.fail(f"mlflow server {server.name} exited: {server.log.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"mlflow server {server.name} not healthy after {START_TIMEOUT:g} s")
        time.sleep(0.2)


@pytest.fixture(scope="session")
def s3_session_env(moto_endpoint: str) -> Iterator[dict[str, str]]:
    """The session's moto server (tests/moto_server.py) as this process's S3 for the rest of the session (the
    session-scoped S3-backed MLflow server's clients run here); restored at the end."""
    env = moto_env(moto_endpoint)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


S3_BUCKET = "mlflow-artifacts"


@pytest.fixture(scope="session")
def s3_gated_server(tmp_path_factory, s3_session_env: dict[str, str]) -> Iterator[MlflowServer]:
    """A gated MLflow server whose artifacts live in S3 (moto), read and written by clients directly."""
    import boto3

    boto3.client("s3").create_bucket(Bucket=S3_BUCKET)
    root = tmp_path_factory.mktemp("mlflow-s3-server")
    server = _start_server(
        root,
        "gated-s3",
        "mlgate",
        store=["--default-artifact-root", f"s3://{S3_BUCKET}/", "--no-serve-artifacts"],
        extra_env=s3_session_env,
    )
    try:
        _wait_healthy(server)
        yield server
    finally:
        kill_server(server)


@pytest.fixture
def plain_server(mlflow_servers) -> MlflowServer:
    return mlflow_servers["plain"]


@pytest.fixture
def gated_server(mlflow_servers) -> MlflowServer:
    return mlflow_servers["gated"]


@pytest.fixture
def prefix() -> str:
    """A model-name prefix private to one test."""
    return f"t{uuid.uuid4().hex[:8]}-"


@pytest.fixture
def make_controller(tmp_path, prefix):
    """Build and start in-process controllers against a server URL; all are stopped after the test."""
    from mlgate.analyzers.core.policy import Policy
    from mlgate.controller.cli.controller import build_controller
    from mlgate.controller.config.settings import (
        BackoffConfig,
        ControllerConfig,
        HttpConfig,
        MLflowConfig,
        WebhookConfig,
    )

    started = []

    def make(url: str, start: bool = True, **mlflow_overrides):
        mlflow = replace(
            MLflowConfig(
                tracking_uri=url, model_name_like=f"{prefix}%", poll_interval_seconds=0.5, full_resync_seconds=2.0
            ),
            **mlflow_overrides,
        )
        config = ControllerConfig(
            state_dir=str(tmp_path / "state"),
            signing_key=SIGNING_KEY,
            workers=2,
            mlflow=mlflow,
            http=HttpConfig(port=0),
            webhook=WebhookConfig(secret=WEBHOOK_SECRET),
            backoff=BackoffConfig(initial_seconds=0.2, max_seconds=1.0, max_scan_attempts=3),
        )
        controller = build_controller(config, SIGNING_KEY.encode(), Policy())
        started.append(controller)
        if start:
            controller.runtime.start()
        return controller

    yield make
    for controller in started:
        controller.runtime.stop()
