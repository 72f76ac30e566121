"""Reviewed exceptions and report documents without a registry: signatures, digest binding, decisions, escaping."""

from __future__ import annotations

import fnmatch
import json
import shlex

import pytest

from mlgate.analyzers.core.findings import Finding, Severity
from mlgate.analyzers.core.policy import Policy, Verdict
from mlgate.analyzers.core.report import DependencyReport, TargetReport
from mlgate.controller.reports.document import build_document, exception_command
from mlgate.controller.reports.html import render_report
from mlgate.controller.reports.store import LocalReportStore, ReportUnavailable, encode_document, load, tag_value
from mlgate.controller.verdicts.exceptions import (
    EXCEPTIONS,
    apply_exceptions,
    new_exception,
    read_exceptions,
    revoke,
)
from mlgate.controller.verdicts.gate import promotion_decision
from mlgate.controller.verdicts.tags import VerdictState, build_tags, check_verdict

KEY = b"unit-test-verdict-key-0123456789"
DIGEST = "sha256:" + "ab" * 32


def _report(*findings: Finding, complete: bool = True, deps: list[DependencyReport] | None = None) -> TargetReport:
    policy = Policy()
    deps = deps or []
    verdict = policy.decide(list(findings), complete, [d.verdict if d.resolved else None for d in deps])
    return TargetReport("models:/m/1", verdict, complete, DIGEST, 0.1, list(findings), deps)


CRITICAL = Finding("MLG-PKL-002", Severity.CRITICAL, "pickle", "model.pkl@12", "call to os.system('id')")
HIGH = Finding("MLG-PKL-012", Severity.HIGH, "pickle", "sub/[a].pkl@3", "unknown global acme.build")


def test_exception_states():
    exc = new_exception(KEY, "m", "1", DIGEST, "MLG-PKL-002", "model.pkl@*", "reviewed", "alice")
    tags = {exc.tag: exc.encode()}
    assert [s.status for s in read_exceptions(KEY, "m", "1", DIGEST, tags)] == ["valid"]
    assert [s.status for s in read_exceptions(KEY, "m", "2", DIGEST, tags)] == ["bad-signature"]  # other version
    assert [s.status for s in read_exceptions(KEY, "m", "1", "sha256:" + "cd" * 32, tags)] == ["other-digest"]
    assert [s.status for s in read_exceptions(b"another-key-0123456789", "m", "1", DIGEST, tags)] == ["bad-signature"]
    edited = json.loads(exc.encode()) | {"location": "*"}
    assert [s.status for s in read_exceptions(KEY, "m", "1", DIGEST, {exc.tag: json.dumps(edited)})] == [
        "bad-signature"
    ]
    assert [s.status for s in read_exceptions(KEY, "m", "1", DIGEST, {exc.tag: "not json"})] == ["malformed"]
    assert [s.status for s in read_exceptions(KEY, "m", "1", DIGEST, {"mlgate.exception.other": exc.encode()})] == [
        "malformed"
    ]
    revoked = revoke(KEY, "m", "1", exc, "bob")
    assert [s.status for s in read_exceptions(KEY, "m", "1", DIGEST, {exc.tag: revoked.encode()})] == ["revoked"]


def test_apply_exceptions_accepts_only_matching_findings_of_the_same_digest():
    report = _report(CRITICAL, HIGH)
    assert report.verdict is Verdict.QUARANTINED
    one = new_exception(KEY, "m", "1", DIGEST, "MLG-PKL-002", "model.pkl@*", "reviewed", "alice")
    partly = apply_exceptions(report, [one], Policy(), "mlflow")
    assert partly.verdict is Verdict.QUARANTINED  # the high finding is still active
    assert partly.findings[0].suppressed.startswith(f"exception {one.id} (alice)")
    assert partly.findings[1].suppressed is None

    argv = shlex.split(exception_command("models:/m/1", HIGH.rule, HIGH.location))
    location = argv[argv.index("--location") + 1]
    assert fnmatch.fnmatchcase(HIGH.location, location) and not fnmatch.fnmatchcase("sub/a.pkl@3", location)
    two = new_exception(KEY, "m", "1", DIGEST, HIGH.rule, location, "reviewed", "alice")
    assert apply_exceptions(report, [one, two], Policy(), "mlflow").verdict is Verdict.APPROVED

    other = new_exception(KEY, "m", "1", "sha256:" + "cd" * 32, "MLG-PKL-002", "*", "old content", "alice")
    assert apply_exceptions(_report(CRITICAL), [other], Policy(), "mlflow").verdict is Verdict.QUARANTINED
    incomplete = _report(CRITICAL, complete=False)
    assert apply_exceptions(incomplete, [one], Policy(), "mlflow").verdict is Verdict.QUARANTINED
    bad_dep = DependencyReport("acme/base", "hf", "config.json", True, Verdict.QUARANTINED)
    with_dep = _report(CRITICAL, deps=[bad_dep])
    assert apply_exceptions(with_dep, [one], Policy(), "mlflow").verdict is Verdict.QUARANTINED


