"""A report document as text for a terminal (``mlgate report``): the same sections as the HTML page."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .html import SEVERITIES


def render_document_text(document: Mapping[str, Any]) -> str:
    report = document.get("report") or {}
    subject = document.get("subject") or {}
    lines = [f"{str(document.get('verdict', '')).upper()}  {subject.get('ref', report.get('target', ''))}"]
    live = document.get("live")
    if live:
        lines.append(f"  registry now: {live.get('state')} {live.get('note', '')}".rstrip())
    lines.append(f"  digest {report.get('digest', '')}; recorded {document.get('recorded_at', '')}")
    lines.append("why")
    lines.extend(f"  {line}" for line in document.get("why") or [])
    findings = report.get("findings") or []
    lines.append("findings" + ("" if findings else ": none"))
    for sev in SEVERITIES:
        group = [f for f in findings if f.get("severity") == sev]
        if group:
            lines.append(f"  {sev}")
        for f in group:
            status = f"  [accepted: {f['suppressed']}]" if f.get("suppressed") else ""
            lines.append(f"    {f.get('rule')}  {f.get('location')}  {f.get('message')}{status}")
            if f.get("accept_with"):
                lines.append(f"      accept after review: {f['accept_with']}")
    exceptions = document.get("exceptions") or []
    if exceptions:
        lines.append("exceptions")
        for e in exceptions:
            lines.append(
                f"  {e.get('id', e.get('tag'))}  {e.get('status')}  {e.get('rule', '')} at {e.get('location', '')}"
                f"  by {e.get('reviewer', '')}: {e.get('reason', '')}"
            )
    deps = report.get("dependencies") or []
    lines.append("dependencies" + ("" if deps else ": none"))
    lines.extend(_deps(deps, 2))
    budgets = document.get("budgets") or {}
    complete = "complete" if report.get("scan_complete") else "INCOMPLETE"
    lines.append(f"scan {complete}, {report.get('duration_s', 0)} s, {report.get('bytes_read', 0)} bytes read")
    if budgets:
        lines.append("budgets " + ", ".join(f"{k}={v}" for k, v in budgets.items()))
    return "\n".join(lines) + "\n"


def _deps(deps: list[Mapping[str, Any]], indent: int) -> list[str]:
    out = []
    for d in deps:
        state = d.get("verdict") or "unresolved"
        to = f" -> {d['resolved_to']}" if d.get("resolved_to") else ""
        why = f" ({d['reason']})" if d.get("reason") else ""
        out.append(f"{' ' * indent}{d.get('kind')} {d.get('ref')}: {state}{to}{why}")
        out.extend(_deps(d.get("dependencies") or [], indent + 2))
    return out
