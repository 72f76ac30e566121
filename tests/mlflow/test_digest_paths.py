"""How each in-place store obtains a file's sha256 for the digest (controller/mlflow/stores.py):
the S3 store's full-object checksum when it has one, else parallel ranged GETs for large objects
(S3 and the ``mlflow-artifacts:`` proxy), one streamed GET for small ones or a proxy ignoring Range.
Every value is checked against hashlib over the same bytes."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from helpers_mlflow import SIGNING_KEY

from mlgate.controller.mlflow import stores
from mlgate.controller.s3.reader import ReadSession, S3ReadError

DATA = os.urandom(3 << 20) + b"tail"  # 3 MiB and a bit: not a multiple of the part size


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> int:
    """256 KiB parts from 1 MiB on, so a 3 MiB object takes the parallel path."""
    monkeypatch.setattr(stores, "PART", 256 << 10)
    monkeypatch.setattr(stores, "PARALLEL_MIN", 1 << 20)
    return 256 << 10


def _http_server(honour_range: bool) -> tuple[ThreadingHTTPServer, list[str | None]]:
    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            wanted = self.headers.get("Range")
            seen.append(wanted)
            body, status = DATA, 200
            if wanted and honour_range:
                first, last = (int(x) for x in wanted.removeprefix("bytes=").split("-"))
                body, status = DATA[first : last + 1], 206
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", '"v1"')
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, seen


@pytest.mark.parametrize("honour_range", [True, False])
def test_proxy_digest(small_parts: int, honour_range: bool) -> None:
    from mlflow.utils.rest_utils import MlflowHostCreds

    server, seen = _http_server(honour_range)
    try:
        counted: list[int] = []
        obj = stores.HttpObject(
            MlflowHostCreds(f"http://127.0.0.1:{server.server_port}"), "/f.bin", len(DATA), ReadSession()
        )
        assert obj.sha256(counted.append) == hashlib.sha256(DATA).hexdigest()
        assert sum(counted) == len(DATA)
        ranged = [r for r in seen if r]
        if honour_range:  # one GET per part, all ranged, covering the object exactly
            assert len(seen) == len(ranged) == -(-len(DATA) // small_parts)
            assert not obj.ranges_ignored
        else:  # the first ranged answer is a 200: one streamed GET follows
            assert obj.ranges_ignored and seen[-1] is None
        assert obj.session.bytes_fetched == 0  # digest bytes are not scan bytes
    finally:
        server.shutdown()


def test_a_failed_part_fails_the_digest() -> None:
    def fetch(start: int, length: int) -> bytes:
        if start >= 4:
            raise S3ReadError("gone", "changed")
        return b"x" * length

    with pytest.raises(S3ReadError):
        stores.ranged_sha256(64, fetch, lambda n: None, part=4, workers=3)


def test_s3_digest_paths(aws_env: dict[str, str], small_parts: int) -> None:
    """A single-part upload with a SHA-256 checksum is not read at all; a plain object and a multipart
    upload (its SHA-256 checksum is composite, not the object's) are hashed by ranged GETs."""
    import boto3
    from mlflow.store.artifact.s3_artifact_repo import S3ArtifactRepository

    s3 = boto3.client("s3")
    bucket = f"digest-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="m/checksummed.bin", Body=DATA, ChecksumAlgorithm="SHA256")
    s3.put_object(Bucket=bucket, Key="m/plain.bin", Body=DATA)
    head = s3.head_object(Bucket=bucket, Key="m/checksummed.bin", ChecksumMode="ENABLED")
    assert base64.b64decode(head["ChecksumSHA256"]).hex() == hashlib.sha256(DATA).hexdigest()
    upload = s3.create_multipart_upload(Bucket=bucket, Key="m/multipart.bin", ChecksumAlgorithm="SHA256")
    half = 5 << 20
    whole = DATA * 3  # 9 MiB: two parts
    parts = []
    for number, body in enumerate((whole[:half], whole[half:]), 1):
        done = s3.upload_part(
            Bucket=bucket,
            Key="m/multipart.bin",
            UploadId=upload["UploadId"],
            PartNumber=number,
            Body=body,
            ChecksumAlgorithm="SHA256",
        )
        parts.append({"ETag": done["ETag"], "PartNumber": number, "ChecksumSHA256": done["ChecksumSHA256"]})
    s3.complete_multipart_upload(
        Bucket=bucket, Key="m/multipart.bin", UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )
    multipart = s3.head_object(Bucket=bucket, Key="m/multipart.bin", ChecksumMode="ENABLED")
    assert "-" in multipart["ETag"]  # moto reports its SHA-256 like a full-object one: the ETag tells
    files = [("checksummed.bin", len(DATA)), ("plain.bin", len(DATA)), ("multipart.bin", len(whole))]
    store = stores.open_store(S3ArtifactRepository(f"s3://{bucket}/m"), files)
    assert store is not None and store.kind == "s3"
    hashes = {a.location: store.content_hash(a) for a in store.artifacts}
    assert hashes == {
        "checksummed.bin": hashlib.sha256(DATA).hexdigest(),
        "plain.bin": hashlib.sha256(DATA).hexdigest(),
        "multipart.bin": hashlib.sha256(whole).hexdigest(),
    }
    assert store.digest_bytes == len(DATA) + len(whole)  # the checksummed object cost nothing
    assert store.session.bytes_fetched == 0


def _lying_object(s3: Any, bucket: str, key: str) -> str:
    """Upload ``DATA`` in one part with a client-supplied SHA-256 of other bytes: moto, like any store that does
    not verify it, stores and reports that checksum (AWS S3 would refuse the upload). Returns the lie (hex)."""
    lie = hashlib.sha256(b"other bytes").digest()
    s3.put_object(
        Bucket=bucket, Key=key, Body=DATA, ChecksumAlgorithm="SHA256", ChecksumSHA256=base64.b64encode(lie).decode()
    )
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert base64.b64decode(head["ChecksumSHA256"]) == lie and "-" not in head["ETag"]  # a single-part checksum
    return lie.hex()


@pytest.mark.parametrize(("trust", "ranged"), [(True, False), (False, False), (False, True)])
def test_store_checksum_is_used_only_when_trusted(
    aws_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    trust: bool,
    ranged: bool,
) -> None:
    """``trust_checksums=False`` hashes the object's bytes even when the store reports a full-object SHA-256
    (in one GET, or in parallel ranges: botocore's own check of a whole-object answer against the reported
    checksum must not stop it), and logs the disagreement. A store that does not verify checksums on upload
    can report any value: trusted, it becomes the digest."""
    if ranged:
        monkeypatch.setattr(stores, "PART", 256 << 10)
        monkeypatch.setattr(stores, "PARALLEL_MIN", 1 << 20)
    import boto3
    from mlflow.store.artifact.s3_artifact_repo import S3ArtifactRepository

    s3 = boto3.client("s3")
    bucket = f"digest-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    lie = _lying_object(s3, bucket, "m/model.bin")
    store = stores.open_store(
        S3ArtifactRepository(f"s3://{bucket}/m"), [("model.bin", len(DATA))], trust_checksums=trust
    )
    assert store is not None
    (artifact,) = store.artifacts
    if trust:
        assert store.content_hash(artifact) == lie and store.digest_bytes == 0
    else:
        with caplog.at_level(logging.WARNING, logger="mlgate.mlflow"):
            assert store.content_hash(artifact) == hashlib.sha256(DATA).hexdigest()
        assert store.digest_bytes == len(DATA)
        assert [r.reason for r in caplog.records if r.msg == "store checksum differs from the content"] == [
            f"the store reports sha256 {lie}, the content's is {hashlib.sha256(DATA).hexdigest()}"
        ]


@pytest.mark.parametrize("setting", ["trust", "recompute"])
def test_store_checksums_setting_reaches_the_digest(
    aws_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    """``mlflow.store_checksums`` (file or ``MLGATE_MLFLOW__STORE_CHECKSUMS``) decides the digest the MLflow
    source computes for a version in S3 (``current_digest``: the same store ``scan`` opens)."""
    import boto3
    from mlflow.store.artifact.s3_artifact_repo import S3ArtifactRepository

    from mlgate.analyzers.core.digest import manifest_digest
    from mlgate.analyzers.core.policy import Policy
    from mlgate.controller.config.settings import StoreChecksums, load_config
    from mlgate.controller.mlflow.source import MLflowSource

    s3 = boto3.client("s3")
    bucket = f"digest-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    lie = _lying_object(s3, bucket, "m/model.bin")
    config_file = tmp_path / "controller.yaml"
    config_file.write_text(f"state_dir: {tmp_path / 'state'}\nmlflow: {{tracking_uri: 'http://127.0.0.1:9'}}\n")
    config = load_config(config_file, environ={"MLGATE_MLFLOW__STORE_CHECKSUMS": setting})
    assert config.mlflow.store_checksums is StoreChecksums(setting)
    source = MLflowSource(config, SIGNING_KEY.encode(), Policy(), client=object())
    repo = S3ArtifactRepository(f"s3://{bucket}/m")
    monkeypatch.setattr(source, "_listing", lambda name, version: (repo, [("model.bin", len(DATA))]))
    expected = lie if setting == "trust" else hashlib.sha256(DATA).hexdigest()
    assert source.current_digest("m", "1") == manifest_digest([("model.bin", expected)])


def test_store_checksums_setting_is_checked(tmp_path: Path) -> None:
    from mlgate.controller.config.interface import ConfigError
    from mlgate.controller.config.settings import StoreChecksums, load_config

    config_file = tmp_path / "controller.yaml"
    config_file.write_text(f"state_dir: {tmp_path}\nmlflow: {{store_checksums: recompute}}\n")
    assert load_config(config_file, environ={}).mlflow.store_checksums is StoreChecksums.RECOMPUTE
    config_file.write_text(f"state_dir: {tmp_path}\n")
    assert load_config(config_file, environ={}).mlflow.store_checksums is StoreChecksums.TRUST  # the default
    config_file.write_text(f"state_dir: {tmp_path}\nmlflow: {{store_checksums: verify}}\n")
    with pytest.raises(ConfigError, match="mlflow.store_checksums: expected one of trust, recompute"):
        load_config(config_file, environ={})
