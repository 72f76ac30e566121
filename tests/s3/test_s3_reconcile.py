"""The listing reconcile alone (no events): verdict tags, quarantine modes, changed content, restarts."""

from __future__ import annotations

import hashlib
import urllib.parse
import uuid

import pytest
from s3_helpers import evil_pickle, hf_config, make_source, reconcile, safetensors_file, tags, verdict

from mlgate.controller.config.buckets import BucketConfig, QuarantineMode

pytestmark = pytest.mark.integration  # a real moto server on loopback

CLEAN_DIR = {"clean/bert/config.json": hf_config(), "clean/bert/model.safetensors": safetensors_file()}
CLEAN_SINGLE = {"clean/single.safetensors": safetensors_file(32)}
EVIL_DIR = {
    "evil/bert/config.json": hf_config(),
    "evil/bert/model.safetensors": safetensors_file(),
    "evil/bert/training_args.bin": evil_pickle("s3-reconcile-dir"),
}
EVIL_SINGLE = {"evil/model.pkl": evil_pickle("s3-reconcile-single")}


def _upload(s3, bucket: str, *layouts: dict[str, bytes]) -> dict[str, str]:
    """Upload; returns key -> ETag."""
    etags = {}
    for layout in layouts:
        for key, body in layout.items():
            etags[key] = s3.put_object(Bucket=bucket, Key=key, Body=body)["ETag"].strip('"')
    return etags


def _digest(root: str, etags: dict[str, str]) -> str:
    """docs/contracts.md §3 digest computed here from scratch: sha256 over sorted "<relative path>\\t<etag>\\n"."""
    lines = sorted(
        f"{key[len(root) :] if root.endswith('/') else key.rpartition('/')[2]}\t{etag}\n" for key, etag in etags.items()
    )
    return "sha256:" + hashlib.sha256("".join(lines).encode()).hexdigest()


def _scanned(runtime) -> list[str]:
    return sorted(r.subject for r in runtime.results)


def test_tags_every_object_of_every_model_from_the_listing(s3, moto_endpoint, bucket):
    etags = _upload(s3, bucket, CLEAN_DIR, CLEAN_SINGLE, EVIL_DIR, EVIL_SINGLE)
    runtime = reconcile(make_source(BucketConfig(bucket=bucket), moto_endpoint))
    assert _scanned(runtime) == ["clean/bert/", "clean/single.safetensors", "evil/bert/", "evil/model.pkl"]

    for key in CLEAN_DIR:
        got = tags(s3, bucket, key)
        assert got["mlgate.verdict"] == "approved"
        assert got["mlgate.digest"] == _digest("clean/bert/", {k: etags[k] for k in CLEAN_DIR})
        assert got["mlgate.signature"] and got["mlgate.scanned_at"].endswith("Z")
    assert verdict(s3, bucket, "clean/single.safetensors") == "approved"
    for key in EVIL_DIR:  # every object of a malicious model, the harmless config too
        got = tags(s3, bucket, key)
        assert got["mlgate.verdict"] == "quarantined"
        assert got["mlgate.digest"] == _digest("evil/bert/", {k: etags[k] for k in EVIL_DIR})
    assert verdict(s3, bucket, "evil/model.pkl") == "quarantined"
    assert s3.get_object(Bucket=bucket, Key="evil/model.pkl")["ContentLength"] > 0  # tag mode: left in place
    assert s3.list_objects_v2(Bucket=bucket, Prefix=".mlgate/")["KeyCount"] == 0  # claims released


def test_a_restarted_controller_rescans_nothing(s3, moto_endpoint, bucket):
    _upload(s3, bucket, CLEAN_DIR, EVIL_SINGLE)
    cfg = BucketConfig(bucket=bucket)
    assert len(reconcile(make_source(cfg, moto_endpoint)).results) == 2
    assert reconcile(make_source(cfg, moto_endpoint)).results == []  # a new process: tags are the state


