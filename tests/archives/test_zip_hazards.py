"""Zip member hazards (docs/rules.md, Archives) on real zipfile-built archives, and the look-alikes
that must stay quiet."""

from __future__ import annotations

import io
import stat
import zipfile

import numpy as np
import pytest

from archives.builders import (
    FIXTURES,
    central_records,
    findings_of,
    rename_local,
    rename_record,
    rules_of,
    scan,
    serious,
    set_flags,
    unix_info,
    with_directory,
    write,
    zip_bytes,
)
from mlgate.analyzers.core.findings import Severity
from mlgate.analyzers.core.policy import Policy, Verdict
from mlgate.controller.scanning import scan_target


@pytest.mark.parametrize(
    ("name", "rule", "severity"),
    [
        ("../../zip_escape.txt", "MLG-ARC-001", Severity.HIGH),
        ("..\\win_escape.txt", "MLG-ARC-001", Severity.HIGH),  # only '..' once '\' is a separator
        ("/abs_zip.txt", "MLG-ARC-002", Severity.HIGH),
        ("C:\\Windows\\evil.txt", "MLG-ARC-002", Severity.HIGH),
        ("\\\\server\\share\\evil.txt", "MLG-ARC-002", Severity.HIGH),
        ("~/tilde.txt", "MLG-ARC-015", Severity.HIGH),
        ("$HOME/var.txt", "MLG-ARC-015", Severity.HIGH),
        ("%APPDATA%/var.txt", "MLG-ARC-015", Severity.HIGH),
        ("ctl\x01name.txt", "MLG-ARC-014", Severity.LOW),
        ("d/" + "n" * 300, "MLG-ARC-014", Severity.LOW),
    ],
)
def test_member_name_hazards(tmp_path, name, rule, severity):
    path = write(tmp_path / "evil.zip", zip_bytes([("ok.txt", b"fine"), (name, b"x")], zipfile.ZIP_DEFLATED))
    result = scan(path)
    assert rules_of(result) == [rule]
    (finding,) = findings_of(result, rule)
    assert finding.severity == severity
    assert finding.location == f"evil.zip!{name}"


def test_zip_symlink_member_is_high_and_names_its_target(tmp_path):
    link = unix_info("weights.bin", stat.S_IFLNK | 0o777)
    path = write(tmp_path / "link.zip", zip_bytes([(link, b"/etc/passwd")]))
    result = scan(path)
    assert rules_of(result) == ["MLG-ARC-006"]
    assert "'/etc/passwd'" in findings_of(result, "MLG-ARC-006")[0].message


def test_zip_special_files_and_modes(tmp_path):
    members = [
        (unix_info("fifo", stat.S_IFIFO | 0o644), b""),
        (unix_info("tool", stat.S_IFREG | 0o4755), b"data"),
        (unix_info("shared.bin", stat.S_IFREG | 0o666), b"data"),
    ]
    result = scan(write(tmp_path / "modes.zip", zip_bytes(members)))
    assert rules_of(result) == ["MLG-ARC-007", "MLG-ARC-008", "MLG-ARC-008"]
    assert "setuid" in findings_of(result, "MLG-ARC-008")[0].message


def test_duplicate_data_pkl_walks_both_copies_and_says_who_reads_which(walked):
    """torch.load reads the first data.pkl (malicious here), zipfile the last (benign): both are scanned."""
    result = scan(FIXTURES / "torch_dup_data_pkl.pt")
    pickles = sorted(loc for loc in walked if loc.endswith(("data.pkl", "data.pkl#2")))
    assert pickles == ["torch_dup_data_pkl.pt!archive/data.pkl", "torch_dup_data_pkl.pt!archive/data.pkl#2"]
    assert b"system" in walked["torch_dup_data_pkl.pt!archive/data.pkl"]  # the copy torch loads
    assert b"_rebuild_tensor_v2" in walked["torch_dup_data_pkl.pt!archive/data.pkl#2"]  # the copy zipfile reads
    (dup,) = findings_of(result, "MLG-ARC-009")
    assert dup.severity == Severity.HIGH
    assert "PyTorch's reader (torch.load) reads the first copy (torch_dup_data_pkl.pt!archive/data.pkl," in dup.message
    assert "zipfile (and Keras) read the last copy (torch_dup_data_pkl.pt!archive/data.pkl#2," in dup.message
    assert Policy().decide(result.findings, result.complete, []) is Verdict.QUARANTINED


