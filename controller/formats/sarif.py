"""SARIF 2.1.0 output, accepted by GitHub code scanning.

Each finding becomes a result on the outermost file it sits in (the part of the
location before the first ``!``); the full container path is in the message and
in ``properties.location``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import PurePath

from mlgate.analyzers.core.artifact import LEVEL_SEPARATOR
from mlgate.analyzers.core.findings import CATALOGUE, Finding, Severity
from mlgate.analyzers.core.report import TargetReport, version

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
_SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}


def render_sarif(reports: list[TargetReport], colour: bool = False) -> str:
    used = sorted({f.rule for r in reports for f in r.findings})
    rule_index = {rule_id: i for i, rule_id in enumerate(used)}
    results = [_result(report, f, rule_index) for report in reports for f in report.findings]
    document = {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "mlgate",
                        "version": version(),
                        "rules": [_rule(rule_id) for rule_id in used],
                    }
                },
                "results": results,
                "invocations": [{"executionSuccessful": True}],
            }
        ],
    }
    return json.dumps(document, indent=2) + "\n"


def _rule(rule_id: str) -> dict[str, object]:
    rule = CATALOGUE.get(rule_id)
    title = rule.title if rule else rule_id
    severity = rule.severity if rule else Severity.MEDIUM
    out: dict[str, object] = {
        "id": rule_id,
        "name": rule_id.replace("-", ""),
        "shortDescription": {"text": title},
        "fullDescription": {"text": title},
        "help": {"text": f"{title}. See docs/rules.md in the mlgate distribution for {rule_id}."},
        "defaultConfiguration": {"level": _LEVEL[severity]},
        "properties": {"security-severity": _SECURITY_SEVERITY[severity], "tags": ["security", "ml-model"]},
    }
    if rule and rule.cve:
        out["properties"]["tags"] = ["security", "ml-model", *rule.cve]  # type: ignore[index]
    return out


def _result(report: TargetReport, finding: Finding, rule_index: dict[str, int]) -> dict[str, object]:
    outer = finding.location.split(LEVEL_SEPARATOR, 1)[0].split("@", 1)[0]
    uri = _uri(report.target, outer)
    fingerprint = hashlib.sha256(f"{finding.rule}|{report.target}|{finding.location}".encode()).hexdigest()[:32]
    result: dict[str, object] = {
        "ruleId": finding.rule,
        "ruleIndex": rule_index[finding.rule],
        "level": _LEVEL[finding.severity],
        "message": {"text": f"{finding.message} (at {finding.location})"},
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": uri}}}],
        "partialFingerprints": {"mlgateFinding/v1": fingerprint},
        "properties": {
            "severity": finding.severity.label,
            "location": finding.location,
            "verdict": report.verdict.value,
        },
    }
    if finding.suppressed:
        result["suppressions"] = [{"kind": "external", "justification": finding.suppressed}]
    return result


def _uri(target: str, outer: str) -> str:
    path = PurePath(target)
    if path.name == outer:  # the target is the file itself
        joined = path
    else:
        joined = path / outer
    text = joined.as_posix()
    if joined.is_absolute():
        return "file://" + text
    return text[2:] if text.startswith("./") else text
