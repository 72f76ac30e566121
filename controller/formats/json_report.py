"""The JSON report: exactly the docs/contracts.md §1 document (fields are added, never renamed)."""

from __future__ import annotations

import json

from mlgate.analyzers.core.report import TargetReport, report_document


def render_json(reports: list[TargetReport], colour: bool = False) -> str:
    return json.dumps(report_document(reports), indent=2) + "\n"
