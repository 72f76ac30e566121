"""Bytes fetched vs object size when mlgate scans large objects in place on S3 (ranged reads).

Builds two objects on a moto server running in its own process, uploaded with multipart
uploads from generated parts (nothing is written to local disk):

* a 2 GiB PyTorch-style checkpoint: a stored zip (``archive/data.pkl``, ``archive/byteorder``,
  one ``archive/data/<n>`` storage of zeros per tensor (320 by default, about the tensor count of a
  GPT-2-medium or BERT-large checkpoint), ``archive/version``), members 64-byte aligned like
  ``torch.save`` writes them;
* a 1 GiB safetensors file (8 tensors of 128 MiB of zeros).

Then, through ``controller/s3/reader.py``, it measures (1) what the format alone needs: Python's
``zipfile`` listing the directory and reading ``data.pkl``; the safetensors 8-byte length and JSON
header; and (2) a full mlgate scan of the object (``s3_scan.scan_model``: sniffing, every
registered analyzer, the verdict). It prints the bytes actually fetched, the GET count and the
share of the object.

moto answers every ranged GET by reading the whole stored object into memory and slicing it
(``FakeKey.value``), which for a 2 GiB object costs seconds and gigabytes per request. The bench's
moto process therefore serves ranges of large objects straight from moto's own stored file
(``--serve``, a patch of ``FakeKey.value`` inside that process only), so wall times measure mlgate
rather than moto. Bytes fetched are counted on the client side and do not depend on it.

Usage: python3 bench/s3_ranged_reads.py [--zip-gib 2] [--tensors 320] [--safetensors-gib 1]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import boto3
import psutil
from archive_budgets import peak_rss_mib  # bench/ is on sys.path when this script runs
from botocore.config import Config

from mlgate.analyzers.core.policy import Policy
from mlgate.analyzers.core.registry import ANALYZER_MODULES
from mlgate.controller.s3.grouping import S3Model, S3ObjectRef
from mlgate.controller.s3.reader import ReadSession, S3Object
from mlgate.controller.s3.scan import scan_model

MiB = 1 << 20
GiB = 1 << 30
PART = 64 * MiB
Segment = bytes | int  # literal bytes, or a run of that many zero bytes


def torch_like_pickle(storages: list[tuple[str, int]]) -> bytes:
    """``OrderedDict`` of float32 tensors rebuilt from persistent storages, as ``torch.save`` pickles it.

    Written opcode by opcode (protocol 2); nothing here is ever unpickled.
    """

    def text(s: str) -> bytes:
        raw = s.encode()
        return b"X" + struct.pack("<I", len(raw)) + raw

    def integer(n: int) -> bytes:
        return b"J" + struct.pack("<i", n)

    out = [b"\x80\x02", b"ccollections\nOrderedDict\nq\x00)Rq\x01("]
    for i, (name, numel) in enumerate(storages):
        out += [
            text(f"layers.{i}.weight"),
            b"ctorch._utils\n_rebuild_tensor_v2\n(",
            b"(",
            text("storage"),
            b"ctorch\nFloatStorage\n",
            text(name),
            text("cpu"),
            integer(numel),
            b"tQ",
            integer(0),
            b"(",
            integer(numel // 1024),
            integer(1024),
            b"t",  # numel is a multiple of 1024
            b"(",
            integer(1024),
            integer(1),
            b"t",
            b"\x89ccollections\nOrderedDict\n)Rt",
            b"R",
        ]
    out.append(b"u.")
    return b"".join(out)


def zeros_crc(n: int) -> int:
    crc, block = 0, bytes(16 * MiB)
    while n > 0:
        take = min(n, len(block))
        crc = zlib.crc32(block[:take] if take < len(block) else block, crc)
        n -= take
    return crc


def torch_zip(total: int, n_storages: int) -> list[Segment]:
    """Segments of a stored zip laid out like ``torch.save`` (64-byte aligned data)."""
    storage_bytes = (total // n_storages) // 4096 * 4096
    storages = [(str(i), storage_bytes // 4) for i in range(n_storages)]
    members: list[tuple[str, Segment, int]] = [
        ("archive/data.pkl", torch_like_pickle(storages), 0),
        ("archive/byteorder", b"little", 0),
        *[(f"archive/data/{name}", storage_bytes, zeros_crc(storage_bytes)) for name, _ in storages],
        ("archive/version", b"3\n", 0),
    ]
    segments: list[Segment] = []
    central = []
    offset = 0
    for name, body, crc in members:
        raw_name = name.encode()
        size = body if isinstance(body, int) else len(body)
        if isinstance(body, bytes):
            crc = zlib.crc32(body)
        header_len = 30 + len(raw_name) + 4
        pad = -(offset + header_len) % 64
        extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
        local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0, crc, size, size, len(raw_name), len(extra))
        segments += [local + raw_name + extra, body]
        central.append(
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                20,
                20,
                0,
                0,
                0,
                0,
                crc,
                size,
                size,
                len(raw_name),
                0,
                0,
                0,
                0,
                0,
                offset,
            )
            + raw_name
        )
        offset += len(local) + len(raw_name) + len(extra) + size
    directory = b"".join(central)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(directory), offset, 0)
    segments += [directory, end]
    return segments


def safetensors(total: int) -> list[Segment]:
    n = 8
    each = (total // n) // MiB * MiB
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    for i in range(n):
        header[f"layers.{i}.weight"] = {
            "dtype": "F32",
            "shape": [each // 4096, 1024],
            "data_offsets": [i * each, (i + 1) * each],
        }
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return [struct.pack("<Q", len(raw)) + raw, each * n]


def write_sparse(path: Path, segments: list[Segment]) -> None:
    """Write ``segments`` to ``path``, each int a hole of that many bytes (sparse on disk, reads as zeros)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        for segment in segments:
            if isinstance(segment, int):
                out.seek(segment, os.SEEK_CUR)
            else:
                out.write(segment)
        out.truncate(out.tell())


