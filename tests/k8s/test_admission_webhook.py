"""The admission webhook over real TLS, answering real AdmissionReview JSON for every workload kind.

Verdicts come from a real MLflow registry (sqlite store through the real client) and a real moto S3
server; expectations follow the threat: only a pinned, signed-approved model version or S3 objects
that all carry an approved tag may be served.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
import time
from typing import Any

import pytest
from k8s_helpers import SIGNING_KEY, admission_review, pod_template, workload

from mlgate.controller.admission.review import AdmissionPolicy, load_admission_policy
from mlgate.controller.admission.server import AdmissionWebhook, serve
from mlgate.controller.admission.verdict_lookup import RegistryVerdicts
from mlgate.controller.runtime.http_server import HttpServer
from mlgate.controller.runtime.metrics import REGISTRY

pytestmark = pytest.mark.integration

POLICY = AdmissionPolicy(storage_buckets={"localMinIO": "models"})


@pytest.fixture(scope="module")
def lookup(registry: Any, s3_client: Any) -> RegistryVerdicts:
    return RegistryVerdicts(registry, SIGNING_KEY, s3_client)


def _serve(tls_files: dict, lookup: Any, policy: AdmissionPolicy) -> HttpServer:
    return serve("127.0.0.1", 0, tls_files["cert"], tls_files["key"], AdmissionWebhook(lookup, policy))


@pytest.fixture(scope="module")
def server(tls_files: dict, lookup: RegistryVerdicts) -> HttpServer:
    srv = _serve(tls_files, lookup, POLICY)
    yield srv
    srv.stop()


def _client_context(tls_files: dict) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(tls_files["ca"]))
    return context


def post(
    server: HttpServer, tls_files: dict, body: bytes | dict, path: str = "/validate", host: str = "localhost"
) -> tuple[int, dict | None]:
    conn = http.client.HTTPSConnection(host, server.port, context=_client_context(tls_files), timeout=10)
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn.request("POST", path, body=payload, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    try:
        return response.status, json.loads(data)
    except ValueError:
        return response.status, None


def decide(server: HttpServer, tls_files: dict, obj: dict, operation: str = "CREATE", old: dict | None = None) -> dict:
    request = admission_review(obj, operation, old)
    status, doc = post(server, tls_files, request)
    assert status == 200
    assert doc["apiVersion"] == "admission.k8s.io/v1" and doc["kind"] == "AdmissionReview"
    assert doc["response"]["uid"] == request["request"]["uid"]
    return doc["response"]


def isvc(predictor: dict, **extra: dict) -> dict:
    return workload("InferenceService", {"predictor": predictor, **extra})


def seldon_deployment(graph: dict) -> dict:
    return workload("SeldonDeployment", {"predictors": [{"name": "default", "replicas": 1, "graph": graph}]})


# Each case: (id, object, allowed, phrases every denial message must contain)
CASES = [
    ("isvc-sklearn-approved", isvc({"sklearn": {"storageUri": "models:/fraud/1"}}), True, []),
    (
        "isvc-model-quarantined",
        isvc({"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "models:/fraud/2"}}),
        False,
        ["models:/fraud/2", "spec.predictor.model.storageUri", "quarantined", "MLG-PKL-001"],
    ),
    (
        "isvc-tensorflow-unscanned-s3",
        isvc({"tensorflow": {"storageUri": "s3://models/raw/x.pkl"}}),
        False,
        ["s3://models/raw/x.pkl", "spec.predictor.tensorflow.storageUri", "not been scanned"],
    ),
    (
        "isvc-storage-spec-approved-prefix",
        isvc({"model": {"modelFormat": {"name": "sklearn"}, "storage": {"key": "localMinIO", "path": "team/fraud/"}}}),
        True,
        [],
    ),
    (
        "isvc-storage-spec-unknown-key",
        isvc({"model": {"modelFormat": {"name": "sklearn"}, "storage": {"key": "elsewhere", "path": "team/fraud/"}}}),
        False,
        ["spec.predictor.model.storage.path", "'elsewhere'", "storage_buckets"],
    ),
    (
        "isvc-raw-prefix-includes-sibling-folder",
        isvc({"xgboost": {"storageUri": "s3://models/team/fraud"}}),
        False,
        ["s3://models/team/fraud", "1 of 3 objects", "team/fraud-old/evil.pkl", "quarantined"],
    ),
    (
        "isvc-transformer-env-storage-uri",
        isvc(
            {"sklearn": {"storageUri": "models:/fraud/1"}},
            transformer={
                "containers": [
                    {"name": "t", "image": "t:1", "env": [{"name": "STORAGE_URI", "value": "models:/fraud/3"}]}
                ]
            },
        ),
        False,
        ["models:/fraud/3", "spec.transformer.containers[0].env[0]", "not been scanned"],
    ),
    (
        "isvc-forged-verdict",
        isvc({"pytorch": {"storageUri": "models:/fraud/4"}}),
        False,
        ["models:/fraud/4", "without a valid signature"],
    ),
    (
        "isvc-unsigned-verdict",
        isvc({"onnx": {"storageUri": "models:/fraud/5"}}),
        False,
        ["models:/fraud/5", "without a valid signature"],
    ),
    (
        "isvc-gcs-unverifiable",
        isvc({"sklearn": {"storageUri": "gs://bucket/model"}}),
        False,
        ["gs://bucket/model", "cannot be verified"],
    ),
    (
        "seldon-model-approved-object",
        workload("Model", {"storageUri": "s3://models/single/model.pkl", "requirements": ["sklearn"]}),
        True,
        [],
    ),
    (
        "seldon-model-alias",
        workload("Model", {"storageUri": "models:/fraud@champion"}),
        False,
        ["models:/fraud@champion", "spec.storageUri", "alias @champion", "pin a version"],
    ),
    (
        "seldon-model-stage",
        workload("Model", {"storageUri": "models:/fraud/Production"}),
        False,
        ["models:/fraud/Production", "pin a version"],
    ),
    (
        "seldon-model-mixed-prefix",
        workload("Model", {"storageUri": "s3://models/mixed/"}),
        False,
        ["1 of 2 objects", "mixed/evil.pkl"],
    ),
    (
        "seldon-model-s3-forged-tags",
        workload("Model", {"storageUri": "s3://models/forged/model.pkl"}),
        False,
        ["without a valid signature for its current content"],
    ),
    (
        "seldon-model-s3-tags-copied-from-approved-object",
        workload("Model", {"storageUri": "s3://models/copied/model.pkl"}),
        False,
        ["without a valid signature for its current content"],
    ),
    (
        "seldon-model-s3-object-replaced-after-scan",
        workload("Model", {"storageUri": "s3://models/changed/model.pkl"}),
        False,
        ["without a valid signature for its current content"],
    ),
    (
        "seldon-model-missing-object",
        workload("Model", {"storageUri": "s3://models/nothing/here"}),
        False,
        ["no object exists"],
    ),
    (
        "seldondeployment-approved-graph",
        seldon_deployment(
            {
                "name": "router",
                "implementation": "SKLEARN_SERVER",
                "modelUri": "models:/fraud/1",
                "children": [{"name": "m", "implementation": "SKLEARN_SERVER", "modelUri": "s3://models/team/fraud/"}],
            }
        ),
        True,
        [],
    ),
    (
        "seldondeployment-forged-grandchild",
        seldon_deployment(
            {
                "name": "a",
                "modelUri": "models:/fraud/1",
                "children": [{"name": "b", "children": [{"name": "c", "modelUri": "models:/fraud/4"}]}],
            }
        ),
        False,
        ["spec.predictors[0].graph.children[0].children[0].modelUri", "without a valid signature"],
    ),
    (
        "deployment-annotated-unscanned",
        workload(
            "Deployment",
            {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "fraud"}},
                "template": pod_template({"mlgate.io/model": "models:/fraud/3"}),
            },
        ),
        False,
        ["spec.template.metadata.annotations[mlgate.io/model]", "not been scanned"],
    ),
    (
        "deployment-annotated-approved",
        workload(
            "Deployment",
            {"replicas": 1, "selector": {"matchLabels": {"app": "fraud"}}, "template": pod_template()},
            annotations={"mlgate.io/model": "models:/fraud/1"},
        ),
        True,
        [],
    ),
    (
        "deployment-not-annotated",
        workload("Deployment", {"replicas": 1, "selector": {"matchLabels": {"app": "x"}}, "template": pod_template()}),
        True,
        [],
    ),
    (
        "statefulset-annotated-two-models",
        workload(
            "StatefulSet",
            {
                "serviceName": "fraud",
                "selector": {"matchLabels": {"app": "fraud"}},
                "template": pod_template({"mlgate.io/model": "s3://models/single/model.pkl, models:/fraud/2"}),
            },
        ),
        False,
        ["models:/fraud/2", "quarantined"],
    ),
]


@pytest.mark.parametrize(("obj", "allowed", "phrases"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_workload_kind_gets_the_right_answer(
    server: HttpServer, tls_files: dict, obj: dict, allowed: bool, phrases: list[str]
) -> None:
    response = decide(server, tls_files, obj)
    assert response["allowed"] is allowed, response
    if allowed:
        assert "status" not in response
        assert response.get("auditAnnotations", {"decision": "approved"})["decision"] == "approved"
        return
    status = response["status"]
    assert status["code"] == 403 and status["reason"] == "Forbidden"
    message = status["message"]
    assert message.startswith(f"mlgate denied {obj['kind']} team-a/fraud: ")
    for phrase in phrases:
        assert phrase in message, message
    assert response["auditAnnotations"]["decision"] == "denied"


def test_only_the_offending_references_are_named(server: HttpServer, tls_files: dict) -> None:
    obj = isvc({"sklearn": {"storageUri": "models:/fraud/1"}}, explainer={"art": {"storageUri": "models:/fraud/2"}})
    message = decide(server, tls_files, obj)["status"]["message"]
    assert "models:/fraud/2 (spec.explainer.art.storageUri)" in message
    assert "models:/fraud/1" not in message


def test_update_is_judged_on_the_new_object(server: HttpServer, tls_files: dict) -> None:
    old = isvc({"sklearn": {"storageUri": "models:/fraud/1"}})
    new = isvc({"sklearn": {"storageUri": "models:/fraud/2"}})
    assert decide(server, tls_files, new, "UPDATE", old)["allowed"] is False
    assert decide(server, tls_files, old, "UPDATE", new)["allowed"] is True


def test_a_quarantined_workload_can_always_be_removed(server: HttpServer, tls_files: dict) -> None:
    bad = isvc({"sklearn": {"storageUri": "models:/fraud/2"}})
    assert decide(server, tls_files, bad, "DELETE")["allowed"] is True
    finalizing = json.loads(json.dumps(bad))
    finalizing["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    finalizing["metadata"]["finalizers"] = []
    assert decide(server, tls_files, finalizing, "UPDATE", bad)["allowed"] is True


MALFORMED = [
    ("not-json", b"{this is not json"),
    ("json-array", b"[]"),
    (
        "v1beta1-review",
        json.dumps(
            {"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {"uid": "u1"}}
        ).encode(),
    ),
    (
        "no-uid",
        json.dumps(
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"operation": "CREATE"}}
        ).encode(),
    ),
]


@pytest.mark.parametrize("body", [m[1] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_reviews_get_http_400(server: HttpServer, tls_files: dict, body: bytes) -> None:
    status, doc = post(server, tls_files, body)
    assert status == 400
    assert doc["response"]["allowed"] is False
    assert doc["response"]["status"]["code"] == 400


def test_malformed_objects_are_denied_with_400(server: HttpServer, tls_files: dict) -> None:
    review = admission_review(isvc({"sklearn": {"storageUri": "models:/fraud/1"}}))
    review["request"]["object"]["spec"]["predictor"] = "models:/fraud/1"
    status, doc = post(server, tls_files, review)
    assert status == 200
    assert doc["response"]["uid"] == review["request"]["uid"]
    assert doc["response"]["allowed"] is False
    assert doc["response"]["status"]["code"] == 400
    assert "spec.predictor must be an object" in doc["response"]["status"]["message"]

    review = admission_review(isvc({"sklearn": {"storageUri": "models:/fraud/1"}}))
    review["request"]["object"] = None
    status, doc = post(server, tls_files, review)
    assert (status, doc["response"]["allowed"]) == (200, False)


def test_unknown_paths_and_probes(server: HttpServer, tls_files: dict) -> None:
    status, _ = post(server, tls_files, b"{}", path="/mutate")
    assert status == 404
    conn = http.client.HTTPSConnection("localhost", server.port, context=_client_context(tls_files), timeout=5)
    for path in ("/healthz", "/readyz"):
        conn.request("GET", path)
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"ok\n")
    conn.close()


def test_tls_is_required_and_verified(server: HttpServer, tls_files: dict) -> None:
    # A client that does not trust our CA refuses the server...
    conn = http.client.HTTPSConnection("localhost", server.port, context=ssl.create_default_context(), timeout=5)
    with pytest.raises(ssl.SSLCertVerificationError):
        conn.request("GET", "/healthz")
    conn.close()
    # ...the certificate names the Service, not some other host...
    context = _client_context(tls_files)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            context.wrap_socket(raw, server_hostname="evil.example.com")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="mlgate.mlgate.svc") as tls:
            assert tls.version() in {"TLSv1.2", "TLSv1.3"}
    # ...plain HTTP gets no answer, and nothing older than TLS 1.2 is offered.
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            answer = raw.recv(1024)
        except ConnectionResetError:
            answer = b""
        assert not answer.startswith(b"HTTP/")
    assert server.tls.current().minimum_version == ssl.TLSVersion.TLSv1_2


def _counter(kind: str, allowed: str) -> float:
    value = REGISTRY.get_sample_value("mlgate_admission_requests_total", {"kind": kind, "allowed": allowed})
    return value or 0.0


def test_every_answer_is_counted(server: HttpServer, tls_files: dict) -> None:
    denied, allowed, invalid = (_counter("Model", "false"), _counter("Model", "true"), _counter("invalid", "false"))
    decide(server, tls_files, workload("Model", {"storageUri": "models:/fraud/2"}))
    decide(server, tls_files, workload("Model", {"storageUri": "models:/fraud/1"}))
    post(server, tls_files, b"nope")
    assert _counter("Model", "false") == denied + 1
    assert _counter("Model", "true") == allowed + 1
    assert _counter("invalid", "false") == invalid + 1


def test_alias_resolution_is_a_policy_choice(tls_files: dict, lookup: RegistryVerdicts, tmp_path: Any) -> None:
    policy_file = tmp_path / "admission.toml"
    policy_file.write_text("[admission]\nresolve_aliases = true\n")
    srv = _serve(tls_files, lookup, load_admission_policy(policy_file))
    try:
        champion = decide(srv, tls_files, workload("Model", {"storageUri": "models:/fraud@champion"}))
        assert champion["allowed"] is True
        challenger = decide(srv, tls_files, workload("Model", {"storageUri": "models:/fraud@challenger"}))
        assert challenger["allowed"] is False
        assert "points at version 2, which is quarantined" in challenger["status"]["message"]
        missing = decide(srv, tls_files, workload("Model", {"storageUri": "models:/fraud@nobody"}))
        assert "alias that does not exist" in missing["status"]["message"]
    finally:
        srv.stop()


def test_trusted_schemes_pass_with_a_warning(tls_files: dict, lookup: RegistryVerdicts) -> None:
    srv = _serve(tls_files, lookup, AdmissionPolicy(unverified_schemes=frozenset({"pvc"})))
    try:
        response = decide(srv, tls_files, isvc({"sklearn": {"storageUri": "pvc://models-pvc/fraud"}}))
        assert response["allowed"] is True
        assert "admitted without verification" in response["warnings"][0]
        still_denied = decide(srv, tls_files, isvc({"sklearn": {"storageUri": "gs://b/m"}}))
        assert still_denied["allowed"] is False
    finally:
        srv.stop()


@pytest.fixture
def silent_backend() -> str:
    """A real TCP server that accepts connections and never answers: a hung registry."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def test_a_hung_registry_is_denied_within_the_budget(
    tls_files: dict, silent_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    hung = RegistryVerdicts(MlflowClient(tracking_uri=silent_backend, registry_uri=silent_backend), SIGNING_KEY)
    srv = _serve(tls_files, hung, AdmissionPolicy(lookup_timeout=0.5))
    try:
        started = time.monotonic()
        response = decide(srv, tls_files, isvc({"sklearn": {"storageUri": "models:/fraud/1"}}))
        elapsed = time.monotonic() - started
        assert response["allowed"] is False
        assert "did not answer within 0.5 s" in response["status"]["message"]
        assert elapsed < 2.0
    finally:
        srv.stop()


def test_an_unreachable_registry_fails_closed(tls_files: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    down = RegistryVerdicts(MlflowClient(tracking_uri=dead, registry_uri=dead), SIGNING_KEY)
    srv = _serve(tls_files, down, AdmissionPolicy(lookup_timeout=1.5))
    try:
        response = decide(srv, tls_files, isvc({"sklearn": {"storageUri": "models:/fraud/1"}}))
        assert response["allowed"] is False
        assert "could not be verified" in response["status"]["message"]
        assert "fail closed" in response["status"]["message"]
    finally:
        srv.stop()


def test_review_never_raises_and_fails_closed(lookup: RegistryVerdicts) -> None:
    """Even a broken configuration (here: no policy object) answers, and answers no."""
    from mlgate.controller.admission.review import review

    request = admission_review(isvc({"sklearn": {"storageUri": "models:/fraud/1"}}))
    reply = review(json.dumps(request).encode(), lookup, policy=None)  # type: ignore[arg-type]
    assert reply.http_status == 200 and reply.allowed is False
    assert reply.document["response"]["uid"] == request["request"]["uid"]
    assert reply.document["response"]["status"]["code"] == 500
    assert "fail closed" in reply.document["response"]["status"]["message"]
