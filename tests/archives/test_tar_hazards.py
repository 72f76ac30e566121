"""Tar and NeMo (.nemo) member hazards: consumers extract tars, so escapes are rated as file writes."""

from __future__ import annotations

import gzip
import tarfile

import pytest

from archives.builders import (
    FIXTURES,
    TarMember,
    benign_nemo_members,
    findings_of,
    rules_of,
    scan,
    serious,
    tar_bytes,
    write,
)
from mlgate.analyzers.core.findings import Severity
from mlgate.analyzers.core.policy import Policy, Verdict
from mlgate.controller.scanning import scan_target

WEIGHTS = (FIXTURES / "torch_clean.pt").read_bytes()


def nemo(tmp_path, extra: list[TarMember], name: str = "model.nemo"):
    return write(tmp_path / name, tar_bytes(benign_nemo_members(WEIGHTS) + extra))


@pytest.mark.parametrize(
    ("member", "rule", "severity"),
    [
        (TarMember("../escape.txt"), "MLG-ARC-001", Severity.CRITICAL),
        (TarMember("./sub/../../escape.txt"), "MLG-ARC-001", Severity.CRITICAL),
        (TarMember("..\\backslash.txt"), "MLG-ARC-001", Severity.HIGH),  # literal on POSIX, a climb on Windows
        (TarMember("/tmp/mlgate-canary/abs.txt"), "MLG-ARC-002", Severity.CRITICAL),
        (TarMember("C:\\Windows\\evil.txt"), "MLG-ARC-002", Severity.HIGH),
        (TarMember("pwn", type=tarfile.SYMTYPE, linkname="/etc/passwd"), "MLG-ARC-003", Severity.HIGH),
        (TarMember("up", type=tarfile.SYMTYPE, linkname="../../outside"), "MLG-ARC-003", Severity.HIGH),
        (TarMember("shadow", type=tarfile.LNKTYPE, linkname="/etc/shadow"), "MLG-ARC-003", Severity.HIGH),
        (TarMember("hard", type=tarfile.LNKTYPE, linkname="../x"), "MLG-ARC-003", Severity.HIGH),
        (TarMember("copy.ckpt", type=tarfile.LNKTYPE, linkname="./model_weights.ckpt"), "MLG-ARC-004", Severity.MEDIUM),
        (TarMember("tty", type=tarfile.CHRTYPE), "MLG-ARC-007", Severity.HIGH),
        (TarMember("disk", type=tarfile.BLKTYPE), "MLG-ARC-007", Severity.HIGH),
        (TarMember("pipe", type=tarfile.FIFOTYPE), "MLG-ARC-007", Severity.HIGH),
        (TarMember("setuid_bin", mode=0o4755), "MLG-ARC-008", Severity.LOW),
        (TarMember("open.bin", mode=0o666), "MLG-ARC-008", Severity.LOW),
        (TarMember("~/tilde.txt"), "MLG-ARC-015", Severity.HIGH),
        (TarMember("$HOME/var.txt"), "MLG-ARC-015", Severity.HIGH),
    ],
)
def test_nemo_member_hazards(tmp_path, member, rule, severity):
    result = scan(nemo(tmp_path, [member]))
    assert rules_of(result) == [rule]
    assert findings_of(result, rule)[0].severity == severity


def test_link_chain_escaping_only_through_earlier_links(tmp_path):
    """x/y -> .. is harmless alone, but x/y/z -> .. then lands outside, and a file under it is written there."""
    members = [
        TarMember("x", type=tarfile.DIRTYPE, mode=0o755),
        TarMember("x/y", type=tarfile.SYMTYPE, linkname=".."),
        TarMember("x/y/z", type=tarfile.SYMTYPE, linkname=".."),
        TarMember("x/y/z/evil.txt"),
    ]
    result = scan(write(tmp_path / "chain.tar", tar_bytes(members)))
    by_location = {f.location: f.rule for f in result.findings if f.rule.startswith("MLG-ARC-")}
    assert by_location == {
        "chain.tar!x/y": "MLG-ARC-004",
        "chain.tar!x/y/z": "MLG-ARC-003",
        "chain.tar!x/y/z/evil.txt": "MLG-ARC-005",
    }


