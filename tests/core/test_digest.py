"""The content digest: opt-in for the scan, streamed and hashed on threads, equal to the manifest."""

from __future__ import annotations

import hashlib
import os

import pytest

from mlgate.analyzers.core.digest import UNREADABLE, FileHasher, file_sha256, files_manifest_digest
from mlgate.analyzers.core.walker import ScanOptions, scan_path


def _manifest(entries: dict[str, str]) -> str:
    lines = "".join(f"{path}\t{entries[path]}\n" for path in sorted(entries))
    return "sha256:" + hashlib.sha256(lines.encode()).hexdigest()


@pytest.fixture()
def model(tmp_path):
    root = tmp_path / "model"
    (root / "sub").mkdir(parents=True)
    (root / "big.bin").write_bytes(os.urandom((3 << 20) + 17))  # several 1 MiB chunks plus a tail
    (root / "empty.txt").write_bytes(b"")
    (root / "sub" / "notes.md").write_text("# notes\n")
    return root


def _expected(root) -> str:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return _manifest({p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files})


def test_file_sha256_streams_large_and_empty_files(model):
    for path in (model / "big.bin", model / "empty.txt"):
        assert file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_parallel_manifest_equals_serial_hashing(model):
    files = {p.relative_to(model).as_posix(): p for p in model.rglob("*") if p.is_file()}
    assert files_manifest_digest(files) == _expected(model)


def test_hasher_records_unreadable_files(tmp_path):
    with FileHasher({"gone": tmp_path / "missing"}) as hasher:
        assert hasher.result("gone") == UNREADABLE


def test_scan_path_digest_on_by_default_and_off_on_request(model):
    assert scan_path(model).digest == _expected(model)
    off = scan_path(model, ScanOptions(compute_digest=False))
    assert off.digest == ""
    assert off.bytes_read < (3 << 20)  # the analysis does not read the raw bytes it needs no digest of


def test_scan_path_digest_of_one_file(model):
    path = model / "big.bin"
    assert scan_path(path).digest == _manifest({"big.bin": hashlib.sha256(path.read_bytes()).hexdigest()})
