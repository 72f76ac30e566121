"""S3 failures produced for real (a fault proxy in front of moto, deletes mid-scan, a bucket policy):
retried or reported per model, the loop keeps going, and nothing is ever approved on a failed read."""

from __future__ import annotations

import hashlib
import json
import threading
import time

import pytest
from s3_helpers import (
    FAST_BACKOFF,
    Fault,
    evil_pickle,
    hf_config,
    make_source,
    reconcile,
    reconcile_until,
    safetensors_file,
    tags,
    verdict,
    wait_for,
)

from mlgate.controller.config.buckets import BucketConfig
from mlgate.controller.runtime.engine import Runtime
from mlgate.controller.runtime.metrics import REGISTRY

pytestmark = pytest.mark.integration  # a real moto server on loopback


def _data_get(key: str):
    """Matches GETs of an object's bytes (not its tags, not listings)."""
    return lambda method, path: method == "GET" and path.split("?")[0].endswith("/" + key) and "tagging" not in path


def _tag_writes(proxy, key: str) -> list[int]:
    return [
        i
        for i, (m, p, status) in enumerate(proxy.requests)
        if m == "PUT" and "tagging" in p and p.split("?")[0].endswith("/" + key) and status == 200
    ]


def _failures(proxy, key: str, status: int) -> list[int]:
    return [i for i, (m, p, s) in enumerate(proxy.requests) if s == status and p.split("?")[0].endswith("/" + key)]


def test_throttling_is_retried_and_the_verdict_is_right(s3, proxy, bucket):
    s3.put_object(Bucket=bucket, Key="m/model.safetensors", Body=safetensors_file())
    slow_down = proxy.add(Fault(match=_data_get("m/model.safetensors"), times=2, status=503, code="SlowDown"))
    reconcile(make_source(BucketConfig(bucket=bucket), proxy.url, attempts=3))
    assert slow_down.hits == 2
    assert verdict(s3, bucket, "m/model.safetensors") == "approved"


def test_server_errors_never_approve_and_other_models_proceed(s3, proxy, bucket, s3_log):
    s3.put_object(Bucket=bucket, Key="a/model.safetensors", Body=safetensors_file())
    s3.put_object(Bucket=bucket, Key="b/model.safetensors", Body=safetensors_file(8))
    broken = proxy.add(Fault(match=_data_get("a/model.safetensors"), times=5, status=500, code="InternalError"))
    # two attempts per request: the first scans of a/ fail outright; retries (with backoff, in this pass
    # since the runtime keeps a failed scan's retry, or in the next passes) get through once S3 answers again
    source = make_source(BucketConfig(bucket=bucket), proxy.url, attempts=2)
    reconcile(source)
    assert verdict(s3, bucket, "b/model.safetensors") == "approved"
    reconcile_until(source, lambda: verdict(s3, bucket, "a/model.safetensors") is not None)
    assert broken.hits == 5
    assert verdict(s3, bucket, "a/model.safetensors") == "approved"
    # no verdict was written while reads failed
    assert min(_tag_writes(proxy, "a/model.safetensors")) > max(_failures(proxy, "a/model.safetensors", 500))
    retried = [r for r in s3_log if r.getMessage() == "source unavailable; scan retried later"]
    assert retried and all(getattr(r, "target", "") == "a/model.safetensors" for r in retried)


def test_an_object_deleted_mid_scan_is_not_part_of_the_verdict(s3, proxy, bucket):
    layout = {
        "m/config.json": hf_config(),
        "m/extra.bin": evil_pickle("s3-vanished"),
        "m/model.safetensors": safetensors_file(),
    }
    etags = {k: s3.put_object(Bucket=bucket, Key=k, Body=v)["ETag"].strip('"') for k, v in layout.items()}
    deleted = threading.Event()

    def delete_extra() -> None:
        s3.delete_object(Bucket=bucket, Key="m/extra.bin")
        deleted.set()

    proxy.add(Fault(match=_data_get("m/config.json"), times=1, before=delete_extra))
    source = make_source(BucketConfig(bucket=bucket), proxy.url)
    reconcile_until(source, lambda: verdict(s3, bucket, "m/config.json") is not None)
    assert deleted.is_set()
    assert _failures(proxy, "m/extra.bin", 412) or _failures(proxy, "m/extra.bin", 404)
    remaining = sorted(f"{k[2:]}\t{etags[k]}\n" for k in ("m/config.json", "m/model.safetensors"))
    expected = "sha256:" + hashlib.sha256("".join(remaining).encode()).hexdigest()
    for key in ("m/config.json", "m/model.safetensors"):
        assert tags(s3, bucket, key)["mlgate.digest"] == expected
        assert verdict(s3, bucket, key) == "approved"


