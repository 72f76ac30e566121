"""Single-stream compressors: each decodes to one child artifact that the walker sniffs and recurses into."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zlib

import lz4.frame
import pytest
import zstandard

from archives.builders import TarMember, findings_of, scan, tar_bytes, write
from mlgate.analyzers.archives.streams import GZIP, DecompressedStream
from mlgate.analyzers.archives.zip_and_streams import decompressed_name
from mlgate.analyzers.core.budget import Budgets, BudgetTracker

EVIL_TAR = tar_bytes([TarMember("model_config.yaml", b"a: 1\n"), TarMember("../escape.txt")])

CODECS = {
    "gzip": gzip.compress,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "lzma": lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE),
    "zlib": zlib.compress,
    "zstd": lambda d: zstandard.ZstdCompressor().compress(d),
    "lz4": lz4.frame.compress,
}


@pytest.mark.parametrize(("codec", "filename", "child"), [
    ("gzip", "model.tgz", "model.tar"),
    ("bzip2", "model.tar.bz2", "model.tar"),
    ("xz", "model.tar.xz", "model.tar"),
    ("lzma", "model.tar.lzma", "model.tar"),
    ("zlib", "model.joblib", "<decompressed>"),
    ("zstd", "model.tar.zst", "model.tar"),
    ("lz4", "model.tar.lz4", "model.tar"),
])  # fmt: skip
def test_each_codec_is_decoded_and_walked(tmp_path, codec, filename, child, walked):
    result = scan(write(tmp_path / filename, CODECS[codec](EVIL_TAR)))
    (finding,) = findings_of(result, "MLG-ARC-001")
    assert finding.location == f"{filename}!{child}!../escape.txt"
    assert walked[f"{filename}!{child}!model_config.yaml"] == b"a: 1\n"
    incomplete = {f.rule for f in result.findings if f.incomplete}
    # joblib.load unpickles what its stream holds: a tar there is not what the name promises (MLG-CORE-011).
    expected = {"MLG-CORE-011"} if filename.endswith(".joblib") else {"MLG-CORE-001"}
    assert result.complete or incomplete == expected


def test_concatenated_gzip_members_are_all_read(tmp_path):
    half = len(EVIL_TAR) // 2
    data = gzip.compress(EVIL_TAR[:half]) + gzip.compress(EVIL_TAR[half:])
    result = scan(write(tmp_path / "multi.tar.gz", data))
    assert [f.location for f in findings_of(result, "MLG-ARC-001")] == ["multi.tar.gz!multi.tar!../escape.txt"]


@pytest.mark.parametrize("codec", ["gzip", "xz", "bzip2"])
def test_corrupt_or_truncated_stream_is_incomplete(tmp_path, codec):
    data = CODECS[codec](EVIL_TAR)
    result = scan(write(tmp_path / f"cut.{codec}", data[: len(data) // 2]))
    assert not result.complete
    # a cut gzip trailer announces a nonsense size, which the ratio budget refuses before decoding
    assert {f.rule for f in result.findings} <= {"MLG-CORE-002", "MLG-CORE-003", "MLG-CORE-005"}


@pytest.mark.parametrize(("name", "child"), [
    ("dir/model.pkl.gz", "model.pkl"),
    ("weights.TGZ", "weights.tar"),
    ("model.nemo", "<decompressed>"),
    (".gz", "<decompressed>"),
    ("x.tar.zst", "x.tar"),
])  # fmt: skip
def test_decompressed_child_names(name, child):
    assert decompressed_name(name) == child


def test_backward_seeks_replay_from_checkpoints():
    """A decoded stream seeks anywhere; backward seeks resume from a saved zlib state, not from byte 0."""
    payload = bytes(range(256)) * (24 * 1024)  # 6 MiB
    tracker = BudgetTracker(Budgets())
    stream = DecompressedStream(io.BytesIO(gzip.compress(payload, 1)), GZIP, tracker)
    assert stream.seek(0, io.SEEK_END) == len(payload)
    skipped = tracker.bytes_read
    assert skipped >= len(payload)  # reaching the end decoded (and charged) everything once
    stream.seek(5_000_000)
    assert stream.read(10) == payload[5_000_000:5_000_010]
    assert tracker.bytes_read - skipped < 2 * 1024 * 1024  # resumed at the 4 MiB checkpoint
    stream.seek(3)
    assert stream.read(5) == payload[3:8]


def test_raw_bytes_that_only_look_like_zlib_are_plain_data(tmp_path):
    """Two bytes sniff as zlib; random tensor bytes after them decode to nothing, so no loader reads them as zlib."""
    blob = bytes([0x78, 0x9C]) + bytes((i * 7919 + 13) % 251 for i in range(4096))
    with pytest.raises(zlib.error):
        zlib.decompress(blob)
    result = scan(write(tmp_path / "weights.raw", blob))
    assert result.findings == [] and result.complete
