"""The text report for people: one line per target, then its findings grouped by severity."""

from __future__ import annotations

from mlgate.analyzers.core.findings import Severity
from mlgate.analyzers.core.policy import Verdict
from mlgate.analyzers.core.report import DependencyReport, TargetReport

_RED, _GREEN, _YELLOW, _BOLD, _DIM, _RESET = "\033[31m", "\033[32m", "\033[33m", "\033[1m", "\033[2m", "\033[0m"
_SEVERITY_COLOUR = {
    Severity.CRITICAL: _RED + _BOLD,
    Severity.HIGH: _RED,
    Severity.MEDIUM: _YELLOW,
    Severity.LOW: "",
    Severity.INFO: _DIM,
}


def render_text(reports: list[TargetReport], colour: bool = False) -> str:
    def paint(text: str, code: str) -> str:
        return f"{code}{text}{_RESET}" if colour and code else text

    lines: list[str] = []
    for report in reports:
        approved = report.verdict is Verdict.APPROVED
        verdict = paint(report.verdict.value.upper().ljust(11), _GREEN if approved else _RED + _BOLD)
        lines.append(f"{verdict} {report.target}  ({_summary(report)})")
        for severity in sorted(Severity, reverse=True):
            group = [f for f in report.findings if f.severity is severity]
            if not group:
                continue
            lines.append(f"  {paint(severity.label, _SEVERITY_COLOUR[severity])}")
            for f in group:
                note = f"  [suppressed: {f.suppressed}]" if f.suppressed else ""
                lines.append(f"    {f.rule}  {f.location}  {f.message}{note}")
        if report.dependencies:
            lines.append("  dependencies")
            lines.extend(_dependency_lines(report.dependencies, indent=4))
    return "\n".join(lines) + "\n"


def _summary(report: TargetReport) -> str:
    counts = report.counts()
    parts = [f"{n} {s.label}" for s, n in sorted(counts.items(), reverse=True) if n]
    found = ", ".join(parts) if parts else "no findings"
    scope = "complete scan" if report.scan_complete else "INCOMPLETE scan"
    return f"{scope}, {found}, {report.duration_s:.2f} s"


def _dependency_lines(deps: list[DependencyReport], indent: int) -> list[str]:
    lines = []
    for dep in deps:
        state = dep.verdict.value if dep.verdict else "unresolved"
        detail = f" -> {dep.resolved_to}" if dep.resolved_to else ""
        reason = f" ({dep.reason})" if dep.reason else ""
        lines.append(f"{' ' * indent}{dep.kind} {dep.ref}: {state}{detail}{reason}")
        active = [f for f in dep.findings if f.suppressed is None]
        if dep.verdict is Verdict.QUARANTINED and active:
            top = max(active, key=lambda f: f.severity)
            more = f" (+{len(active) - 1} more)" if len(active) > 1 else ""
            lines.append(
                f"{' ' * (indent + 2)}because {top.severity.label} {top.rule} at {top.location}: {top.message}{more}"
            )
        lines.extend(_dependency_lines(dep.dependencies, indent + 2))
    return lines