def size_of(segments: list[Segment]) -> int:
    return sum(s if isinstance(s, int) else len(s) for s in segments)


def parts(segments: list[Segment]) -> Iterator[bytes]:
    buf = bytearray()
    for segment in segments:
        if isinstance(segment, bytes):
            buf += segment
        else:
            remaining = segment
            while remaining:
                take = min(remaining, PART - len(buf))
                buf += bytes(take)
                remaining -= take
                if len(buf) == PART:
                    yield bytes(buf)
                    buf = bytearray()
        while len(buf) >= PART:
            yield bytes(buf[:PART])
            del buf[:PART]
    if buf:
        yield bytes(buf)


def upload(s3: object, bucket: str, key: str, segments: list[Segment]) -> str:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    done = []
    for number, body in enumerate(parts(segments), 1):
        etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body)["ETag"]
        done.append({"ETag": etag, "PartNumber": number})
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done})
    return s3.head_object(Bucket=bucket, Key=key)["ETag"]


def format_pass(s3: object, bucket: str, key: str, size: int, etag: str) -> ReadSession:
    """What the format itself needs, read through the ranged reader."""
    session = ReadSession()
    obj = S3Object(s3, bucket, key, size, etag, session)
    if key.endswith(".pt"):
        with zipfile.ZipFile(obj.open()) as zf:
            zf.read("archive/data.pkl")
    else:
        reader = obj.open()
        (n,) = struct.unpack("<Q", reader.read(8))
        json.loads(reader.read(n))
    return session


class _StoredRange:
    """A large object's stored bytes, sliced on demand (what moto's range handling slices)."""

    def __init__(self, key: object) -> None:
        self._key = key

    def __len__(self) -> int:
        return self._key.contentsize  # type: ignore[attr-defined]

    def __getitem__(self, window: slice) -> bytes:
        start, stop, _ = window.indices(len(self))
        with self._key.lock:  # type: ignore[attr-defined]
            buffer = self._key._value_buffer  # type: ignore[attr-defined]
            buffer.seek(start)
            return buffer.read(stop - start)

    def __iter__(self) -> Iterator[bytes]:
        """The whole object in 1 MiB chunks (a GET without ``Range``)."""
        for start in range(0, len(self), MiB):
            yield self[start : start + MiB]


def serve(port: int) -> None:
    """Run moto (S3) with large objects' ranges read from its stored file; until killed."""
    from moto.s3.models import FakeKey
    from moto.server import ThreadedMotoServer

    stored = FakeKey.value

    def value(self: FakeKey) -> object:
        return _StoredRange(self) if self.contentsize > PART else stored.fget(self)

    FakeKey.value = property(value, stored.fset)  # type: ignore[method-assign,assignment]
    ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False).start()
    threading.Event().wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zip-gib", type=float, default=2.0)
    parser.add_argument("--tensors", type=int, default=320, help="storages in the checkpoint")
    parser.add_argument("--safetensors-gib", type=float, default=1.0)
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    watcher = _PeakRss(server.pid)
    watcher.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard"}),
        )
        for _ in range(100):
            try:
                s3.list_buckets()
                break
            except Exception:  # noqa: BLE001 - the server is still starting
                time.sleep(0.1)
        s3.create_bucket(Bucket="bench")
        objects = [
            ("checkpoint.pt", torch_zip(int(args.zip_gib * GiB), args.tensors)),
            ("model.safetensors", safetensors(int(args.safetensors_gib * GiB))),
        ]
        print(f"analyzers registered: {', '.join(m.removeprefix('mlgate.analyzers.') for m in ANALYZER_MODULES)}")
        print(f"{'object':<18} {'size':>14} {'pass':<12} {'fetched':>11} {'share':>8} {'GETs':>5} {'wall':>7}  verdict")
        for key, segments in objects:
            size = size_of(segments)
            started = time.monotonic()
            etag = upload(s3, "bench", key, segments)
            uploaded = time.monotonic() - started
            session = format_pass(s3, "bench", key, size, etag)
            print(
                f"{key:<18} {size:>14,} {'format only':<12} {session.bytes_fetched:>11,} "
                f"{100 * session.bytes_fetched / size:>7.3f}% {session.requests:>5}"
            )
            model = S3Model("bench", key, (S3ObjectRef(key, size, etag.strip('"')),))
            started = time.monotonic()
            scanned = scan_model(s3, model, Policy())
            wall = time.monotonic() - started
            fetched = scanned.session.bytes_fetched
            rules = ",".join(sorted({f.rule for f in scanned.report.findings})) or "no findings"
            print(
                f"{'':<18} {'':>14} {'mlgate scan':<12} {fetched:>11,} {100 * fetched / size:>7.3f}% "
                f"{scanned.session.requests:>5} {wall:>6.2f}s  {scanned.report.verdict.value} ({rules}); "
                f"upload {uploaded:.0f}s"
            )
        print(f"peak RSS: moto server {watcher.peak / MiB:,.0f} MiB, bench process {peak_rss_mib():,.0f} MiB")
    finally:
        watcher.stop.set()
        server.terminate()
        server.wait(10)
    return 0


class _PeakRss(threading.Thread):
    """Samples a process's RSS every 0.2 s and keeps the maximum."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return


if __name__ == "__main__":
    sys.exit(main())
