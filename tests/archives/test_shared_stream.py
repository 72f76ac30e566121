"""One open of an archive for all its members (issue 19): what members read through it is what the
archive holds, whoever opens them and whenever."""

from __future__ import annotations

import io
import os
import zipfile

import pytest

from archives.builders import zip_bytes
from mlgate.analyzers.archives import zip_and_streams
from mlgate.analyzers.core import walker
from mlgate.analyzers.core.artifact import Artifact, SharedStream
from mlgate.analyzers.core.walker import ScanContext, ScanOptions

MEMBERS = [("archive/data.pkl", b"\x80\x02}q\x00."), ("archive/data/0", os.urandom(9000)), ("archive/version", b"3\n")]


def _file(tmp_path, data: bytes) -> Artifact:
    path = tmp_path / "model.pt"
    path.write_bytes(data)
    return Artifact.from_file(str(path), "model.pt")


@pytest.mark.parametrize("backing", ["file", "bytes"])
def test_read_at_and_windows_give_the_archive_bytes(tmp_path, backing) -> None:
    data = os.urandom(20_000)
    artifact = _file(tmp_path, data) if backing == "file" else Artifact.from_bytes(data, "model.pt")
    with SharedStream(artifact) as shared:
        assert shared.read_at(1234, 100) == data[1234:1334]
        assert shared.read_at(19_990, 100) == data[19_990:]  # short at the end
        with shared.window(500, 300) as first, shared.window(10_000, 50) as second:
            assert first.read(10) == data[500:510]
            assert second.read() == data[10_000:10_050]  # interleaved reads each seek their own place
            assert first.read() == data[510:800]
    assert shared.read_at(0, 5) == data[:5]  # closed: reads open the artifact again
    with shared.window(7, 3) as late:
        assert late.read() == data[7:10]


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_every_member_is_sniffed_from_its_own_bytes(tmp_path, compression, monkeypatch) -> None:
    artifact = _file(tmp_path, zip_bytes(MEMBERS, compression))
    heads: dict[str, bytes] = {}
    opened: dict[str, Artifact] = {}
    walk = ScanContext.walk

    def spy(self: ScanContext, member: Artifact) -> None:
        if member.parent is not None:
            heads[member.name] = member.read_head(walker.SNIFF_BYTES)
            opened[member.name] = member
        walk(self, member)

    monkeypatch.setattr(ScanContext, "walk", spy)
    scan = walker.scan_path(tmp_path / "model.pt", ScanOptions(compute_digest=False))
    assert scan.complete and scan.members == 1 + len(MEMBERS)
    assert heads == {name: payload[: walker.SNIFF_BYTES] for name, payload in MEMBERS}
    for name, payload in MEMBERS:  # after the archive's walk: each member opens the archive itself
        assert opened[name].read_head(10**6) == payload
        with opened[name].open() as stream:
            assert stream.read() == payload
    assert artifact.size == (tmp_path / "model.pt").stat().st_size


def test_a_pickle_hidden_under_a_tensor_name_is_still_read(tmp_path) -> None:
    payload = b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03."
    (tmp_path / "model.pt").write_bytes(zip_bytes([*MEMBERS[:2], ("archive/data/1", payload)]))
    scan = walker.scan_path(tmp_path / "model.pt", ScanOptions(compute_digest=False))
    hits = [f for f in scan.findings if "!archive/data/1@" in f.location and f.rule.startswith("MLG-PKL")]
    assert hits and max(f.severity for f in hits) >= walker.Severity.HIGH


def test_zip_module_reexports_stay() -> None:
    assert zip_and_streams.read_zip_entries(io.BytesIO(zip_bytes(MEMBERS)))[0].name == "archive/data.pkl"
