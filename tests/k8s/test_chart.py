"""The Helm chart, rendered offline with helm-python-sdk and validated with kubernetes-validate (strict).

Supported Kubernetes range: Chart.yaml kubeVersion (>=1.30, the first release where webhook
matchConditions are GA) up to the newest version kubernetes-validate ships schemas for.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import socket
import ssl
from pathlib import Path

import helm_python
import kubernetes_validate
import pytest
import yaml
from cryptography import x509
from k8s_helpers import CHART_DIR, FULL_VALUES, find, render_chart

from mlgate.analyzers.core.policy import load_policy
from mlgate.controller.admission.model_refs import MODEL_ANNOTATION, POD_TEMPLATE_PATHS
from mlgate.controller.admission.review import load_admission_policy
from mlgate.controller.admission.server import VALIDATE_PATH, AdmissionWebhook, serve

OLDEST = "1.30.0"
NEWEST = kubernetes_validate.utils.latest_version()  # 1.37.0 with kubernetes-validate 1.37
CRD_KINDS = {"PrometheusRule", "ServiceMonitor", "Issuer", "Certificate"}  # no schema bundled: checked below


@pytest.fixture(scope="module")
def default() -> tuple[list[dict], str]:
    return render_chart()


@pytest.fixture(scope="module")
def full() -> tuple[list[dict], str]:
    return render_chart(FULL_VALUES, namespace="ml-security", name="gate")


def test_supported_versions_are_the_ones_we_validate() -> None:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert chart["kubeVersion"] == f">={OLDEST}-0"
    versions = kubernetes_validate.utils.all_versions()
    assert OLDEST in versions
    assert tuple(map(int, NEWEST.split("."))) >= (1, 37, 0)


@pytest.mark.parametrize("version", [OLDEST, NEWEST])
@pytest.mark.parametrize("which", ["default", "full"])
def test_every_manifest_validates_strictly(request: pytest.FixtureRequest, which: str, version: str) -> None:
    docs, _ = request.getfixturevalue(which)
    unchecked = set()
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            unchecked.add(doc["kind"])
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} invalid for {version} at {path}: {exc.message}")
    assert unchecked <= CRD_KINDS
    kinds = {d["kind"] for d in docs}
    if which == "full":
        assert CRD_KINDS <= kinds
    else:
        assert not kinds & CRD_KINDS


def test_strict_validation_really_rejects_unknown_fields(default: tuple[list[dict], str]) -> None:
    deployment = copy.deepcopy(find(default[0], "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFilesytem"] = True  # typo
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, OLDEST, strict=True)


def test_helm_lint_strict_is_clean() -> None:
    for values in ({}, FULL_VALUES):
        report = helm_python.lint(CHART_DIR, values=values, strict=True, kube_version=f"v{OLDEST}")
        assert report["errors"] == []
        assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize(
    ("values", "path"),
    [
        ({"replicaCount": 0}, "replicaCount"),
        ({"admission": {"failurePolicy": "Sometimes"}}, "failurePolicy"),
        ({"admission": {"timeoutSeconds": 31}}, "timeoutSeconds"),
        ({"image": {"digest": "latest"}}, "digest"),
        ({"replicas": 3}, "replicas"),  # a typo of replicaCount
        ({"controller": {"leaderElection": {"shards": 0}}}, "shards"),
        ({"controller": {"leaderElection": {"shards": 2000}}}, "shards"),
        ({"signingKey": {"existingSecret": ""}}, "existingSecret"),
        ({"scanPolicy": {"verdict": {"quarantine_at": "severe"}}}, "quarantine_at"),
        ({"mlflow": {"storeChecksums": "verify"}}, "storeChecksums"),
    ],
)
def test_schema_rejects_bad_values(values: dict, path: str) -> None:
    with pytest.raises(helm_python.HelmValuesError, match=path):
        render_chart(values)


# --- the workload ------------------------------------------------------------------------------


def test_pods_are_hardened_and_redundant(default: tuple[list[dict], str]) -> None:
    docs, _ = default
    deployment = find(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    context = pod["securityContext"]
    assert context["runAsNonRoot"] is True and context["runAsUser"] > 0 and context["runAsGroup"] > 0
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} == {
        "topology.kubernetes.io/zone",
        "kubernetes.io/hostname",
    }
    assert {c["name"] for c in pod["containers"]} == {"controller", "admission"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes["tmp"]
    # Only the leader-electing controller gets an API token; the webhook parsing untrusted input gets none.
    assert pod["automountServiceAccountToken"] is False
    token_path = "/var/run/secrets/kubernetes.io/serviceaccount"
    with_token = {c["name"] for c in pod["containers"] if token_path in {m["mountPath"] for m in c["volumeMounts"]}}
    assert with_token == {"controller"}
    assert {"serviceAccountToken", "configMap", "downwardAPI"} == {
        k for source in volumes["kube-api-access"]["projected"]["sources"] for k in source
    }
    for container in pod["containers"]:
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert {"/tmp"} <= {m["mountPath"] for m in container["volumeMounts"]}
        assert container["resources"]["requests"] and container["resources"]["limits"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        # The controller's /readyz keeps followers in the Service: they serve the webhook too.
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["image"] == "ghcr.io/mlgate/mlgate:0.1.0"
        for env in container["env"]:  # secrets only by reference, never inline
            assert (
                "value" not in env
                or not re.search(r"(?i)secret|password|token|key$", env["name"])
                or env["name"] == "MLGATE_SIGNING_KEY_FILE"
            )
    pdb = find(docs, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in pdb["spec"]
    assert (
        pdb["spec"]["selector"]["matchLabels"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )


def test_secrets_are_referenced_not_embedded(full: tuple[list[dict], str]) -> None:
    docs, _ = full
    pod = find(docs, "Deployment")["spec"]["template"]["spec"]
    for container in pod["containers"]:
        refs = {e["secretRef"]["name"] for e in container["envFrom"]}
        assert refs == {"mlflow-credentials", "aws-credentials"}
        assert container["image"] == "ghcr.io/mlgate/mlgate@sha256:" + "0" * 64
    signing = next(v for v in pod["volumes"] if v["name"] == "signing-key")
    assert signing["secret"]["secretName"] == "mlgate-signing-key"
    account = find(docs, "ServiceAccount")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == "arn:aws:iam::123456789012:role/mlgate"
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "Secret"] == []  # cert-manager makes the TLS one


def test_rbac_is_limited_to_leases_and_events_in_its_namespace(default: tuple[list[dict], str]) -> None:
    docs, _ = default
    assert not [d for d in docs if d["kind"] in {"ClusterRole", "ClusterRoleBinding"}]
    role = find(docs, "Role")
    assert role["metadata"]["namespace"] == "mlgate"
    for rule in role["rules"]:
        assert set(rule["resources"]) <= {"leases", "events"}
        assert "*" not in rule["verbs"] and "*" not in rule["apiGroups"]
        assert not {"delete", "list", "watch"} & set(rule["verbs"])
    named = next(r for r in role["rules"] if r.get("resourceNames"))
    env = {
        e["name"]: e.get("value") for e in find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert named["resourceNames"] == [env["MLGATE_LEASE_NAME"]]
    binding = find(docs, "RoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "mlgate", "namespace": "mlgate"}]


def test_service_and_network_policy_match_the_container_ports(full: tuple[list[dict], str]) -> None:
    docs, _ = full
    pod = find(docs, "Deployment")["spec"]["template"]["spec"]
    container_ports = {p["name"] for c in pod["containers"] for p in c["ports"]}
    service = find(docs, "Service")
    assert (
        {p["targetPort"] for p in service["spec"]["ports"]}
        == container_ports
        == {"http", "webhook", "admission-metrics"}
    )
    policy = find(docs, "NetworkPolicy")
    ingress_ports = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert ingress_ports == container_ports
    webhook_rule = next(r for r in policy["spec"]["ingress"] if r["ports"][0]["port"] == "webhook")
    assert webhook_rule["from"] == [{"ipBlock": {"cidr": "10.0.0.0/8"}}]
    monitor = find(docs, "ServiceMonitor")
    assert {e["port"] for e in monitor["spec"]["endpoints"]} == {"http", "admission-metrics"}
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


# --- the webhook -------------------------------------------------------------------------------


def _webhooks(docs: list[dict]) -> list[dict]:
    return find(docs, "ValidatingWebhookConfiguration")["webhooks"]


def test_webhook_fails_closed_quickly_and_skips_its_own_namespace(full: tuple[list[dict], str]) -> None:
    docs, _ = full
    service = find(docs, "Service")
    webhook_port = next(p for p in service["spec"]["ports"] if p["targetPort"] == "webhook")["port"]
    for hook in _webhooks(docs):
        assert hook["failurePolicy"] == "Fail"
        assert hook["sideEffects"] == "None"
        assert hook["admissionReviewVersions"] == ["v1"]
        assert hook["timeoutSeconds"] <= 5
        assert hook["matchPolicy"] == "Equivalent"
        [expression] = hook["namespaceSelector"]["matchExpressions"]
        assert expression["key"] == "kubernetes.io/metadata.name" and expression["operator"] == "NotIn"
        assert set(expression["values"]) == {"ml-security", "kube-system", "monitoring"}
        assert hook["clientConfig"]["service"] == {
            "name": service["metadata"]["name"],
            "namespace": "ml-security",
            "path": VALIDATE_PATH,
            "port": webhook_port,
        }
        for rule in hook["rules"]:
            assert set(rule["operations"]) == {"CREATE", "UPDATE"}


def test_webhook_rules_cover_exactly_the_kinds_the_handler_understands(default: tuple[list[dict], str]) -> None:
    hooks = {h["name"]: h for h in _webhooks(default[0])}
    routed = {
        (g, r) for h in hooks.values() for rule in h["rules"] for g in rule["apiGroups"] for r in rule["resources"]
    }
    assert routed == {
        ("serving.kserve.io", "inferenceservices"),
        ("serving.kserve.io", "trainedmodels"),
        ("mlops.seldon.io", "models"),
        ("machinelearning.seldon.io", "seldondeployments"),
        ("apps", "deployments"),
        ("apps", "statefulsets"),
    }
    assert {("apps", "Deployment"), ("apps", "StatefulSet")} <= set(POD_TEMPLATE_PATHS)
    workloads = hooks["workloads.models.mlgate.io"]
    [condition] = workloads["matchConditions"]
    assert condition["expression"].count(f"'{MODEL_ANNOTATION}'") == 2
    assert "matchConditions" not in hooks["serving.models.mlgate.io"]


def test_chart_generated_certificate_serves_the_webhook(default: tuple[list[dict], str], tmp_path: Path) -> None:
    """The CA in the webhook's caBundle verifies the serving certificate the pods mount, for the Service name."""
    docs, _ = default
    secret = find(docs, "Secret", "mlgate-webhook-tls")
    assert secret["type"] == "kubernetes.io/tls"
    mounted = next(
        v for v in find(docs, "Deployment")["spec"]["template"]["spec"]["volumes"] if v["name"] == "webhook-tls"
    )
    assert mounted["secret"]["secretName"] == "mlgate-webhook-tls"
    bundles = {h["clientConfig"]["caBundle"] for h in _webhooks(docs)}
    assert bundles == {secret["data"]["ca.crt"]}
    for name in ("tls.crt", "tls.key", "ca.crt"):
        (tmp_path / name).write_bytes(base64.b64decode(secret["data"][name]))
    cert = x509.load_pem_x509_certificate((tmp_path / "tls.crt").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert "mlgate.mlgate.svc" in sans
    server = serve(
        "127.0.0.1", 0, tmp_path / "tls.crt", tmp_path / "tls.key", AdmissionWebhook(lookup=None, policy=None)
    )
    try:
        client = ssl.create_default_context(cadata=base64.b64decode(next(iter(bundles))).decode())
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
            with client.wrap_socket(raw, server_hostname="mlgate.mlgate.svc") as tls:
                tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: mlgate.mlgate.svc\r\nConnection: close\r\n\r\n")
                assert tls.recv(100).startswith(b"HTTP/1.1 200")
    finally:
        server.stop()


def test_cert_manager_mode_injects_the_ca_into_the_webhook(full: tuple[list[dict], str]) -> None:
    docs, _ = full
    configuration = find(docs, "ValidatingWebhookConfiguration")
    namespace, certificate_name = configuration["metadata"]["annotations"]["cert-manager.io/inject-ca-from"].split("/")
    certificate = find(docs, "Certificate", certificate_name)
    assert namespace == certificate["metadata"]["namespace"] == "ml-security"
    assert "gate-mlgate.ml-security.svc" in certificate["spec"]["dnsNames"]
    mounted = next(
        v for v in find(docs, "Deployment")["spec"]["template"]["spec"]["volumes"] if v["name"] == "webhook-tls"
    )
    assert certificate["spec"]["secretName"] == mounted["secret"]["secretName"]
    issuer = find(docs, "Issuer", certificate["spec"]["issuerRef"]["name"])
    ca = find(docs, "Certificate", issuer["spec"]["ca"]["secretName"].replace("-webhook-ca", "-ca"))
    assert ca["spec"]["isCA"] is True
    assert all("caBundle" not in h["clientConfig"] for h in configuration["webhooks"])


# --- configuration files -----------------------------------------------------------------------


def test_rendered_policies_load_with_the_real_loaders(full: tuple[list[dict], str], tmp_path: Path) -> None:
    data = find(full[0], "ConfigMap", "gate-mlgate")["data"]
    for name, text in data.items():
        (tmp_path / name).write_text(text)
    policy = load_policy(tmp_path / "policy.toml")
    assert policy.quarantine_at.name == "MEDIUM"
    assert policy.budgets.max_seconds == 300
    assert policy.budgets.max_bytes == 8 * 1024**3 and isinstance(policy.budgets.max_bytes, int)
    assert policy.budgets.max_ratio == 50.5
    assert [s.rule for s in policy.suppressions] == ["MLG-PKL-010"]
    admission = load_admission_policy(tmp_path / "admission.toml")
    assert admission.resolve_aliases is True
    assert admission.unverified_schemes == frozenset({"pvc"})
    assert dict(admission.storage_buckets) == {"localMinIO": "models"}
    assert admission.lookup_timeout == 2.0
    assert yaml.safe_load(data["controller.yaml"]) == {"workers": 4, "mlflow": {"poll_interval_seconds": 60}}


def _container(docs: list[dict], name: str) -> dict:
    return next(c for c in find(docs, "Deployment")["spec"]["template"]["spec"]["containers"] if c["name"] == name)


def test_containers_start_with_what_their_commands_accept(full: tuple[list[dict], str], tmp_path: Path) -> None:
    """The rendered args parse with mlgate's CLI, and controller.yaml + env load with the controller's loader."""
    from mlgate.controller.cli.main import build_parser
    from mlgate.controller.config.settings import load_config

    docs, _ = full
    parser = build_parser()
    controller = _container(docs, "controller")
    args = parser.parse_args(controller["args"])
    assert args.command == "controller" and args.leader_elect is True
    admission = parser.parse_args(_container(docs, "admission")["args"])
    assert admission.command == "admission-server" and admission.port == 8443 and admission.metrics_port == 9091
    mounted = "/etc/mlgate/config/"  # the ConfigMap's mount, reproduced in tmp_path
    for name, text in find(docs, "ConfigMap", "gate-mlgate")["data"].items():
        (tmp_path / name).write_text(text)
    assert args.config.startswith(mounted)
    env = {e["name"]: e.get("value", "from-a-secret").replace(mounted, f"{tmp_path}/") for e in controller["env"]}
    config = load_config(args.config.replace(mounted, f"{tmp_path}/"), environ=env)
    assert (config.http.host, config.http.port) == ("0.0.0.0", 8080)
    assert config.workers == 4 and config.mlflow.poll_interval_seconds == 60
    assert config.mlflow.store_checksums.value == "recompute"  # mlflow.storeChecksums
    assert config.mlflow.tracking_uri == "http://mlflow.mlflow.svc.cluster.local:5000"
    assert config.signing_key_file == "/etc/mlgate/signing/signing-key"
    assert config.policy == f"{tmp_path}/policy.toml"
    assert env["MLGATE_LEASE_NAME"] == "gate-mlgate" and env["POD_NAME"] == "from-a-secret"  # downward API
    mounts = {m["mountPath"] for m in controller["volumeMounts"]}
    assert {"/etc/mlgate/config", "/etc/mlgate/signing", "/tmp"} <= mounts


def test_default_policies_load_too(default: tuple[list[dict], str], tmp_path: Path) -> None:
    data = find(default[0], "ConfigMap")["data"]
    (tmp_path / "policy.toml").write_text(data["policy.toml"])
    (tmp_path / "admission.toml").write_text(data["admission.toml"])
    assert load_policy(tmp_path / "policy.toml").quarantine_incomplete is True
    assert load_admission_policy(tmp_path / "admission.toml").resolve_aliases is False
    controller = next(c for c in find(default[0], "Deployment")["spec"]["template"]["spec"]["containers"])
    assert "MLGATE_MLFLOW__STORE_CHECKSUMS" not in {e["name"] for e in controller["env"]}  # the controller's default


def _metric_names(expression: str) -> set[str]:
    return set(re.findall(r"\b(mlgate_[a-z_]+?)(?:_bucket|_total|_info)?\b(?=\s*[{\[)])", expression))


def test_dashboard_and_alerts_only_use_declared_metrics(full: tuple[list[dict], str]) -> None:
    from mlgate.controller.runtime.metrics import REGISTRY

    declared = {metric.name for metric in REGISTRY.collect()}
    dashboard = json.loads(find(full[0], "ConfigMap", "gate-mlgate-dashboard")["data"]["mlgate.json"])
    expressions = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    rules = find(full[0], "PrometheusRule")["spec"]["groups"][0]["rules"]
    expressions += [r["expr"] for r in rules]
    used = set().union(*(_metric_names(e) for e in expressions))
    assert used, "no metric names found"
    assert used <= declared, used - declared
    assert {
        "mlgate_scans",
        "mlgate_leader",
        "mlgate_queue_depth",
        "mlgate_admission_requests",
        "mlgate_last_successful_sync_timestamp_seconds",
    } <= used


def test_notes_tell_the_operator_what_to_check(default: tuple[list[dict], str]) -> None:
    _, notes = default
    for phrase in (
        "get pods",
        "get lease mlgate",
        "caBundle",
        "--dry-run=server",
        "mlgate.io/model",
        "failurePolicy is Fail",
        "prometheusRule.enabled=true",
        "create secret generic mlgate-signing-key",
    ):
        assert phrase in notes, phrase
    _, single = render_chart({"replicaCount": 1, "admission": {"failurePolicy": "Ignore"}})
    assert "WARNING: replicaCount is 1" in single
    assert "unapproved models are admitted" in single


# --- scale-out: shards and replicas ------------------------------------------------------------


@pytest.mark.parametrize(("replicas", "shards"), [(2, 1), (3, 8), (4, 16)])
def test_shards_and_replicas_reach_the_pod_the_role_and_the_pdb(tmp_path: Path, replicas: int, shards: int) -> None:
    """Every shard's Lease is granted by name, the pod gets MLGATE_SHARDS (which the controller's own
    settings loader accepts), and a drain takes one pod at a time whatever the replica count."""
    from mlgate.controller.runtime.leader import LeaderSettings
    from mlgate.controller.runtime.shards import lease_names

    docs, notes = render_chart({"replicaCount": replicas, "controller": {"leaderElection": {"shards": shards}}})
    deployment = find(docs, "Deployment")
    assert deployment["spec"]["replicas"] == replicas
    controller = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "controller")
    env = {e["name"]: e.get("value", "from-the-pod") for e in controller["env"]}
    settings = LeaderSettings.from_env(env)
    assert settings.shards == shards
    named = next(r for r in find(docs, "Role")["rules"] if r.get("resourceNames"))
    assert named["resourceNames"] == lease_names(settings.lease_name, shards)
    assert {"get", "update"} <= set(named["verbs"])
    pdb = find(docs, "PodDisruptionBudget")["spec"]
    assert pdb["maxUnavailable"] == 1 and "minAvailable" not in pdb
    for version in (OLDEST, NEWEST):
        for doc in docs:
            if doc["kind"] not in CRD_KINDS:
                kubernetes_validate.validate(doc, version, strict=True)
    if shards == 1:
        assert "One replica holds the reconcile lease" in notes
    else:
        assert f"The {shards} shards are spread over the replicas" in notes
        assert " ".join(lease_names("mlgate", shards)) in notes
        assert "WARNING" not in notes.split("3.")[0]


def test_more_replicas_than_shards_is_warned_and_min_available_still_wins() -> None:
    _, notes = render_chart({"replicaCount": 4, "controller": {"leaderElection": {"shards": 2}}})
    assert "WARNING: 2 shards for 4 replicas: 2 replica(s) reconcile and scan nothing" in notes
    docs, _ = render_chart({"replicaCount": 4, "podDisruptionBudget": {"minAvailable": "75%"}})
    pdb = find(docs, "PodDisruptionBudget")["spec"]
    assert pdb["minAvailable"] == "75%" and "maxUnavailable" not in pdb