def test_changed_content_loses_its_approval_in_an_unversioned_bucket(s3, moto_endpoint, bucket):
    etags = _upload(s3, bucket, CLEAN_DIR, CLEAN_SINGLE)
    cfg = BucketConfig(bucket=bucket)
    source = make_source(cfg, moto_endpoint)
    reconcile(source)
    approved = tags(s3, bucket, "clean/single.safetensors")
    assert approved["mlgate.verdict"] == "approved"

    # 1. overwritten with other bytes: S3 drops the tags; the next pass scans the new content
    new_etag = _upload(s3, bucket, {"clean/single.safetensors": safetensors_file(48)})["clean/single.safetensors"]
    # 2. a malicious upload carrying a copy of a valid approval (what an attacker with PutObject can do)
    forged = urllib.parse.urlencode(approved)
    s3.put_object(Bucket=bucket, Key="clean/other.pkl", Body=evil_pickle("s3-forged"), Tagging=forged)
    # 3. a file added to an approved multi-file model changes the model's digest
    added = _upload(s3, bucket, {"clean/bert/extra.pkl": evil_pickle("s3-added")})
    runtime = reconcile(source)
    assert _scanned(runtime) == ["clean/bert/", "clean/other.pkl", "clean/single.safetensors"]
    single = tags(s3, bucket, "clean/single.safetensors")
    assert single["mlgate.verdict"] == "approved"
    assert single["mlgate.digest"] == _digest("", {"clean/single.safetensors": new_etag})
    assert verdict(s3, bucket, "clean/other.pkl") == "quarantined"
    bert = {k: etags[k] for k in CLEAN_DIR} | added
    for key in bert:
        assert tags(s3, bucket, key)["mlgate.verdict"] == "quarantined"
        assert tags(s3, bucket, key)["mlgate.digest"] == _digest("clean/bert/", bert)


def test_a_new_version_has_no_verdict_until_scanned(s3, moto_endpoint, versioned_bucket):
    bucket = versioned_bucket
    first = s3.put_object(Bucket=bucket, Key="m/model.safetensors", Body=safetensors_file())["VersionId"]
    source = make_source(BucketConfig(bucket=bucket), moto_endpoint)
    reconcile(source)
    assert verdict(s3, bucket, "m/model.safetensors", first) == "approved"
    second = s3.put_object(Bucket=bucket, Key="m/model.safetensors", Body=evil_pickle("s3-new-version"))["VersionId"]
    assert verdict(s3, bucket, "m/model.safetensors", second) is None
    reconcile(source)
    assert verdict(s3, bucket, "m/model.safetensors", second) == "quarantined"
    assert verdict(s3, bucket, "m/model.safetensors", first) == "approved"  # tags are per version


def test_move_mode_quarantines_from_the_listing_and_rescans_a_reupload(s3, moto_endpoint, versioned_bucket):
    bucket = versioned_bucket
    quarantine = f"quarantine-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=quarantine)
    _upload(s3, bucket, CLEAN_DIR, EVIL_DIR)
    versions = {k: s3.head_object(Bucket=bucket, Key=k)["VersionId"] for k in EVIL_DIR}
    older = s3.put_object(Bucket=bucket, Key="evil/model.pkl", Body=b"an older version")["VersionId"]
    _upload(s3, bucket, EVIL_SINGLE)
    single_version = s3.head_object(Bucket=bucket, Key="evil/model.pkl")["VersionId"]
    cfg = BucketConfig(
        bucket=bucket, quarantine=QuarantineMode.MOVE, quarantine_bucket=quarantine, quarantine_prefix="q/"
    )
    source = make_source(cfg, moto_endpoint)
    reconcile(source)

    remaining = s3.list_object_versions(Bucket=bucket)
    left = sorted({v["Key"] for v in remaining.get("Versions", []) + remaining.get("DeleteMarkers", [])})
    assert left == sorted(CLEAN_DIR)  # every version of every quarantined key is gone, the older one too
    assert older not in {v["VersionId"] for v in remaining.get("Versions", [])}
    copies = {o["Key"] for o in s3.list_objects_v2(Bucket=quarantine)["Contents"]}
    assert len(copies) == len(EVIL_DIR) + 1
    for key, version in [*versions.items(), ("evil/model.pkl", single_version)]:
        dest = next(c for c in copies if c.startswith(f"q/{bucket}/") and c.endswith("/" + key))
        head = s3.head_object(Bucket=quarantine, Key=dest)
        assert head["Metadata"]["mlgate-source-bucket"] == bucket
        assert urllib.parse.unquote(head["Metadata"]["mlgate-source-key"]) == key
        assert head["Metadata"]["mlgate-source-version"] == version
        assert verdict(s3, quarantine, dest) == "quarantined"
    assert verdict(s3, bucket, "clean/bert/config.json") == "approved"

    # the same malicious bytes uploaded again are scanned and moved again
    _upload(s3, bucket, EVIL_SINGLE)
    assert _scanned(reconcile(source)) == ["evil/model.pkl"]
    assert "evil/model.pkl" not in {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}


