"""Bombs end incomplete (MLG-CORE-002) and early: depth, expansion ratio, member count, total bytes.

Small budgets keep these fast; ``bench/archive_budgets.py`` runs the full-size
files (50 levels, 1 GB member, 100,000 members) under the default budgets.
"""

from __future__ import annotations

import gzip
import struct
import zipfile

from archives.builders import TarMember, findings_of, nested_zips, scan, tar_bytes, write, zip_bytes
from mlgate.analyzers.core.budget import Budgets, MiB
from mlgate.analyzers.core.policy import Policy, Verdict
from mlgate.analyzers.core.walker import ScanOptions
from mlgate.controller.scanning import scan_target

SMALL = Budgets(ratio_floor=1 * MiB, max_members=500, max_bytes=64 * MiB)


def budget_findings(result) -> dict[str, str]:
    """budget name -> location of its MLG-CORE-002 finding."""
    out = {}
    for f in findings_of(result, "MLG-CORE-002"):
        budget = f.message.rsplit("(budget ", 1)[1].rstrip(")")
        out[budget] = f.location
    return out


def test_fifty_levels_of_nesting_stop_at_the_default_depth(tmp_path):
    path = write(tmp_path / "deep.zip", nested_zips(50))
    report = scan_target(path, Policy())
    assert report.verdict is Verdict.QUARANTINED and not report.scan_complete
    (finding,) = findings_of(scan(path), "MLG-CORE-002")
    assert "budget max_depth" in finding.message
    assert finding.location == "deep.zip" + "!inner.zip" * 9  # depth 9 is the first level refused (max 8)


def test_expanding_zip_member_is_refused_before_decoding(tmp_path):
    path = write(
        tmp_path / "bomb.zip", zip_bytes([("ok.txt", b"fine"), ("zeros.bin", b"\0" * (16 * MiB))], zipfile.ZIP_DEFLATED)
    )
    result = scan(path, ScanOptions(budgets=SMALL, compute_digest=False))
    assert budget_findings(result) == {"max_ratio": "bomb.zip!zeros.bin"}
    assert "central-directory entry declares" in findings_of(result, "MLG-CORE-002")[0].message
    assert result.bytes_read < 256 * 1024 and not result.complete
    report = scan_target(path, Policy(budgets=SMALL))
    assert report.verdict is Verdict.QUARANTINED


def test_gzip_bomb_with_honest_trailer_is_refused_before_decoding(tmp_path):
    path = write(tmp_path / "zeros.pkl.gz", gzip.compress(b"\0" * (16 * MiB)))
    result = scan(path, ScanOptions(budgets=SMALL, compute_digest=False))
    assert budget_findings(result) == {"max_ratio": "zeros.pkl.gz"}
    assert result.bytes_read < 64 * 1024


def test_gzip_bomb_with_lying_trailer_stops_while_streaming(tmp_path):
    """The trailer says 4 bytes; the tar reader must skip a 16 MiB member: the ratio check fires mid-stream."""
    data = bytearray(gzip.compress(tar_bytes([TarMember("zeros.bin", b"\0" * (16 * MiB)), TarMember("../after.txt")])))
    data[-4:] = struct.pack("<I", 4)
    result = scan(write(tmp_path / "liar.tar.gz", bytes(data)), ScanOptions(budgets=SMALL, compute_digest=False))
    assert budget_findings(result) == {"max_ratio": "liar.tar.gz!liar.tar"}
    assert result.bytes_read < 2 * MiB  # stopped within a chunk of the 1 MiB floor


def test_member_count_is_refused_from_the_directory(tmp_path):
    path = write(tmp_path / "many.zip", zip_bytes([(f"m{i}.txt", b"") for i in range(2_000)]))
    result = scan(path, ScanOptions(budgets=SMALL, compute_digest=False))
    assert budget_findings(result) == {"max_members": "many.zip"}
    assert result.members == 1  # nothing was walked


def test_member_count_in_tar_stops_the_walk(tmp_path):
    path = write(tmp_path / "many.tar", tar_bytes([TarMember(f"m{i}.txt") for i in range(800)]))
    result = scan(path, ScanOptions(budgets=SMALL, compute_digest=False))
    assert budget_findings(result) == {"max_members": "many.tar"}
    assert result.members == SMALL.max_members  # the walk stopped at the budget, not at the end


def test_total_bytes_budget(tmp_path):
    members = [(f"part{i}.bin", bytes(range(256)) * 4096) for i in range(8)]  # 8 x 1 MiB, incompressible-ish
    path = write(tmp_path / "parts.tar.gz", gzip.compress(tar_bytes([TarMember(n, d) for n, d in members])))
    budgets = Budgets(max_bytes=3 * MiB)
    result = scan(path, ScanOptions(budgets=budgets, compute_digest=False))
    assert "max_bytes" in budget_findings(result) and not result.complete
