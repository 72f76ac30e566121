"""Shared helpers for the Keras / SavedModel / ONNX tests: scan a committed fixture."""

from __future__ import annotations

from pathlib import Path

from mlgate.analyzers.core.findings import Finding
from mlgate.analyzers.core.walker import TargetScan, scan_path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "keras_tf"


def scan(*parts: str) -> TargetScan:
    return scan_path(FIXTURES.joinpath(*parts), label=parts[-1])


def by(result: TargetScan, analyzer: str) -> list[Finding]:
    return [f for f in result.findings if f.analyzer == analyzer]


def summary(findings: list[Finding]) -> set[tuple[str, str, str]]:
    return {(f.rule, f.severity.label, f.location) for f in findings}