def test_move_mode_in_an_unversioned_bucket_to_an_in_bucket_prefix(s3, moto_endpoint, bucket):
    _upload(s3, bucket, EVIL_SINGLE, CLEAN_SINGLE)
    cfg = BucketConfig(bucket=bucket, quarantine=QuarantineMode.MOVE, quarantine_prefix="quarantine/")
    reconcile(make_source(cfg, moto_endpoint))
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert "evil/model.pkl" not in keys and "clean/single.safetensors" in keys
    moved = [k for k in keys if k.startswith(f"quarantine/{bucket}/")]
    assert len(moved) == 1 and moved[0].endswith("/evil/model.pkl")
    assert reconcile(make_source(cfg, moto_endpoint)).results == []  # the quarantine prefix is never scanned


def test_legal_hold_mode_holds_the_quarantined_version(s3, moto_endpoint):
    bucket = f"locked-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    _upload(s3, bucket, EVIL_SINGLE, CLEAN_SINGLE)
    cfg = BucketConfig(bucket=bucket, quarantine=QuarantineMode.LEGAL_HOLD)
    reconcile(make_source(cfg, moto_endpoint))
    evil = s3.head_object(Bucket=bucket, Key="evil/model.pkl")["VersionId"]
    clean = s3.head_object(Bucket=bucket, Key="clean/single.safetensors")["VersionId"]
    assert verdict(s3, bucket, "evil/model.pkl") == "quarantined"
    assert s3.get_object_legal_hold(Bucket=bucket, Key="evil/model.pkl", VersionId=evil)["LegalHold"]["Status"] == "ON"
    assert verdict(s3, bucket, "clean/single.safetensors") == "approved"
    try:
        clean_hold = s3.get_object_legal_hold(Bucket=bucket, Key="clean/single.safetensors", VersionId=clean)[
            "LegalHold"
        ].get("Status", "OFF")
    except s3.exceptions.ClientError:  # real S3: no legal hold configuration on the version
        clean_hold = "OFF"
    assert clean_hold == "OFF"
    try:
        s3.delete_object(Bucket=bucket, Key="evil/model.pkl", VersionId=evil)
        deleted = True
    except s3.exceptions.ClientError:
        deleted = False
    assert not deleted  # the evidence cannot be deleted while held


def test_a_model_whose_base_model_cannot_be_resolved_is_quarantined(s3, moto_endpoint, bucket, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))  # the base model is nowhere
    adapter = {
        "lora/adapter_config.json": b'{"base_model_name_or_path": "acme/never-cached", "peft_type": "LORA"}',
        "lora/adapter_model.safetensors": safetensors_file(),
    }
    _upload(s3, bucket, adapter)
    runtime = reconcile(make_source(BucketConfig(bucket=bucket), moto_endpoint))
    assert [(r.subject, r.verdict) for r in runtime.results] == [("lora/", "quarantined")]
    for key in adapter:  # every file is harmless; the unresolvable dependency is the reason
        assert verdict(s3, bucket, key) == "quarantined"
