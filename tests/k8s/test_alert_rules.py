"""The chart's PrometheusRule, extracted from the rendered manifest and checked and unit-tested with promtool.

Each alert gets a scenario where it must fire (the failure it exists for) and one where it must stay
quiet (the healthy look-alike). promtool comes from Debian's ``prometheus`` package; under CI
(``CI`` set) a missing promtool fails these tests instead of skipping them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from k8s_helpers import find, render_chart

NAMESPACE, RELEASE = "ml-security", "gate"
SERVICE = "gate-mlgate"
SEL = f'namespace="{NAMESPACE}"'


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        message = "promtool is not installed (apt-get install -y --no-install-recommends prometheus)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def rules_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    docs, _ = render_chart({"metrics": {"prometheusRule": {"enabled": True}}}, namespace=NAMESPACE, name=RELEASE)
    rule = find(docs, "PrometheusRule")
    path = tmp_path_factory.mktemp("rules") / "mlgate-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))
    return path


def _rules(rules_file: Path) -> dict[str, dict[str, Any]]:
    groups = yaml.safe_load(rules_file.read_text())["groups"]
    return {r["alert"]: r for g in groups for r in g["rules"]}


def test_promtool_checks_the_rules(promtool: str, rules_file: Path) -> None:
    result = subprocess.run([promtool, "check", "rules", str(rules_file)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 9 rules found" in result.stdout


def test_every_alert_has_severity_and_explanation(rules_file: Path) -> None:
    rules = _rules(rules_file)
    assert set(rules) == {
        "MlgateModelQuarantined",
        "MlgateScanErrors",
        "MlgateSyncStale",
        "MlgateNoLeader",
        "MlgateSplitBrain",
        "MlgateShardsUnowned",
        "MlgateScanBacklogGrowing",
        "MlgateAdmissionDenied",
        "MlgateWebhookDown",
    }
    for rule in rules.values():
        assert rule["labels"]["severity"] in {"critical", "warning"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert SEL in rule["expr"], "alerts must be scoped to the release namespace"


def _series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    rendered = ",".join([SEL] + [f'{k}="{v}"' for k, v in labels.items()])
    return {"series": f"{name}{{{rendered}}}", "values": values}


# alert -> (input series, eval time, expected labels of firing alerts (beyond alertname/severity))
FIRING: dict[str, tuple[list[dict[str, str]], str, list[dict[str, str]]]] = {
    # A quarantined model pages within minutes, per source.
    "MlgateModelQuarantined": (
        [
            _series("mlgate_scans_total", {"source": "mlflow", "verdict": "quarantined"}, "0 0 1 1 1"),
            _series("mlgate_scans_total", {"source": "s3", "verdict": "approved"}, "0+1x5"),
        ],
        "3m",
        [{"source": "mlflow"}],
    ),
    # Half the scans error for 20 minutes.
    "MlgateScanErrors": (
        [
            _series("mlgate_scans_total", {"source": "mlflow", "verdict": "error"}, "0+5x40"),
            _series("mlgate_scans_total", {"source": "mlflow", "verdict": "approved"}, "0+5x40"),
        ],
        "25m",
        [{}],
    ),
    # The last sync happened at t=0 and never again.
    "MlgateSyncStale": (
        [_series("mlgate_last_successful_sync_timestamp_seconds", {"source": "s3"}, "0x40")],
        "25m",
        [{"source": "s3"}],
    ),
    # Both replicas follow, nobody leads.
    "MlgateNoLeader": (
        [_series("mlgate_leader", {"pod": "a"}, "0x10"), _series("mlgate_leader", {"pod": "b"}, "0x10")],
        "7m",
        [{}],
    ),
    # Both replicas believe they lead.
    "MlgateSplitBrain": (
        [_series("mlgate_leader", {"pod": "a"}, "1x10"), _series("mlgate_leader", {"pod": "b"}, "1x10")],
        "5m",
        [{}],
    ),
    # 8 shards, the two replicas own 3 + 3: two shards nobody reconciles.
    "MlgateShardsUnowned": (
        [
            _series("mlgate_shards", {"pod": "a"}, "8x10"),
            _series("mlgate_shards", {"pod": "b"}, "8x10"),
            _series("mlgate_shards_owned", {"pod": "a"}, "3x10"),
            _series("mlgate_shards_owned", {"pod": "b"}, "3x10"),
        ],
        "7m",
        [{}],
    ),
    # The queue grows by 10 a minute for an hour.
    "MlgateScanBacklogGrowing": ([_series("mlgate_queue_depth", {"pod": "a"}, "0+10x60")], "55m", [{}]),
    # Someone tried to serve an unapproved model.
    "MlgateAdmissionDenied": (
        [
            _series("mlgate_admission_requests_total", {"kind": "InferenceService", "allowed": "false"}, "0 1 1 1"),
            _series("mlgate_admission_requests_total", {"kind": "Deployment", "allowed": "true"}, "0+3x3"),
        ],
        "2m",
        [{"kind": "InferenceService"}],
    ),
    # Both webhook replicas are down.
    "MlgateWebhookDown": (
        [
            _series("up", {"service": SERVICE, "endpoint": "admission-metrics", "pod": "a"}, "0x10"),
            _series("up", {"service": SERVICE, "endpoint": "http", "pod": "a"}, "1x10"),
        ],
        "7m",
        [{}],
    ),
}

# alert -> (input series, eval time): the healthy look-alike must not fire.
QUIET: dict[str, tuple[list[dict[str, str]], str]] = {
    "MlgateModelQuarantined": (
        [
            _series("mlgate_scans_total", {"source": "mlflow", "verdict": "approved"}, "0+1x30"),
            _series("mlgate_scans_total", {"source": "mlflow", "verdict": "quarantined"}, "0 1 1x30"),
        ],
        "20m",
    ),  # an old quarantine no longer pages
    "MlgateScanErrors": (
        [
            _series("mlgate_scans_total", {"source": "mlflow", "verdict": "error"}, "0+1x40"),
            _series("mlgate_scans_total", {"source": "mlflow", "verdict": "approved"}, "0+50x40"),
        ],
        "25m",
    ),
    "MlgateSyncStale": ([_series("mlgate_last_successful_sync_timestamp_seconds", {"source": "s3"}, "0+60x40")], "25m"),
    "MlgateNoLeader": (
        [_series("mlgate_leader", {"pod": "a"}, "1x10"), _series("mlgate_leader", {"pod": "b"}, "0x10")],
        "7m",
    ),
    "MlgateSplitBrain": (
        [_series("mlgate_leader", {"pod": "a"}, "1x10"), _series("mlgate_leader", {"pod": "b"}, "0x10")],
        "7m",
    ),
    # A dead pod's 4 shards are unowned for one lease duration, then taken over: no page.
    "MlgateShardsUnowned": (
        [
            _series("mlgate_shards", {"pod": "a"}, "8x10"),
            _series("mlgate_shards_owned", {"pod": "a"}, "4 4 8x8"),
        ],
        "7m",
    ),
    "MlgateScanBacklogGrowing": ([_series("mlgate_queue_depth", {"pod": "a"}, "600-10x60")], "55m"),  # draining
    "MlgateAdmissionDenied": (
        [_series("mlgate_admission_requests_total", {"kind": "InferenceService", "allowed": "true"}, "0+3x10")],
        "5m",
    ),
    "MlgateWebhookDown": (
        [
            _series("up", {"service": SERVICE, "endpoint": "admission-metrics", "pod": "a"}, "0x10"),
            _series("up", {"service": SERVICE, "endpoint": "admission-metrics", "pod": "b"}, "1x10"),
        ],
        "7m",
    ),
}


def _annotations(rule: dict[str, Any], labels: dict[str, str]) -> dict[str, str]:
    """The rule's annotations with ``{{ $labels.x }}`` filled in, as Prometheus will render them."""
    return {k: re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m[1]], v) for k, v in rule["annotations"].items()}


