"""Helpers shared by the Kubernetes-area tests: signing constants, AdmissionReview builders, paths."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from mlgate.controller.verdicts.signing import sign_verdict

SIGNING_KEY = b"k8s-test-signing-key-0123456789abcdef"
OTHER_KEY = b"not-the-controller-key-0123456789abcdef"
DIGEST = "sha256:" + "ab" * 32
REPO = Path(__file__).resolve().parents[2]
CHART_DIR = REPO / "charts" / "mlgate"


def signed_tags(name: str, version: str, verdict: str, key: bytes = SIGNING_KEY) -> dict[str, str]:
    return {
        "mlgate.verdict": verdict,
        "mlgate.digest": DIGEST,
        "mlgate.signature": sign_verdict(key, name, version, DIGEST, verdict),
    }


# --- AdmissionReview builders ------------------------------------------------------------------

RESOURCES = {
    "InferenceService": ("serving.kserve.io", "v1beta1", "inferenceservices"),
    "TrainedModel": ("serving.kserve.io", "v1alpha1", "trainedmodels"),
    "Model": ("mlops.seldon.io", "v1alpha1", "models"),
    "SeldonDeployment": ("machinelearning.seldon.io", "v1", "seldondeployments"),
    "Deployment": ("apps", "v1", "deployments"),
    "StatefulSet": ("apps", "v1", "statefulsets"),
    "CronJob": ("batch", "v1", "cronjobs"),
}


def workload(
    kind: str,
    spec: dict[str, Any],
    name: str = "fraud",
    annotations: dict[str, str] | None = None,
    namespace: str = "team-a",
) -> dict[str, Any]:
    group, version, _ = RESOURCES[kind]
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": f"{group}/{version}", "kind": kind, "metadata": metadata, "spec": spec}


def admission_review(obj: dict[str, Any], operation: str = "CREATE", old: dict[str, Any] | None = None) -> dict:
    """An AdmissionReview shaped like the one kube-apiserver sends."""
    group, version, resource = RESOURCES[obj["kind"]]
    gvk = {"group": group, "version": version, "kind": obj["kind"]}
    gvr = {"group": group, "version": version, "resource": resource}
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": gvk,
            "resource": gvr,
            "requestKind": gvk,
            "requestResource": gvr,
            "name": obj["metadata"].get("name", ""),
            "namespace": obj["metadata"].get("namespace", ""),
            "operation": operation,
            "userInfo": {"username": "alice@example.com", "groups": ["system:authenticated"]},
            "object": None if operation == "DELETE" else obj,
            "oldObject": old if old is not None else (obj if operation == "DELETE" else None),
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": f"{operation.title()}Options"},
        },
    }


def pod_template(annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": "fraud"}, **({"annotations": annotations} if annotations else {})},
        "spec": {"containers": [{"name": "server", "image": "registry.example/server:1"}]},
    }


# --- Helm rendering ----------------------------------------------------------------------------

FULL_VALUES: dict[str, Any] = {
    "metrics": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "prometheusRule": {"enabled": True, "runbookUrl": "https://runbooks.example.com/mlgate#"},
    },
    "grafana": {"dashboard": {"enabled": True}},
    "mlflow": {
        "existingSecret": "mlflow-credentials",
        "registryUri": "http://mlflow-registry:5000",
        "webhookSecret": {"existingSecret": "mlflow-webhook"},
        "storeChecksums": "recompute",
    },
    "aws": {
        "irsaRoleArn": "arn:aws:iam::123456789012:role/mlgate",
        "existingSecret": "aws-credentials",
        "region": "eu-west-1",
        "endpointUrl": "https://minio.storage.svc:9000",
    },
    "admission": {
        "certManager": {"enabled": True},
        "storageBuckets": {"localMinIO": "models"},
        "unverifiedSchemes": ["pvc"],
        "resolveAliases": True,
        "excludedNamespaces": ["monitoring"],
    },
    "controller": {"config": {"workers": 4, "mlflow": {"poll_interval_seconds": 60}}},
    "scanPolicy": {
        "verdict": {"quarantine_at": "medium"},
        "budgets": {"max_seconds": 300, "max_bytes": 8 * 1024**3, "max_ratio": 50.5},
        "suppress": [{"rule": "MLG-PKL-010", "path": "legacy/*", "reason": "reviewed, SEC-123"}],
    },
    "networkPolicy": {
        "webhookFrom": [{"ipBlock": {"cidr": "10.0.0.0/8"}}],
        "metricsFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
        "controllerFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "mlflow"}}}],
    },
    "replicaCount": 3,
    "image": {"digest": "sha256:" + "0" * 64},
}


def render_chart(
    values: dict[str, Any] | None = None, namespace: str = "mlgate", name: str = "mlgate"
) -> tuple[list[dict[str, Any]], str]:
    """Render charts/mlgate offline; returns (manifests, NOTES.txt)."""
    import helm_python
    import yaml

    with helm_python.Chart.load(CHART_DIR) as chart:
        rendered = chart.render(values or {}, name=name, namespace=namespace, is_install=True)
    docs: list[dict[str, Any]] = []
    notes = ""
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return docs, notes


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]
