"""The benign suite: every real-world clean model is approved with no finding at medium or above.

The models under ``tests/fixtures/benign/`` were written by the real libraries (see the builders in this
folder); a gate that quarantines any of them is a gate people switch off. Each model is scanned once per
session through ``mlgate scan --format json``; each test then checks one model.
"""

from __future__ import annotations

import pytest

from .suite import SERIOUS, Outcome, model_folders, name_of, scan

MODELS = model_folders()


@pytest.fixture(scope="session")
def outcomes() -> dict[str, Outcome]:
    return {outcome.name: outcome for outcome in scan(MODELS)}


def describe(outcome: Outcome) -> str:
    lines = [f"{outcome.name}: {outcome.report['verdict']}, scan_complete={outcome.report['scan_complete']}"]
    for finding in outcome.report["findings"]:
        if finding["severity"] in SERIOUS:
            lines.append(f"  {finding['severity']} {finding['rule']} {finding['location']}: {finding['message']}")
    for dep in outcome.report.get("dependencies", []):
        if dep.get("verdict") != "approved":
            lines.append(f"  dependency {dep.get('ref')}: {dep.get('verdict')} {dep.get('reason', '')}")
    return "\n".join(lines)


def test_suite_is_large_enough() -> None:
    assert len(MODELS) >= 60, f"the benign suite has {len(MODELS)} models; it needs at least 60"


@pytest.mark.parametrize("model", MODELS, ids=name_of)
def test_benign_model_is_approved_without_serious_findings(model, outcomes) -> None:
    outcome = outcomes[name_of(model)]
    assert not outcome.false_positive, describe(outcome)
