"""``mlgate controller --demo --once`` on a fresh state dir, the configuration loader, and the work queue."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from mlgate.controller.config.settings import ConfigError, load_config
from mlgate.controller.runtime.engine import WorkQueue
from mlgate.controller.runtime.interface import PRIORITY_EVENT, PRIORITY_GATE, ScanRequest


def _controller(home, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLGATE_"))}
    env.update({"MLGATE_HOME": str(home), "MLFLOW_DISABLE_TELEMETRY": "true"})
    return subprocess.run(
        [sys.executable, "-m", "mlgate.controller", "controller", *args],
        env=env,
        cwd=home.parent,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.mark.integration
def test_demo_once_on_a_fresh_machine(tmp_path):
    home = tmp_path / "mlgate-home"
    first = _controller(home, "--demo", "--once")
    assert first.returncode == 0, first.stderr
    rows = {line.split()[0]: line.split() for line in first.stdout.splitlines() if line.startswith("demo-")}
    assert set(rows) == {"demo-fraud-classifier", "demo-churn-pickle", "demo-base-llm", "demo-support-adapter"}
    for name in ("demo-churn-pickle", "demo-base-llm", "demo-support-adapter"):
        assert rows[name][2] == "quarantined", rows[name]  # payload pickles, and an adapter built on one
    assert all(row[2] in ("approved", "quarantined") for row in rows.values())
    assert "scanned 4 version(s) this run, 0 error(s), 0 without a verdict" in first.stdout
    assert 'mlgate_scans_total{source="mlflow",verdict="quarantined"}' in first.stdout
    assert (home / "signing.key").stat().st_mode & 0o077 == 0

    again = _controller(home, "--once")  # restart: every verdict is still valid, nothing is rescanned
    assert again.returncode == 0, again.stderr
    assert "scanned 0 version(s) this run" in again.stdout


def test_config_file_env_overrides_and_errors(tmp_path):
    path = tmp_path / "controller.yaml"
    path.write_text(
        "workers: 3\nmlflow:\n  tracking_uri: http://mlflow:5000\n  page_size: 100\nwebhook:\n  max_skew_seconds: 60\n"
    )
    config = load_config(
        path,
        {
            "MLGATE_MLFLOW__PAGE_SIZE": "50",
            "MLGATE_SIGNING_KEY": "k" * 32,
            "MLFLOW_TRACKING_URI": "http://ignored:5000",
            "MLGATE_WEBHOOK_SECRET": "s",
        },
    )
    assert (config.workers, config.mlflow.page_size, config.webhook.max_skew_seconds) == (3, 50, 60.0)
    assert config.tracking_uri == "http://mlflow:5000"  # the file wins over MLFLOW_TRACKING_URI
    assert config.webhook.secret == "s" and config.key() == b"k" * 32

    toml = tmp_path / "controller.toml"
    toml.write_text("[mlflow]\nrevert_unapproved_aliases = false\n")
    config = load_config(toml, {"MLFLOW_TRACKING_URI": "http://from-env:5000", "MLGATE_SIGNING_KEY": "k" * 32})
    assert config.tracking_uri == "http://from-env:5000" and not config.mlflow.revert_unapproved_aliases
    assert not config.embedded

    embedded = load_config(None, {"MLGATE_HOME": str(tmp_path / "home")})
    assert embedded.embedded and embedded.tracking_uri.startswith("sqlite:///")
    assert embedded.key() == embedded.key()  # generated once, then read back

    for text, message in (
        ("mlflow:\n  page_sise: 10\n", "mlflow.page_sise: unknown setting"),
        ("mlflow:\n  page_size: ten\n", "mlflow.page_size: expected a whole number, got 'ten'"),
        ("workers: 0\n", "workers: must be greater than 0"),
        ("mlflow: [1]\n", "mlflow: expected a mapping of settings"),
        ("http:\n  tls_cert_file: c.pem\n", "tls_cert_file and tls_key_file go together"),
        ("log_format: xml\n", "log_format: expected"),
        ("workers: [\n", "is not valid YAML"),
    ):
        path.write_text(text)
        with pytest.raises(ConfigError) as err:
            load_config(path, {})
        assert message in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="MLGATE_WORKERS"):
        load_config(None, {"MLGATE_WORKERS__X__Y": "1"})
    with pytest.raises(ConfigError, match="workers: expected a whole number"):
        load_config(None, {"MLGATE_WORKERS": "many"})
    with pytest.raises(ConfigError, match="no verdict signing key"):
        load_config(None, {"MLFLOW_TRACKING_URI": "http://mlflow:5000"}).key()


def test_work_queue_merges_prioritises_and_delays():
    queue = WorkQueue()
    a = ScanRequest("mlflow", ("version", "m", "1"))
    assert queue.put(a) is True
    assert queue.put(a) is False  # merged while waiting
    queue.put(ScanRequest("mlflow", ("version", "m", "2")), delay=0.3)
    queue.put(ScanRequest("mlflow", ("alias", "m", "champion"), "webhook", PRIORITY_GATE))
    queue.put(ScanRequest("mlflow", ("version", "m", "1"), "webhook", PRIORITY_EVENT))  # raises a's priority
    assert len(queue) == 3
    assert queue.get(0.1).key == ("alias", "m", "champion")
    first = queue.get(0.1)
    assert first.key == ("version", "m", "1") and first.priority == PRIORITY_EVENT
    assert queue.put(a) is False  # reconcile request for a version being scanned: the scan will answer it
    assert queue.get(0.05) is None  # the delayed one is not due yet
    started = time.monotonic()
    assert queue.get(2.0).key == ("version", "m", "2")
    assert time.monotonic() - started >= 0.15
    queue.done(first)
    assert not queue.wait_idle(0.05)  # version 2 still active


def test_work_queue_keeps_the_retry_of_a_running_reconcile_scan():
    """A failed scan found by reconcile is re-queued by its worker while still marked running;
    that retry (attempt > 0) must be kept, unlike a fresh reconcile request for the same item."""
    from dataclasses import replace

    queue = WorkQueue()
    request = ScanRequest("s3", ("bucket", "models/fraud"))
    queue.put(request)
    running = queue.get(0.1)
    assert queue.put(request) is False  # a fresh reconcile request is answered by the running scan
    assert queue.put(replace(running, attempt=1), delay=0.05) is True  # the worker's retry is kept
    queue.done(running)
    retry = queue.get(2.0)
    assert retry is not None and retry.key == ("bucket", "models/fraud") and retry.attempt == 1
