"""A real Prometheus scraping a freshly started controller with the chart's alert rules: the quarantine
alert fires for the very first malicious registration after the controller (re)starts.

A series born at 1 has no ``increase()``, so the scan counters must exist at 0 from start-up. Short
scrape and evaluation intervals (1 s) keep the wall time low. Prometheus comes from Debian's
``prometheus`` package (``.ci/run`` installs it); under CI (``CI`` set) a missing binary fails the test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from k8s_helpers import find, render_chart

NAMESPACE, RELEASE = "ml-security", "gate"
KEY = "mlgate-prometheus-test-key-0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def _wait(predicate, timeout: float, what: str, procs: list[subprocess.Popen]) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                pytest.fail(f"{proc.args[0]} exited while waiting for {what}")
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - keep polling
            last = exc
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout:g} s waiting for {what}" + (f" ({last})" if last else ""))


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="module")
def prometheus_bin() -> str:
    path = shutil.which("prometheus")
    if path is None:
        message = "prometheus is not installed (apt-get install -y --no-install-recommends prometheus)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _warm_up() -> None:
    import mlflow.store.model_registry.sqlalchemy_store
    import mlflow.store.tracking.sqlalchemy_store  # noqa: F401


def _register_malicious(tracking_uri: str, artifacts: Path) -> str:
    from mlflow import MlflowClient

    from mlgate.controller.mlflow.demo import demo_model_dir

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    experiment_id = client.create_experiment("alerts", artifact_location=artifacts.resolve().as_uri())
    run = client.create_run(experiment_id)
    client.log_artifacts(run.info.run_id, str(demo_model_dir("churn-pickle")), "model")
    client.set_terminated(run.info.run_id)
    client.create_registered_model("churn")
    return str(client.create_model_version("churn", f"{run.info.artifact_uri}/model", run_id=run.info.run_id).version)


def test_quarantine_alert_fires_for_the_first_threat_after_a_restart(prometheus_bin: str, tmp_path: Path) -> None:
    docs, _ = render_chart({"metrics": {"prometheusRule": {"enabled": True}}}, namespace=NAMESPACE, name=RELEASE)
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": find(docs, "PrometheusRule")["spec"]["groups"]}, sort_keys=False))

    state = tmp_path / "state"
    metrics_port, prom_port = _free_port(), _free_port()
    config = tmp_path / "controller.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "state_dir": str(state),
                "log_format": "text",
                "mlflow": {"poll_interval_seconds": 0.5, "full_resync_seconds": 1.0},
                "http": {"host": "127.0.0.1", "port": metrics_port},
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING", "MLFLOW_REGISTRY", "MLGATE_"))}
    env.update({"MLGATE_SIGNING_KEY": KEY, "MLFLOW_DISABLE_TELEMETRY": "true"})
    prom_config = tmp_path / "prometheus.yml"
    prom_config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(rules)],
                "scrape_configs": [
                    {
                        "job_name": "mlgate",
                        "static_configs": [
                            {"targets": [f"127.0.0.1:{metrics_port}"], "labels": {"namespace": NAMESPACE}}
                        ],
                    }
                ],
            }
        )
    )
    procs: list[subprocess.Popen] = []
    # Import MLflow's stores in this process while the controller and Prometheus start (the test registers later).
    warm = threading.Thread(target=_warm_up, daemon=True)
    warm.start()
    try:
        controller = subprocess.Popen(
            [sys.executable, "-m", "mlgate.controller", "controller", "--config", str(config)],
            env=env,
            cwd=tmp_path,
            stdout=open(tmp_path / "controller.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        procs.append(controller)
        prometheus = subprocess.Popen(
            [
                prometheus_bin,
                f"--config.file={prom_config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            cwd=tmp_path,
            stdout=open(tmp_path / "prometheus.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        procs.append(prometheus)
        api = f"http://127.0.0.1:{prom_port}/api/v1"

        def query(expr: str) -> list[dict[str, Any]]:
            return _get(f"{api}/query?query={urllib.parse.quote(expr)}")["data"]["result"]

        # Before any threat: Prometheus already sees the quarantine counter, at 0, and no alert.
        series = f'mlgate_scans_total{{namespace="{NAMESPACE}",source="mlflow",verdict="quarantined"}}'
        seen = _wait(lambda: query(series), 90, "the quarantine counter at 0 in Prometheus", procs)
        assert float(seen[0]["value"][1]) == 0.0
        assert not query(f'mlgate_scans_total_created{{namespace="{NAMESPACE}"}}'), "_created series are off"
        assert not [
            a for a in _get(f"{api}/alerts")["data"]["alerts"] if a["labels"]["alertname"] == "MlgateModelQuarantined"
        ]

        warm.join(60)
        # The controller finished its first reconcile pass (its registry database exists).
        _wait(lambda: _status(f"http://127.0.0.1:{metrics_port}/readyz") == 200, 60, "controller ready", procs)
        started = time.monotonic()
        _register_malicious(f"sqlite:///{state / 'mlflow.db'}", tmp_path / "artifacts")

        def firing() -> list[dict[str, Any]]:
            alerts = _get(f"{api}/alerts")["data"]["alerts"]
            return [
                a for a in alerts if a["labels"]["alertname"] == "MlgateModelQuarantined" and a["state"] == "firing"
            ]

        alert = _wait(firing, 60, "MlgateModelQuarantined to fire", procs)[0]
        assert alert["labels"]["source"] == "mlflow"
        assert alert["labels"]["severity"] == "critical"
        assert time.monotonic() - started < 60
    finally:
        for proc in reversed(procs):
            _stop(proc)