@pytest.mark.parametrize(
    ("names", "severity"),
    [
        (["config.json", "Config.json"], Severity.HIGH),  # case fold, a name Keras reads
        (["model_config.yaml", "./model_config.yaml"], Severity.HIGH),  # './' stripping
        (["assets\\vocab.txt", "assets/vocab.txt"], Severity.MEDIUM),  # '\' -> '/'
        (["caf\u00e9.txt", "cafe\u0301.txt"], Severity.MEDIUM),  # NFC vs NFD
        (["notes.txt", "notes.txt"], Severity.MEDIUM),  # exact, not a loader name
    ],
)
def test_duplicate_names_after_normalisation(tmp_path, names, severity):
    path = write(tmp_path / "dups.zip", zip_bytes([(n, b"x") for n in names]))
    result = scan(path)
    assert rules_of(result) == ["MLG-ARC-009"]
    assert findings_of(result, "MLG-ARC-009")[0].severity == severity


def test_local_header_name_differs_from_directory(tmp_path):
    data = zip_bytes([("archive/data.pkl", b"\x80\x02N."), ("archive/version", b"3\n")])
    data = rename_local(data, b"archive/data.pkl", b"archive/../a.pkl")
    result = scan(write(tmp_path / "mismatch.pt", data))
    assert rules_of(result) == ["MLG-ARC-001", "MLG-ARC-010"]
    assert findings_of(result, "MLG-ARC-001")[0].location.endswith("(local header name)")


def test_hidden_member_before_the_directory_is_reported(tmp_path):
    data = zip_bytes([("hidden.pkl", b"\x80\x02N."), ("visible.txt", b"hello")])
    visible = [r.raw for r in central_records(data) if r.name == b"visible.txt"]
    result = scan(write(tmp_path / "hidden.zip", with_directory(data, visible)))
    assert rules_of(result) == ["MLG-ARC-011"]
    assert "precede the first member" in findings_of(result, "MLG-ARC-011")[0].message


def test_concatenated_zips_and_trailing_data(tmp_path):
    first = zip_bytes([("a.txt", b"first archive")])
    second = zip_bytes([("b.txt", b"second archive")])
    result = scan(write(tmp_path / "concat.zip", first + second))
    messages = " ".join(f.message for f in findings_of(result, "MLG-ARC-011"))
    assert "precede the first member" in messages and "more than one end-of-central-directory" in messages
    trailing = scan(write(tmp_path / "trailing.zip", first + b"appended junk"))
    assert rules_of(trailing) == ["MLG-ARC-011"]


def test_overlapping_entries_and_count_mismatch(tmp_path):
    data = zip_bytes([("weights.bin", b"w" * 64)])
    (record,) = central_records(data)
    overlapping = with_directory(data, [record.raw, rename_record(record.raw, b"weights.bak")])
    result = scan(write(tmp_path / "overlap.zip", overlapping))
    assert "MLG-ARC-011" in rules_of(result)
    assert any("share bytes" in f.message for f in findings_of(result, "MLG-ARC-011"))
    miscounted = with_directory(data, [record.raw], count=2)
    assert rules_of(scan(write(tmp_path / "count.zip", miscounted))) == ["MLG-ARC-011"]


def test_encrypted_flag_is_incomplete_but_content_still_scanned(tmp_path):
    """CVE-2025-1945 shape: the flag makes zipfile refuse the member; torch ignores it."""
    inner = zip_bytes([("../escape.txt", b"x")])
    data = set_flags(zip_bytes([("inner.zip", inner)]), b"inner.zip", flags=0x1)
    path = write(tmp_path / "enc.zip", data)
    report = scan_target(path, Policy())
    assert report.verdict is Verdict.QUARANTINED and not report.scan_complete
    rules = sorted(f.rule for f in report.findings)
    assert rules == ["MLG-ARC-001", "MLG-ARC-012"]  # read as PyTorch reads it, and flagged unscannable


