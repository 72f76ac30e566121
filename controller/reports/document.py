"""The verdict report document: everything a person needs to understand one verdict, as JSON.

``build_document`` wraps the scan report (the DESIGN 3.1 target object, unchanged) with what the
controller knew when it decided: the subject (source, model, version or bucket/root), why the
verdict is what it is, the policy thresholds and budgets, the reviewed exceptions and their state,
and for each active finding the exact ``mlgate exception add`` command that would accept it.
Fields are added, never renamed (``docs/reports.md``).
"""

from __future__ import annotations

import datetime as dt
import glob
import shlex
from dataclasses import asdict
from typing import Any

from mlgate.analyzers.core.policy import Policy, Verdict
from mlgate.analyzers.core.report import DependencyReport, TargetReport, version

DOCUMENT_KIND = "mlgate.verdict-report.v1"


def build_document(
    report: TargetReport,
    subject: dict[str, str],
    policy: Policy,
    exceptions: list[dict[str, object]] | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """The report document for ``report`` about ``subject`` (``source``, ``ref`` and source-specific keys)."""
    stamp = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    target = report.to_dict()
    ref = subject.get("ref", report.target)
    for finding, raw in zip(report.findings, target["findings"], strict=True):  # type: ignore[arg-type]
        if finding.suppressed is None and isinstance(raw, dict):
            raw["accept_with"] = exception_command(ref, finding.rule, finding.location, subject.get("source", ""))
    return {
        "kind": DOCUMENT_KIND,
        "mlgate_version": version(),
        "recorded_at": stamp,
        "subject": dict(subject),
        "verdict": report.verdict.value,
        "why": reasons(report, policy),
        "policy": {
            "quarantine_at": policy.quarantine_at.label,
            "quarantine_incomplete": policy.quarantine_incomplete,
            "quarantine_unresolved": policy.quarantine_unresolved,
            "suppressions": len(policy.suppressions),
        },
        "budgets": asdict(policy.budgets),
        "exceptions": list(exceptions or []),
        "report": target,
    }


def exception_command(ref: str, rule: str, location: str, source: str = "mlflow") -> str:
    """The command that would accept one finding (MLflow versions; S3 models have no exception tags).

    The location is glob-escaped, so the command accepts exactly that location and nothing else.
    """
    if source and source != "mlflow":
        return ""
    return (
        f"mlgate exception add {shlex.quote(ref)} --rule {shlex.quote(rule)} "
        f"--location {shlex.quote(glob.escape(location))} "
        '--reason "..." --reviewer "$USER"'
    )


def reasons(report: TargetReport, policy: Policy) -> list[str]:
    """Why the verdict is what it is, most important first (one line each)."""
    active = [f for f in report.findings if f.suppressed is None]
    out = []
    worst = sorted((f for f in active if f.severity >= policy.quarantine_at), key=lambda f: -f.severity)
    for f in worst[:5]:
        out.append(f"{f.severity.label} finding {f.rule} at {f.location}: {f.message}")
    if len(worst) > 5:
        out.append(f"... and {len(worst) - 5} more finding(s) at or above {policy.quarantine_at.label}")
    if policy.quarantine_incomplete and (not report.scan_complete or any(f.incomplete for f in active)):
        out.append("the scan is incomplete: part of the model was not read (fail closed)")
    for dep in _walk(report.dependencies):
        if dep.resolved and dep.verdict is Verdict.QUARANTINED:
            out.append(f"dependency {dep.ref} is quarantined")
        elif not dep.resolved and policy.quarantine_unresolved:
            out.append(f"dependency {dep.ref} could not be resolved: {dep.reason or 'no reason given'}")
    if report.verdict is Verdict.APPROVED:
        excepted = [f for f in report.findings if (f.suppressed or "").startswith("exception ")]
        base = (
            f"complete scan, no active finding at or above {policy.quarantine_at.label}, "
            "every dependency resolved and approved"
        )
        out = [base] + ([f"{len(excepted)} finding(s) accepted by reviewed exceptions"] if excepted else [])
    return out


def _walk(deps: list[DependencyReport]) -> list[DependencyReport]:
    out = []
    for dep in deps:
        out.append(dep)
        out.extend(_walk(dep.dependencies))
    return out
