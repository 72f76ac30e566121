"""Reports: the per-target result of a scan and the JSON contract (docs/contracts.md §1).

The JSON shape is a promise to users: fields may be added, never renamed.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field

from .findings import Finding, Severity
from .policy import Policy, Verdict
from .walker import TargetScan


def version() -> str:
    """The mlgate version (``mlgate.analyzers.__version__``, which packaging reads too)."""
    from .. import __version__

    return __version__


@dataclass
class DependencyReport:
    """One reference a target makes, and what became of it."""

    ref: str
    kind: str
    location: str  # where in the target it was named
    resolved: bool
    verdict: Verdict | None = None
    resolved_to: str = ""  # path, URI or cache location actually scanned
    digest: str = ""
    reason: str = ""  # why it is unresolved, or what else an operator should know
    revision: str | None = None
    field: str = ""
    findings: list[Finding] = dc_field(default_factory=list)  # the dependency's own findings
    dependencies: list[DependencyReport] = dc_field(default_factory=list)  # transitive chain

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "ref": self.ref,
            "kind": self.kind,
            "resolved": self.resolved,
            "verdict": self.verdict.value if self.verdict else None,
            "location": self.location,
        }
        for key in ("field", "revision", "resolved_to", "digest", "reason"):
            value = getattr(self, key)
            if value:
                out[key] = value
        if self.findings:
            out["findings"] = [f.to_dict() for f in self.findings]
        if self.dependencies:
            out["dependencies"] = [d.to_dict() for d in self.dependencies]
        return out


@dataclass
class TargetReport:
    """The verdict on one target, with everything that led to it."""

    target: str
    verdict: Verdict
    scan_complete: bool
    digest: str
    duration_s: float
    findings: list[Finding]
    dependencies: list[DependencyReport] = dc_field(default_factory=list)
    bytes_read: int = 0
    signer: str | None = None  # the trusted signer whose model signature verified (docs/signatures.md)
    signature_file: str | None = None  # the signature file checked, when the model carried one

    def to_dict(self) -> dict[str, object]:
        return {
            "target": self.target,
            "verdict": self.verdict.value,
            "scan_complete": self.scan_complete,
            "digest": self.digest or None,  # null when not computed (mlgate scan without --digest)
            "duration_s": round(self.duration_s, 6),
            "findings": [f.to_dict() for f in self.findings],
            "dependencies": [d.to_dict() for d in self.dependencies],
            "bytes_read": self.bytes_read,
            "signature": {"file": self.signature_file, "signer": self.signer, "verified": self.signer is not None}
            if self.signature_file
            else None,
        }

    def counts(self) -> dict[Severity, int]:
        """Active (unsuppressed) findings per severity."""
        out = {s: 0 for s in Severity}
        for f in self.findings:
            if f.suppressed is None:
                out[f.severity] += 1
        return out


def build_report(scan: TargetScan, policy: Policy, dependencies: list[DependencyReport] | None = None) -> TargetReport:
    """Apply the policy to a walker result (and its resolved dependencies)."""
    deps = dependencies or []
    findings = policy.apply_suppressions(scan.findings)
    verdict = policy.decide(findings, scan.complete, [d.verdict if d.resolved else None for d in deps])
    return TargetReport(
        target=scan.target,
        verdict=verdict,
        scan_complete=scan.complete,
        digest=scan.digest,
        duration_s=scan.duration_s,
        findings=findings,
        dependencies=deps,
        bytes_read=scan.bytes_read,
    )


def report_document(reports: list[TargetReport]) -> dict[str, object]:
    """The top-level JSON document of docs/contracts.md §1."""
    return {"mlgate_version": version(), "targets": [r.to_dict() for r in reports]}