def test_promtool_unit_tests_every_alert(promtool: str, rules_file: Path, tmp_path: Path) -> None:
    rules = _rules(rules_file)
    assert set(FIRING) == set(QUIET) == set(rules)
    tests = []
    for alert, (series, at, expected) in FIRING.items():
        severity = rules[alert]["labels"]["severity"]
        exp = [
            {"exp_labels": {**labels, "severity": severity}, "exp_annotations": _annotations(rules[alert], labels)}
            for labels in expected
        ]
        tests.append(
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [{"eval_time": at, "alertname": alert, "exp_alerts": exp}],
            }
        )
    for alert, (series, at) in QUIET.items():
        tests.append(
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [{"eval_time": at, "alertname": alert, "exp_alerts": []}],
            }
        )
    # "for:" matters: the scan-error alert is still pending 10 minutes in.
    tests.append(
        {
            "interval": "1m",
            "input_series": FIRING["MlgateScanErrors"][0],
            "alert_rule_test": [{"eval_time": "10m", "alertname": "MlgateScanErrors", "exp_alerts": []}],
        }
    )
    # With no leader metric at all (every controller pod gone) the alert still fires.
    tests.append(
        {
            "interval": "1m",
            "input_series": [_series("mlgate_queue_depth", {"pod": "a"}, "0x10")],
            "alert_rule_test": [
                {
                    "eval_time": "7m",
                    "alertname": "MlgateNoLeader",
                    "exp_alerts": [
                        {
                            "exp_labels": {"severity": "critical"},
                            "exp_annotations": _annotations(rules["MlgateNoLeader"], {}),
                        }
                    ],
                }
            ],
        }
    )
    test_file = tmp_path / "mlgate-rules-test.yaml"
    test_file.write_text(
        yaml.safe_dump({"rule_files": [str(rules_file)], "evaluation_interval": "1m", "tests": tests}, sort_keys=False)
    )
    result = subprocess.run([promtool, "test", "rules", str(test_file)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_accepts_our_metrics_exposition(promtool: str) -> None:
    from prometheus_client import generate_latest

    from mlgate.controller.runtime.metrics import ADMISSION_REQUESTS, LEADER, REGISTRY

    ADMISSION_REQUESTS.labels(kind="Model", allowed="false").inc(0)
    LEADER.set(0)
    result = subprocess.run(
        [promtool, "check", "metrics"], input=generate_latest(REGISTRY), capture_output=True, timeout=60
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode()
