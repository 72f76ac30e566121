"""The ranged reader against a real moto server: byte-exact, seekable, pinned, counting what it fetches."""

from __future__ import annotations

import io
import os
import random
import zipfile

import pytest
from s3_helpers import client

from mlgate.controller.s3.reader import ReadSession, S3Object, S3ReadError

pytestmark = pytest.mark.integration  # a real moto server on loopback

KiB = 1 << 10
MiB = 1 << 20


def _object(s3, bucket: str, key: str, data: bytes, session: ReadSession | None = None) -> S3Object:
    put = s3.put_object(Bucket=bucket, Key=key, Body=data)
    return S3Object(s3, bucket, key, len(data), put["ETag"], session or ReadSession(block_size=64 * KiB))


def test_random_access_returns_the_objects_bytes(s3, bucket):
    data = os.urandom(3 * MiB + 123)
    obj = _object(s3, bucket, "blob.bin", data)
    local, remote = io.BytesIO(data), obj.open()
    rng = random.Random(5)
    for _ in range(200):
        whence = rng.choice([io.SEEK_SET, io.SEEK_CUR, io.SEEK_END])
        offset = {
            io.SEEK_SET: rng.randrange(0, len(data) + 10),
            io.SEEK_CUR: rng.randrange(-5000, 5000),
            io.SEEK_END: -rng.randrange(0, 300_000),
        }[whence]
        if local.seek(0, io.SEEK_CUR) + offset < 0 and whence == io.SEEK_CUR:
            offset = 0
        assert remote.seek(offset, whence) == local.seek(offset, whence)
        n = rng.choice([1, 7, 4096, 70_000, 300_000])
        assert remote.read(n) == local.read(n)
    assert obj.session.errors == []


def test_sequential_reads_grow_the_fetch_size(s3, bucket):
    data = os.urandom(6 * MiB)
    obj = _object(s3, bucket, "seq.bin", data, ReadSession(block_size=64 * KiB, max_fetch=2 * MiB))
    stream = io.BufferedReader(obj.open(), buffer_size=64 * KiB)
    assert stream.read() == data
    assert obj.session.bytes_fetched == len(data)  # nothing fetched twice
    # 64 KiB doubling to 2 MiB: 64+128+...+2048 KiB covers 4 MiB in 6 GETs, then one more 2 MiB GET
    assert obj.session.requests <= 8


def test_a_zip_directory_costs_a_fraction_of_the_archive(s3, bucket):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        zf.writestr("archive/data/0", bytes(24 * MiB))
        zf.writestr("archive/version", b"3\n")
    data = buf.getvalue()
    obj = _object(s3, bucket, "model.pt", data)
    with zipfile.ZipFile(obj.open()) as zf:
        assert zf.read("archive/data.pkl") == b"\x80\x02}q\x00."
        assert zf.read("archive/version") == b"3\n"
    assert obj.session.bytes_fetched <= 4 * 64 * KiB  # directory at the end + the two small members
    assert obj.session.bytes_fetched < len(data) / 50


def test_reads_stay_on_the_version_first_read(s3, versioned_bucket):
    first = os.urandom(512 * KiB)
    obj = _object(s3, versioned_bucket, "w.bin", first)
    reader = obj.open()
    assert reader.read(10) == first[:10]
    pinned = obj.version_id
    assert pinned
    s3.put_object(Bucket=versioned_bucket, Key="w.bin", Body=os.urandom(512 * KiB))
    reader.seek(400 * KiB)  # not cached yet: fetched now, from the pinned version
    assert reader.read(1000) == first[400 * KiB : 400 * KiB + 1000]
    assert obj.version_id == pinned


def test_an_unversioned_object_replaced_mid_read_is_an_error_not_new_bytes(s3, bucket):
    obj = _object(s3, bucket, "w.bin", os.urandom(512 * KiB))
    reader = obj.open()
    reader.read(10)
    s3.put_object(Bucket=bucket, Key="w.bin", Body=os.urandom(512 * KiB))
    reader.seek(400 * KiB)
    with pytest.raises(S3ReadError) as caught:
        reader.read(1000)
    assert caught.value.kind == "changed"
    assert obj.session.errors and obj.session.errors[0].kind == "changed"


def test_a_deleted_object_is_reported_as_changed(s3, bucket):
    obj = _object(s3, bucket, "gone.bin", b"x" * 1000)
    s3.delete_object(Bucket=bucket, Key="gone.bin")
    with pytest.raises(S3ReadError) as caught:
        obj.open().read(10)
    assert caught.value.kind == "changed"


def test_the_block_cache_stays_within_its_budget(s3, bucket):
    session = ReadSession(block_size=64 * KiB, cache_bytes=256 * KiB)
    obj = _object(s3, bucket, "big.bin", os.urandom(2 * MiB), session)
    reader = obj.open()
    for offset in range(0, 2 * MiB, 100 * KiB):
        reader.seek(offset)
        reader.read(10)
    assert session._cached <= 256 * KiB


def test_access_denied_is_classified(s3, moto_endpoint, bucket):
    import json

    s3.put_object(Bucket=bucket, Key="secret/w.bin", Body=b"x" * 100)
    head = s3.head_object(Bucket=bucket, Key="secret/w.bin")
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
                        "Resource": f"arn:aws:s3:::{bucket}/secret/*",
                    }
                ],
            }
        ),
    )
    try:
        obj = S3Object(client("s3", moto_endpoint), bucket, "secret/w.bin", 100, head["ETag"], ReadSession())
        with pytest.raises(S3ReadError) as caught:
            obj.open().read(10)
        assert caught.value.kind == "denied"
    finally:
        s3.delete_bucket_policy(Bucket=bucket)
