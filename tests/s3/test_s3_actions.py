"""Verdict tags within S3's limits, managed multipart copy, preflight checks."""

from __future__ import annotations

import logging
import os
import re
import uuid

import pytest
from boto3.s3.transfer import TransferConfig
from s3_helpers import SIGNING_KEY, evil_pickle, make_source, reconcile, tags

from mlgate.analyzers.core.findings import Finding, Severity
from mlgate.analyzers.core.policy import Verdict
from mlgate.analyzers.core.report import TargetReport
from mlgate.controller.config.buckets import BucketConfig, QuarantineMode
from mlgate.controller.runtime.interface import SourceUnavailable
from mlgate.controller.s3.actions import MAX_TAGS, VerdictWriter, merge_tags, preflight, tag_value, verdict_tags
from mlgate.controller.s3.reader import ReadSession, S3Object

pytestmark = pytest.mark.integration  # a real moto server on loopback

S3_TAG_VALUE = re.compile(r"^[\w\s+\-=.:/@]*$")  # AWS tag pattern: letters, digits, spaces, _ . : / = + - @


def _report(verdict: Verdict) -> TargetReport:
    finding = Finding("MLG-CORE-001", Severity.MEDIUM, "core", "model.pkl", "pickle content is not analyzed")
    return TargetReport(
        target="s3://b/m/",
        verdict=verdict,
        scan_complete=False,
        digest="sha256:" + "ab" * 32,
        duration_s=0.1,
        findings=[finding],
    )


def test_verdict_tag_values_are_acceptable_to_s3():
    ours = verdict_tags(SIGNING_KEY, "b", "m/model.pkl", "0123abcd", _report(Verdict.QUARANTINED))
    assert ours["mlgate.verdict"] == "quarantined"
    assert len(ours) <= MAX_TAGS
    for key, value in ours.items():
        assert len(key) <= 128 and len(value) <= 256
        assert S3_TAG_VALUE.match(value), (key, value)
    assert tag_value("critical=1; top: MLG-PKL-001, MLG-CORE-001") == "critical=1 top: MLG-PKL-001 MLG-CORE-001"
    assert len(tag_value("x" * 1000)) == 256


def test_other_tags_are_kept_while_they_fit():
    ours = {f"mlgate.{i}": "v" for i in range(6)}
    existing = [{"Key": f"team{i}", "Value": str(i)} for i in range(6)] + [{"Key": "mlgate.verdict", "Value": "x"}]
    tag_set, dropped = merge_tags(existing, ours)
    assert len(tag_set) == MAX_TAGS
    assert [t["Key"] for t in tag_set if not t["Key"].startswith("mlgate.")] == ["team0", "team1", "team2", "team3"]
    assert dropped == ["team4", "team5"]
    assert {t["Key"]: t["Value"] for t in tag_set}["mlgate.0"] == "v"  # a stale mlgate tag never survives


def test_user_tags_survive_tagging_on_a_real_object(s3, moto_endpoint, bucket, s3_log):
    user = "&".join(f"owner{i}=team-{i}" for i in range(6))
    s3.put_object(Bucket=bucket, Key="m/model.pkl", Body=evil_pickle("s3-user-tags"), Tagging=user)
    reconcile(make_source(BucketConfig(bucket=bucket), moto_endpoint))
    got = tags(s3, bucket, "m/model.pkl")
    assert got["mlgate.verdict"] == "quarantined"
    assert len(got) == MAX_TAGS
    assert sum(k.startswith("owner") for k in got) == MAX_TAGS - sum(k.startswith("mlgate.") for k in got)
    dropped = [r for r in s3_log if "dropped" in r.getMessage()]
    assert len(dropped) == 1 and dropped[0].levelno == logging.WARNING


def test_large_objects_are_moved_with_a_multipart_copy(s3, moto_endpoint, bucket):
    quarantine = f"quarantine-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=quarantine)
    body = evil_pickle("s3-multipart") + os.urandom(11 << 20)
    etag = s3.put_object(Bucket=bucket, Key="big/model.pkl", Body=body)["ETag"]
    cfg = BucketConfig(bucket=bucket, quarantine=QuarantineMode.MOVE, quarantine_bucket=quarantine)
    small_parts = TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20)
    writer = VerdictWriter(s3, cfg, SIGNING_KEY, copy_config=small_parts)
    obj = S3Object(s3, bucket, "big/model.pkl", len(body), etag, ReadSession())
    report = _report(Verdict.QUARANTINED)
    ours = {obj.key: verdict_tags(SIGNING_KEY, bucket, obj.key, obj.etag, report)}
    writer.quarantine([obj], report.digest, ours)
    dest = writer.destination(bucket, "big/model.pkl", report.digest)
    copied = s3.get_object(Bucket=quarantine, Key=dest)
    assert copied["ETag"].strip('"').endswith("-3")  # three UploadPartCopy parts, not one CopyObject
    assert copied["Body"].read() == body
    assert copied["Metadata"]["mlgate-source-key"] == "big/model.pkl"
    assert tags(s3, quarantine, dest)["mlgate.verdict"] == "quarantined"
    assert s3.list_objects_v2(Bucket=bucket, Prefix="big/")["KeyCount"] == 0


def test_preflight_names_each_problem(s3, bucket):
    legal = BucketConfig(bucket=bucket, quarantine=QuarantineMode.LEGAL_HOLD)
    assert preflight(s3, legal) == [f"bucket {bucket}: quarantine: legal-hold needs Object Lock enabled on the bucket"]
    move = BucketConfig(bucket=bucket, quarantine=QuarantineMode.MOVE, quarantine_bucket="no-such-quarantine-bkt")
    assert preflight(s3, move) == [f"bucket {bucket}: quarantine_bucket no-such-quarantine-bkt cannot be reached (404)"]
    assert preflight(s3, BucketConfig(bucket=bucket)) == []
    assert preflight(s3, BucketConfig(bucket="no-such-watched-bkt")) == [
        "bucket no-such-watched-bkt: cannot be reached (404)"
    ]


def test_a_reconcile_pass_fails_while_the_quarantine_mode_cannot_work(s3, moto_endpoint, bucket):
    s3.put_object(Bucket=bucket, Key="m/model.pkl", Body=evil_pickle("s3-preflight"))
    source = make_source(BucketConfig(bucket=bucket, quarantine=QuarantineMode.LEGAL_HOLD), moto_endpoint)
    with pytest.raises(SourceUnavailable, match="legal-hold needs Object Lock enabled on the bucket"):
        source.reconcile_once()
    assert tags(s3, bucket, "m/model.pkl") == {}
