"""How each in-place store obtains a file's sha256 for the digest (controller/mlflow/stores.py):
the S3 store's full-object checksum when it has one, else parallel ranged GETs for large objects
(S3 and the ``mlflow-artifacts:`` proxy), one streamed GET for small ones or a proxy ignoring Range.
Every value is checked against hashlib over the same bytes."""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from helpers_mlflow import free_port

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


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def test_s3_digest_paths(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, small_parts: int) -> None:
    """A single-part upload with a SHA-256 checksum is not read at all; a plain object and a multipart
    upload (its SHA-256 checksum is composite, not the object's) are hashed by ranged GETs."""
    import boto3
    from mlflow.store.artifact.s3_artifact_repo import S3ArtifactRepository

    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto_endpoint,
        "MLFLOW_S3_ENDPOINT_URL": moto_endpoint,
    }.items():
        monkeypatch.setenv(key, value)
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
