"""7z archives: listed, audited and decoded in memory with py7zr (never extracted to disk)."""

from __future__ import annotations

import io
import os
import struct
import zlib

import py7zr

from archives.builders import TarMember, findings_of, rules_of, scan, tar_bytes, write
from mlgate.analyzers.core.policy import Policy, Verdict
from mlgate.controller.scanning import scan_target


def sevenz(members: list[tuple[str, bytes]], password: str | None = None, header_encryption: bool = False) -> bytes:
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w", password=password, header_encryption=header_encryption) as z:
        z.set_encoded_header_mode(header_encryption)  # a plain header, so names can be patched below
        for name, data in members:
            z.writestr(data, name)
    return buf.getvalue()


def rename(data: bytes, old: str, new: str) -> bytes:
    """Rename a member in a plain 7z header (py7zr refuses to write unsafe names) and fix the CRCs."""
    out = bytearray(data)
    offset, size = struct.unpack("<QQ", out[12:28])
    start = 32 + offset
    header = bytes(out[start : start + size]).replace(old.encode("utf-16-le"), new.encode("utf-16-le"))
    out[start : start + size] = header
    struct.pack_into("<I", out, 28, zlib.crc32(header))
    struct.pack_into("<I", out, 8, zlib.crc32(bytes(out[12:32])))
    return bytes(out)


def test_members_are_decoded_in_memory_and_walked(tmp_path, monkeypatch, walked):
    inner = tar_bytes([TarMember("../escape.txt")])
    path = write(tmp_path / "model.7z", sevenz([("inner.tar", inner), ("notes.txt", b"hello")]))
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    result = scan(path)
    assert [f.location for f in findings_of(result, "MLG-ARC-001")] == ["model.7z!inner.tar!../escape.txt"]
    assert walked["model.7z!notes.txt"] == b"hello"
    assert os.listdir(workdir) == []  # nothing was written to disk


def test_duplicate_members_are_both_walked(tmp_path, walked):
    result = scan(write(tmp_path / "dup.7z", sevenz([("config.json", b'{"a": 1}'), ("config.json", b'{"a": 2}')])))
    assert rules_of(result) == ["MLG-ARC-009"]
    assert (walked["dup.7z!config.json"], walked["dup.7z!config.json#2"]) == (b'{"a": 1}', b'{"a": 2}')


def test_unsafe_names_are_reported(tmp_path):
    data = rename(sevenz([("aa/evil.txt", b"x"), ("ok.txt", b"fine")]), "aa/evil.txt", "../evil.txt")
    result = scan(write(tmp_path / "names.7z", data))
    assert rules_of(result) == ["MLG-ARC-001", "MLG-ARC-013"]  # and py7zr refuses to decode it: incomplete


def test_symlink_member(tmp_path):
    os.symlink("/etc/passwd", tmp_path / "lnk")
    with py7zr.SevenZipFile(tmp_path / "link.7z", "w") as z:
        z.write(tmp_path / "lnk", "weights.bin")
    result = scan(tmp_path / "link.7z")
    assert rules_of(result) == ["MLG-ARC-003"]


def test_password_protected_archives_are_incomplete(tmp_path):
    for name, header_encryption in (("enc.7z", False), ("henc.7z", True)):
        path = write(tmp_path / name, sevenz([("model.pkl", b"\x80\x02N.")], "pw", header_encryption))
        report = scan_target(path, Policy())
        assert [f.rule for f in report.findings] == ["MLG-ARC-012"]
        assert report.verdict is Verdict.QUARANTINED and not report.scan_complete


def test_corrupt_7z_is_incomplete(tmp_path):
    data = sevenz([("a.bin", bytes(range(256)) * 64)])
    result = scan(write(tmp_path / "bad.7z", data[:40] + b"\0" * 200 + data[240:]))
    assert not result.complete
    assert {f.rule for f in result.findings} <= {"MLG-CORE-003", "MLG-CORE-005"}