def test_file_written_through_a_symlinked_directory_is_critical(tmp_path):
    members = [TarMember("etc", type=tarfile.SYMTYPE, linkname="/etc"), TarMember("etc/cron.d/evil", b"* * * * * id\n")]
    result = scan(write(tmp_path / "through.tar", tar_bytes(members)))
    assert rules_of(result) == ["MLG-ARC-003", "MLG-ARC-005"]
    assert findings_of(result, "MLG-ARC-005")[0].severity == Severity.CRITICAL


def test_in_archive_relative_symlink_is_medium_only(tmp_path):
    members = [
        TarMember("checkpoint-100", type=tarfile.DIRTYPE, mode=0o755),
        TarMember("checkpoint-100/weights.bin", b"\0" * 64),
        TarMember("latest", type=tarfile.SYMTYPE, linkname="checkpoint-100"),
        TarMember("latest/extra.bin", b"\0" * 8),
    ]
    path = write(tmp_path / "run.tar", tar_bytes(members))
    result = scan(path)
    assert rules_of(result) == ["MLG-ARC-004"] and not serious(result)
    assert scan_target(path, Policy()).verdict is Verdict.APPROVED  # medium, complete: below the threshold


def test_duplicate_model_weights_both_walked_last_wins(tmp_path, walked):
    """Published NeMo PoC shape: a benign first copy for inspectors, the last one left on disk."""
    members = [TarMember("./model_weights.ckpt", WEIGHTS), TarMember("./model_weights.ckpt", b"\x80\x02N.")]
    result = scan(nemo(tmp_path, [], name="base.nemo"))
    assert rules_of(result) == []
    result = scan(write(tmp_path / "dup.nemo", tar_bytes(benign_nemo_members(WEIGHTS)[:2] + members)))
    (dup,) = findings_of(result, "MLG-ARC-009")
    assert dup.severity == Severity.HIGH
    assert "leaves the last copy on disk" in dup.message
    assert "(dup.nemo!model_weights.ckpt#2, header at offset" in dup.message
    assert walked["dup.nemo!model_weights.ckpt"].startswith(b"PK\x03\x04")  # inspectors see the torch zip
    assert walked["dup.nemo!model_weights.ckpt#2"] == b"\x80\x02N."  # extraction leaves this one


def test_benign_nemo_has_no_archive_findings_plain_or_gzipped(tmp_path, walked):
    plain = nemo(tmp_path, [])
    result = scan(plain)
    assert rules_of(result) == [] and not serious(result)
    # the YAML config and every checkpoint member are walked (by their own analyzers, once those exist)
    assert {"model.nemo!model_config.yaml", "model.nemo!model_weights.ckpt!archive/data.pkl"} <= set(walked)
    gz = write(tmp_path / "old.nemo", gzip.compress(plain.read_bytes()))
    result = scan(gz)
    assert rules_of(result) == [] and not serious(result)


def test_truncated_tar_is_incomplete(tmp_path):
    data = tar_bytes([TarMember("a.bin", b"a" * 5000), TarMember("b.bin", b"b" * 5000)])
    result = scan(write(tmp_path / "cut.tar", data[:3000]))
    assert not result.complete
    assert {f.rule for f in result.findings} == {"MLG-CORE-003"}


def test_oversized_pax_header_is_refused_not_read(tmp_path):
    data = bytearray(tar_bytes([TarMember("a" * 200, b"x")], fmt=tarfile.PAX_FORMAT))
    # the first header is the PAX extended header: claim a 4 GiB record in its octal size field
    data[124:136] = b"%011o\x00" % (4 << 30)
    data[148:156] = b"        "
    data[148:156] = b"%06o\x00 " % sum(data[:512])
    result = scan(write(tmp_path / "pax.tar", bytes(data)))
    assert not result.complete
    assert result.bytes_read < 1 << 20