def test_access_denied_on_one_prefix_is_reported_per_model(s3, moto_endpoint, bucket):
    s3.put_object(Bucket=bucket, Key="denied/model.safetensors", Body=safetensors_file())
    s3.put_object(Bucket=bucket, Key="open/model.safetensors", Body=safetensors_file())
    s3.put_bucket_policy(
        Bucket=bucket,
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:GetObject",
                        "Resource": f"arn:aws:s3:::{bucket}/denied/*",
                    }
                ],
            }
        ),
    )
    errors = REGISTRY.get_sample_value("mlgate_scans_total", {"source": "s3", "verdict": "error"}) or 0.0
    try:
        runtime = reconcile(make_source(BucketConfig(bucket=bucket), moto_endpoint))
    finally:
        s3.delete_bucket_policy(Bucket=bucket)
    by_model: dict[str, list[str]] = {}
    for result in runtime.results:
        by_model.setdefault(result.subject, []).append(result.verdict)
    assert by_model["open/model.safetensors"] == ["approved"]
    denied = by_model["denied/model.safetensors"]
    assert denied and set(denied) == {"error"}
    assert REGISTRY.get_sample_value("mlgate_scans_total", {"source": "s3", "verdict": "error"}) == errors + len(denied)
    assert verdict(s3, bucket, "denied/model.safetensors") is None


def test_only_the_leader_reconciles(s3, moto_endpoint, bucket):
    s3.put_object(Bucket=bucket, Key="m/model.safetensors", Body=safetensors_file())

    class Flag:
        leading = False

        def is_leader(self) -> bool:
            return self.leading

    flag = Flag()
    runtime = Runtime(
        [make_source(BucketConfig(bucket=bucket), moto_endpoint)],
        FAST_BACKOFF,
        workers=1,
        poll_interval=0.2,
        leadership=flag,
    )
    runtime.start()
    try:
        time.sleep(1.5)
        assert verdict(s3, bucket, "m/model.safetensors") is None
        assert REGISTRY.get_sample_value("mlgate_leader") == 0
        flag.leading = True
        wait_for(lambda: verdict(s3, bucket, "m/model.safetensors") == "approved", timeout=15)
        assert REGISTRY.get_sample_value("mlgate_leader") == 1
    finally:
        runtime.stop()


def test_an_object_replaced_just_before_tagging_does_not_keep_the_approval(s3, proxy, bucket):
    """Unversioned bucket: tags go to whatever holds the key. The scanned (clean) content is replaced by
    a malicious upload right before the verdict is written; the newcomer must not keep "approved"."""
    s3.put_object(Bucket=bucket, Key="m/model.bin", Body=safetensors_file())
    swapped = threading.Event()

    def swap() -> None:
        s3.put_object(Bucket=bucket, Key="m/model.bin", Body=evil_pickle("s3-swapped"))
        swapped.set()

    proxy.add(Fault(match=lambda method, path: method == "PUT" and "m/model.bin?tagging" in path, times=1, before=swap))
    source = make_source(BucketConfig(bucket=bucket), proxy.url)
    reconcile(source)
    assert swapped.is_set()
    assert verdict(s3, bucket, "m/model.bin") != "approved"  # the verdict was taken back off the newcomer
    reconcile_until(source, lambda: verdict(s3, bucket, "m/model.bin") is not None)
    assert verdict(s3, bucket, "m/model.bin") == "quarantined"


def _scanned_bytes() -> float:
    return REGISTRY.get_sample_value("mlgate_scanned_bytes_total", {"source": "s3"}) or 0.0


def test_bytes_fetched_by_a_failed_scan_are_counted(s3, proxy, bucket):
    """The config is read in full, then every read of the weights fails: no verdict, but the bytes count."""
    config = hf_config()
    s3.put_object(Bucket=bucket, Key="m/config.json", Body=config)
    s3.put_object(Bucket=bucket, Key="m/model.safetensors", Body=safetensors_file())
    proxy.add(Fault(match=_data_get("m/model.safetensors"), times=1000, status=500, code="InternalError"))
    source = make_source(BucketConfig(bucket=bucket), proxy.url, attempts=1)
    runtime = Runtime([source], FAST_BACKOFF, workers=1)
    try:
        [request] = source.reconcile_once()
        before = _scanned_bytes()
        runtime.process(request)  # S3 answers 500 for the weights: retried later, nothing recorded
    finally:
        runtime.stop()
    assert verdict(s3, bucket, "m/config.json") is None and verdict(s3, bucket, "m/model.safetensors") is None
    assert _scanned_bytes() - before == len(config)
