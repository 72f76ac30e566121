"""Policy loading (one clear error per mistake) and verdict decisions."""

from __future__ import annotations

import pytest

from mlgate.analyzers.core.findings import Finding, Severity
from mlgate.analyzers.core.policy import Policy, PolicyError, Verdict, load_policy


def _finding(severity: Severity, rule: str = "MLG-TEST-001", location: str = "a.pkl", incomplete: bool = False):
    return Finding(rule, severity, "test", location, "msg", incomplete=incomplete)


def test_default_policy_quarantines_high_and_critical_only():
    policy = Policy()
    assert policy.decide([_finding(Severity.MEDIUM)], True, []) is Verdict.APPROVED
    assert policy.decide([_finding(Severity.HIGH)], True, []) is Verdict.QUARANTINED
    assert policy.decide([_finding(Severity.CRITICAL)], True, []) is Verdict.QUARANTINED


def test_incomplete_scan_is_quarantined_by_default_and_can_be_relaxed(tmp_path):
    assert Policy().decide([], False, []) is Verdict.QUARANTINED
    path = tmp_path / "p.toml"
    path.write_text('[verdict]\nincomplete = "approve"\n')
    assert load_policy(path).decide([], False, []) is Verdict.APPROVED


def test_dependencies_propagate():
    policy = Policy()
    assert policy.decide([], True, [Verdict.APPROVED]) is Verdict.APPROVED
    assert policy.decide([], True, [Verdict.QUARANTINED]) is Verdict.QUARANTINED
    assert policy.decide([], True, [None]) is Verdict.QUARANTINED  # unresolved


def test_threshold_and_suppression_from_file(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(
        '[verdict]\nquarantine_at = "medium"\n\n'
        "[budgets]\nmax_seconds = 5\n\n"
        '[[suppress]]\nrule = "MLG-TEST-001"\npath = "legacy/*"\nreason = "reviewed SEC-1"\n'
    )
    policy = load_policy(path)
    assert policy.quarantine_at is Severity.MEDIUM
    assert policy.budgets.max_seconds == 5
    findings = policy.apply_suppressions(
        [_finding(Severity.CRITICAL, location="legacy/a.pkl"), _finding(Severity.LOW, location="new/a.pkl")]
    )
    assert findings[0].suppressed == "reviewed SEC-1"
    assert findings[1].suppressed is None
    assert policy.decide(findings, True, []) is Verdict.APPROVED
    assert policy.decide([_finding(Severity.MEDIUM, location="new/b.pkl")], True, []) is Verdict.QUARANTINED


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[verdict\n", "not valid TOML"),
        ('[verdict]\nquarantine_at = "hgh"\n', "unknown severity 'hgh'"),
        ('[verdict]\nincomplete = "maybe"\n', 'expected "quarantine" or "approve"'),
        ("[budgets]\nmax_bytes = -1\n", "expected a positive number"),
        ("[budgets]\nmax_bites = 3\n", "unknown key 'max_bites'"),
        ('[[suppress]]\nrule = "MLG-X-001"\n', "reason is required"),
        ("[colour]\n", "unknown key 'colour'"),
    ],
)
def test_bad_policy_files_give_one_clear_line(tmp_path, text, expected):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_missing_policy_file(tmp_path):
    with pytest.raises(PolicyError, match="cannot read policy file"):
        load_policy(tmp_path / "nope.toml")