def test_unsupported_compression_method_is_incomplete(tmp_path):
    data = set_flags(zip_bytes([("model.bin", b"x" * 100)], zipfile.ZIP_DEFLATED), b"model.bin", method=99)
    result = scan(write(tmp_path / "aes.zip", data))
    assert rules_of(result) == ["MLG-ARC-013"] and not result.complete


def test_truncated_and_corrupt_zips_are_incomplete_never_a_crash(tmp_path):
    text = bytes(range(256)) * 64
    data = zip_bytes([("a.txt", b"hello"), ("weights.bin", text)], zipfile.ZIP_DEFLATED)
    truncated = scan(write(tmp_path / "truncated.zip", data[:-40]))
    assert not truncated.complete
    assert {f.rule for f in truncated.findings} == {"MLG-CORE-003"}
    assert any(f.message.startswith("archives: no zip end-of-central-directory") for f in truncated.findings)
    record = next(r for r in central_records(data) if r.name == b"weights.bin")
    start = record.header_offset + 30 + len(b"weights.bin") + 2
    corrupt = data[:start] + b"\xff" * 16 + data[start + 16 :]
    result = scan(write(tmp_path / "corrupt.zip", corrupt))
    assert not result.complete
    assert {f.rule for f in result.findings} == {"MLG-CORE-005"}
    assert all(f.location == "corrupt.zip!weights.bin" for f in result.findings)


@pytest.mark.parametrize("compression", [zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_compressed_members_are_decoded_and_walked(tmp_path, compression):
    inner = zip_bytes([("../escape.txt", b"x")], compression)
    result = scan(write(tmp_path / "outer.zip", zip_bytes([("nested/inner.zip", inner)], compression)))
    (finding,) = findings_of(result, "MLG-ARC-001")
    assert finding.location == "outer.zip!nested/inner.zip!../escape.txt"


def test_zip64_archive_is_read(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("big/../w.bin", "w", force_zip64=True) as member:
            member.write(b"0" * 1000)
        z.writestr("ok.txt", b"fine")
    assert rules_of(scan(write(tmp_path / "z64.zip", buf.getvalue()))) == ["MLG-ARC-001"]


# --- benign look-alikes ------------------------------------------------------------------------
def test_clean_torch_zip_has_no_archive_findings():
    result = scan(FIXTURES / "torch_clean.pt")
    assert rules_of(result) == [] and not serious(result)


def test_keras_style_zip_with_assets_fat_attributes_and_1980_dates(tmp_path):
    members = []
    for name in [
        "metadata.json",
        "config.json",
        "model.weights.h5",
        "assets/",
        "assets/vocab/tokens.txt",
        "weights..v2.bin",
    ]:
        info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
        info.create_system = 0  # FAT
        info.external_attr = 0x10 if name.endswith("/") else 0x20
        members.append((info, b"" if name.endswith("/") else b"{}"))
    result = scan(write(tmp_path / "model.keras", zip_bytes(members, zipfile.ZIP_DEFLATED)))
    assert rules_of(result) == [] and not serious(result)


def test_npz_of_arrays_is_quiet(tmp_path):
    np.savez_compressed(tmp_path / "arrays.npz", a=np.arange(10), b=np.ones((3, 3)))
    assert rules_of(scan(tmp_path / "arrays.npz")) == []


def test_executable_member_is_reported_once_by_the_walker(tmp_path):
    elf = b"\x7fELF\x02\x01\x01" + b"\0" * 120
    result = scan(write(tmp_path / "model.mar", zip_bytes([("handler.so", elf), ("weights.raw", b"\0" * 16)])))
    assert [(f.rule, f.location) for f in result.findings] == [("MLG-CORE-007", "model.mar!handler.so")]


def test_data_hidden_in_a_directory_entry_is_still_scanned(tmp_path, walked):
    scan(write(tmp_path / "dir.zip", zip_bytes([("assets/", b"\x80\x02N.")])))
    assert walked["dir.zip!assets/"] == b"\x80\x02N."
