"""Shared helpers for the pickle-family tests: scanning files and bytes the way users do."""

from __future__ import annotations

from pathlib import Path

from mlgate.analyzers.core.findings import Finding
from mlgate.analyzers.core.policy import Policy, Verdict
from mlgate.analyzers.core.walker import ScanOptions, TargetScan, scan_path
from mlgate.controller.scanning import scan_target

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pickles"
MINE = ("MLG-PKL-", "MLG-PT-", "MLG-NPY-")
"""Rule prefixes this area declares."""


def verdict_of(path: Path) -> tuple[Verdict, list[Finding], bool]:
    """Scan ``path`` with the default policy through the controller's single entry point."""
    report = scan_target(path, Policy())
    return report.verdict, report.findings, report.scan_complete


def scan_bytes(tmp_path: Path, data: bytes, name: str = "model.pkl") -> TargetScan:
    """Write ``data`` to a file and scan it (no digest)."""
    target = tmp_path / name
    target.write_bytes(data)
    return scan_path(target, ScanOptions(compute_digest=False))


def rules(findings: list[Finding], mine: bool = True) -> set[str]:
    """The rule ids of ``findings`` (only this area's when ``mine``)."""
    return {f.rule for f in findings if not mine or f.rule.startswith(MINE)}


def by_rule(findings: list[Finding], rule: str) -> list[Finding]:
    return [f for f in findings if f.rule == rule]