def test_verdict_signature_covers_the_exception_list_and_the_gate_rechecks_them():
    exc = new_exception(KEY, "m", "1", DIGEST, "MLG-PKL-002", "*", "reviewed", "alice")
    report = apply_exceptions(_report(CRITICAL), [exc], Policy(), "mlflow")
    tags = build_tags(KEY, "m", "1", report, exceptions=(exc.id,)) | {exc.tag: exc.encode()}
    assert tags[EXCEPTIONS] == exc.id
    check = check_verdict(KEY, "m", "1", tags)
    assert check.state is VerdictState.APPROVED and check.signed.exceptions == (exc.id,)
    decision = promotion_decision(KEY, "m", "1", tags)
    assert decision.allowed and exc.id in decision.message

    assert check_verdict(KEY, "m", "1", {k: v for k, v in tags.items() if k != EXCEPTIONS}).state is (
        VerdictState.UNSIGNED
    )
    assert check_verdict(KEY, "m", "1", tags | {EXCEPTIONS: exc.id + ",feedbeef"}).state is VerdictState.UNSIGNED
    gone = {k: v for k, v in tags.items() if k != exc.tag}
    assert not promotion_decision(KEY, "m", "1", gone).allowed
    revoked = tags | {exc.tag: revoke(KEY, "m", "1", exc, "bob").encode()}
    refused = promotion_decision(KEY, "m", "1", revoked)
    assert not refused.allowed and "revoked" in refused.message


def test_report_page_escapes_everything_from_the_model(tmp_path):
    evil = "<script>alert(1)</script>"
    finding = Finding("MLG-PKL-002", Severity.CRITICAL, "pickle", f"{evil}.pkl@1", f"call to os.system('{evil}')")
    dep = DependencyReport(f"{evil}/base", "hf", f"{evil}.json", False, reason=f"no {evil}")
    document = build_document(_report(finding, deps=[dep]), {"source": "mlflow", "ref": f"models:/{evil}/1"}, Policy())
    exc = new_exception(KEY, "m", "1", DIGEST, "MLG-PKL-002", "*", f"reason {evil}", f"reviewer {evil}")
    document["exceptions"] = [s.to_dict() for s in read_exceptions(KEY, "m", "1", DIGEST, {exc.tag: exc.encode()})]
    page = render_report(document, "/reports", "?format=json")
    assert f"<code>{exc.id}</code>" in page
    assert "<script" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 7
    assert document["why"][0].startswith("critical finding MLG-PKL-002")
    assert any("could not be resolved" in line for line in document["why"])

    store = LocalReportStore(tmp_path / "reports")
    data = encode_document(document)
    location = store.put("mlflow/m/1/report.json", data)
    assert load([store], tag_value(location, data))["verdict"] == "quarantined"
    (tmp_path / "reports" / "mlflow/m/1/report.json").write_bytes(data.replace(b"quarantined", b"approved"))
    with pytest.raises(ReportUnavailable, match="does not match the hash"):
        load([store], tag_value(location, data))
    with pytest.raises(ReportUnavailable, match="outside the report folder"):
        store.get("file:/etc/passwd")


def test_terminal_report_has_the_page_sections():
    from mlgate.controller.reports.text import render_document_text

    dep = DependencyReport("models:/base/1", "mlflow", "adapter_config.json", True, Verdict.QUARANTINED)
    document = build_document(_report(CRITICAL, deps=[dep]), {"source": "mlflow", "ref": "models:/m/1"}, Policy())
    text = render_document_text(document | {"live": {"state": "quarantined", "note": "(verified)"}})
    lines = text.splitlines()
    assert lines[0] == "QUARANTINED  models:/m/1"
    assert f"    {CRITICAL.rule}  {CRITICAL.location}  {CRITICAL.message}" in lines
    assert any(line.strip().startswith("accept after review: mlgate exception add models:/m/1") for line in lines)
    assert "  mlflow models:/base/1: quarantined" in lines
    assert "  dependency models:/base/1 is quarantined" in lines
