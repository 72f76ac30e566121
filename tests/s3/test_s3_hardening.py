"""Issue 17, item 5: the controller never reports a success it did not earn (real moto server).

``mlgate controller --once`` exits 1 while an S3 object has no verdict, names a failing bucket at
once, lists S3 models in its summary; a model folder still being uploaded is not tagged; the
quarantine copy path carries the model's full digest, as docs/s3.md says.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from s3_helpers import (
    MARKER,
    SIGNING_KEY,
    Fault,
    evil_pickle,
    free_port,
    make_source,
    reconcile,
    safetensors_file,
    tags,
    verdict,
)

from mlgate.controller.config.buckets import BucketConfig, QuarantineMode
from mlgate.controller.runtime.interface import ScanRequest, SourceUnavailable

pytestmark = pytest.mark.integration


def _config(tmp_path, endpoint: str, bucket: str, extra: str = "") -> str:
    path = tmp_path / "controller.yaml"
    path.write_text(f"""
mlflow:
  enabled: false
backoff:
  initial_seconds: 0.1
  max_seconds: 0.5
http:
  port: {free_port()}
buckets:
  - bucket: {bucket}
    endpoint_url: {endpoint}
    region: us-east-1
{extra}""")
    return str(path)


def _once(tmp_path, config: str, timeout: float = 60, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "mlgate.controller", "controller", "--once", "--timeout", str(timeout)]
    base = {**os.environ, "MLGATE_SIGNING_KEY": SIGNING_KEY.decode(), "MLGATE_HOME": str(tmp_path / "state")}
    return subprocess.run(
        [*cmd, "--config", config], env={**base, **(env or {})}, capture_output=True, text=True, timeout=timeout + 60
    )


def test_once_exits_1_and_lists_the_object_s3_would_not_let_it_read(tmp_path, s3, proxy, bucket):
    s3.put_object(Bucket=bucket, Key="ok/model.safetensors", Body=safetensors_file())
    s3.put_object(Bucket=bucket, Key="denied/model.pkl", Body=evil_pickle("s3-hardening-denied"))
    proxy.add(
        Fault(lambda m, p: m == "GET" and "denied/model.pkl" in p and "tagging" not in p, 10_000, 403, "AccessDenied")
    )
    done = _once(tmp_path, _config(tmp_path, proxy.url, bucket), timeout=40)
    assert done.returncode == 1, done.stdout + done.stderr[-2000:]
    rows = {tuple(line.split()) for line in done.stdout.splitlines()}
    assert ("BUCKET", "MODEL", "OBJECTS", "VERDICT") in rows
    assert (bucket, "ok/model.safetensors", "1", "approved") in rows
    assert (bucket, "denied/model.pkl", "1", "none") in rows
    assert "1 without a verdict" in done.stdout
    assert verdict(s3, bucket, "denied/model.pkl") is None


def test_once_summary_has_a_row_per_s3_model_and_exits_0_when_all_have_verdicts(tmp_path, s3, moto_endpoint, bucket):
    s3.put_object(Bucket=bucket, Key="m/config.json", Body=b"{}")
    s3.put_object(Bucket=bucket, Key="m/model.safetensors", Body=safetensors_file())
    s3.put_object(Bucket=bucket, Key="single/evil.pkl", Body=evil_pickle("s3-hardening-summary"))
    done = _once(tmp_path, _config(tmp_path, moto_endpoint, bucket, "    settle_seconds: 0\n"))
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {tuple(line.split()) for line in done.stdout.splitlines()}
    assert (bucket, "m/", "2", "approved") in rows
    assert (bucket, "single/evil.pkl", "1", "quarantined") in rows
    assert "0 without a verdict" in done.stdout


@pytest.mark.parametrize("problem", ["missing_bucket", "no_credentials"])
def test_once_names_the_failing_source_at_once(tmp_path, moto_endpoint, problem):
    bucket = "mlgate-no-such-bucket-17"
    env = {}
    if problem == "no_credentials":
        bucket = "mlgate-creds-bucket-17"
        env = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}
    cmd = [sys.executable, "-m", "mlgate.controller", "controller", "--once", "--timeout", "30"]
    base = {**os.environ, "MLGATE_SIGNING_KEY": SIGNING_KEY.decode(), "MLGATE_HOME": str(tmp_path / "state")}
    for key, value in env.items():
        base.pop(key, None) if not value else None
        if value:
            base[key] = value
    started = time.monotonic()
    proc = subprocess.Popen(
        [*cmd, "--config", _config(tmp_path, moto_endpoint, bucket)],
        env=base,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = proc.stderr.readline()
        seen_after = time.monotonic() - started
    finally:
        proc.kill()
        proc.communicate()
    assert "source s3 not ready" in first, first
    assert bucket in first and ("404" in first or "NoSuchBucket" in first or "credentials" in first.lower()), first
    assert "registry" not in first.lower()
    assert seen_after < 20, seen_after  # long before --timeout


def _folder_request(bucket: str) -> ScanRequest:
    return ScanRequest("s3", (bucket, "model/"))


def test_a_model_folder_still_being_uploaded_is_never_tagged(s3, moto_endpoint, bucket):
    cfg = BucketConfig(bucket=bucket, model_markers=(MARKER,), settle_seconds=2.0)
    source = make_source(cfg, moto_endpoint)
    s3.put_object(Bucket=bucket, Key=f"model/{MARKER}", Body=b"# model")
    s3.put_object(Bucket=bucket, Key="model/weights.safetensors", Body=safetensors_file())
    with pytest.raises(SourceUnavailable, match="upload"):
        source.scan(_folder_request(bucket))  # just uploaded: wait for the quiet period
    assert verdict(s3, bucket, "model/weights.safetensors") is None
    time.sleep(1.0)
    s3.put_object(Bucket=bucket, Key="model/extra.pkl", Body=evil_pickle("s3-hardening-upload"))
    with pytest.raises(SourceUnavailable):
        source.scan(_folder_request(bucket))
    assert all(verdict(s3, bucket, f"model/{k}") is None for k in (MARKER, "weights.safetensors", "extra.pkl"))
    time.sleep(2.2)
    reconcile(source)
    assert {verdict(s3, bucket, f"model/{k}") for k in (MARKER, "weights.safetensors", "extra.pkl")} == {"quarantined"}


def test_a_completion_marker_holds_the_scan_until_it_exists(s3, moto_endpoint, bucket):
    cfg = BucketConfig(bucket=bucket, model_markers=(MARKER,), settle_seconds=0, complete_marker="_SUCCESS")
    source = make_source(cfg, moto_endpoint)
    s3.put_object(Bucket=bucket, Key=f"model/{MARKER}", Body=b"# model")
    s3.put_object(Bucket=bucket, Key="model/weights.safetensors", Body=safetensors_file())
    with pytest.raises(SourceUnavailable, match="_SUCCESS"):
        source.scan(_folder_request(bucket))
    assert tags(s3, bucket, "model/weights.safetensors") == {}
    s3.put_object(Bucket=bucket, Key="model/_SUCCESS", Body=b"")
    reconcile(source)
    assert verdict(s3, bucket, "model/weights.safetensors") == "approved"


def test_quarantine_move_destination_carries_the_full_digest(s3, moto_endpoint, bucket):
    s3.put_object(Bucket=bucket, Key="evil/model.pkl", Body=evil_pickle("s3-hardening-move"))
    cfg = BucketConfig(bucket=bucket, quarantine=QuarantineMode.MOVE, quarantine_prefix="quarantine/")
    source = make_source(cfg, moto_endpoint)
    scanned = source.scan(ScanRequest("s3", (bucket, "evil/model.pkl")))
    assert scanned is not None
    digest = scanned.report.digest
    source.record(ScanRequest("s3", (bucket, "evil/model.pkl")), scanned)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    hexdigest = digest.removeprefix("sha256:")
    assert len(hexdigest) == 64
    assert f"quarantine/{bucket}/{hexdigest}/evil/model.pkl" in keys, keys


def test_a_worker_scanning_a_hanging_hdf5_object_ends_at_the_deadline(s3, moto_endpoint, bucket, s3_log):
    """The controller's workers get the same guarantee as ``mlgate scan``: the HDF5 child is killed."""
    from pathlib import Path

    from s3_helpers import factory

    from mlgate.analyzers.core.budget import Budgets
    from mlgate.analyzers.core.policy import Policy
    from mlgate.controller.s3.source import S3Source

    hang = Path(__file__).resolve().parents[1] / "fixtures" / "hardening" / "hang_benign.h5"
    s3.put_object(Bucket=bucket, Key="keras/model.h5", Body=hang.read_bytes())
    policy = Policy(budgets=Budgets(max_native_seconds=2))
    source = S3Source([BucketConfig(bucket=bucket)], policy, SIGNING_KEY, client_factory=factory(moto_endpoint))
    started = time.monotonic()
    runtime = reconcile(source, timeout=60)
    assert time.monotonic() - started < 30
    assert verdict(s3, bucket, "keras/model.h5") == "quarantined"
    assert [r.verdict for r in runtime.results] == ["quarantined"]
    scanned = [r for r in s3_log if r.getMessage() == "scanned"]
    assert scanned and all(getattr(r, "version", None) is None for r in scanned)  # a key is no "version"
    assert all(getattr(r, "model", "") == f"{bucket}/keras/model.h5" for r in scanned)
