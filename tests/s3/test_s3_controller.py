"""``mlgate controller`` with a bucket in its configuration: the real command, in its own process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request

import pytest
from s3_helpers import SIGNING_KEY, evil_pickle, free_port, notify_to_queue, safetensors_file, verdict, wait_for

pytestmark = pytest.mark.integration  # a real moto server on loopback


def _config(tmp_path, moto_endpoint: str, bucket: str, queue: str = "", port: int = 0) -> str:
    path = tmp_path / "controller.yaml"
    path.write_text(f"""
mlflow:
  enabled: false
  poll_interval_seconds: 600
http:
  port: {port or free_port()}
log_format: json
buckets:
  - bucket: {bucket}
    endpoint_url: {moto_endpoint}
    region: us-east-1
    queue_url: "{queue}"
    wait_time_seconds: 1
""")
    return str(path)


def _env(tmp_path) -> dict[str, str]:
    return {**os.environ, "MLGATE_SIGNING_KEY": SIGNING_KEY.decode(), "MLGATE_HOME": str(tmp_path / "state")}


def test_once_tags_the_bucket_from_the_listing(tmp_path, s3, moto_endpoint, bucket):
    s3.put_object(Bucket=bucket, Key="m/model.safetensors", Body=safetensors_file())
    s3.put_object(Bucket=bucket, Key="m/evil.pkl", Body=evil_pickle("s3-controller-once"))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlgate.controller",
            "controller",
            "--once",
            "--timeout",
            "60",
            "--config",
            _config(tmp_path, moto_endpoint, bucket),
        ],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'mlgate_scans_total{source="s3",verdict="approved"} 1.0' in done.stdout
    assert 'mlgate_scans_total{source="s3",verdict="quarantined"} 1.0' in done.stdout
    assert verdict(s3, bucket, "m/model.safetensors") == "approved"
    assert verdict(s3, bucket, "m/evil.pkl") == "quarantined"


def test_the_running_controller_consumes_bucket_events(tmp_path, s3, sqs, moto_endpoint, bucket):
    queue, _ = notify_to_queue(s3, sqs, bucket, f"events-{bucket}")
    port = free_port()
    controller = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlgate.controller",
            "controller",
            "--config",
            _config(tmp_path, moto_endpoint, bucket, queue, port),
        ],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: _ready(port), timeout=60)  # the first listing is done; the next is 10 minutes away
        s3.put_object(Bucket=bucket, Key="new/model.pkl", Body=evil_pickle("s3-controller-events"))
        wait_for(lambda: verdict(s3, bucket, "new/model.pkl") == "quarantined", timeout=60)
    finally:
        controller.send_signal(signal.SIGTERM)
        try:
            _, err = controller.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            controller.kill()
            _, err = controller.communicate()
    assert controller.returncode == 0, err[-2000:]
    scanned = [json.loads(line) for line in err.splitlines() if '"msg": "scanned"' in line]
    assert [(r["target"], r["reason"], r["verdict"]) for r in scanned] == [("new/model.pkl", "event", "quarantined")]
    consumers = [json.loads(line) for line in err.splitlines() if '"msg": "SQS consumer started"' in line]
    assert [c["url"] for c in consumers] == [queue], "one SQS consumer per queue per replica"


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False
