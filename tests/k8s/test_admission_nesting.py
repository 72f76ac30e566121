"""Issue 17: a deeply nested AdmissionReview gets HTTP 400 before it is parsed, and is counted."""

from __future__ import annotations

import http.client
import json
import ssl
from typing import Any

import pytest
from k8s_helpers import SIGNING_KEY, admission_review, workload

from mlgate.controller.admission.review import MAX_NESTING, AdmissionPolicy, nesting_depth
from mlgate.controller.admission.server import AdmissionWebhook, serve
from mlgate.controller.admission.verdict_lookup import RegistryVerdicts
from mlgate.controller.runtime.metrics import REGISTRY

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tls_files: dict, registry: Any, s3_client: Any):
    lookup = RegistryVerdicts(registry, SIGNING_KEY, s3_client)
    webhook = AdmissionWebhook(lookup, AdmissionPolicy(storage_buckets={"localMinIO": "models"}))
    srv = serve("127.0.0.1", 0, tls_files["cert"], tls_files["key"], webhook)
    yield srv
    srv.stop()


def _post(server: Any, tls_files: dict, body: bytes) -> tuple[int, dict | None]:
    context = ssl.create_default_context(cafile=str(tls_files["ca"]))
    conn = http.client.HTTPSConnection("localhost", server.port, context=context, timeout=30)
    conn.request("POST", "/validate", body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    try:
        return response.status, json.loads(data)
    except ValueError:
        return response.status, None


def _invalid() -> float:
    return REGISTRY.get_sample_value("mlgate_admission_requests_total", {"kind": "invalid", "allowed": "false"}) or 0.0


@pytest.mark.parametrize("where", ["top", "inside_the_object"])
def test_5000_levels_get_400_and_are_counted(server: Any, tls_files: dict, where: str) -> None:
    deep = "[" * 5000 + "]" * 5000
    if where == "top":
        body = deep.encode()
    else:
        review = admission_review(workload("Model", {"storageUri": "models:/fraud/1"}))
        review["request"]["object"]["spec"]["extra"] = "__DEEP__"
        body = json.dumps(review).replace('"__DEEP__"', deep).encode()
    before = _invalid()
    status, doc = _post(server, tls_files, body)
    assert status == 400, doc
    assert doc is not None and doc["response"]["allowed"] is False
    assert "nests" in doc["response"]["status"]["message"]
    assert _invalid() == before + 1


def test_ordinary_reviews_are_far_below_the_limit() -> None:
    review = admission_review(workload("Model", {"storageUri": "models:/fraud/1"}))
    assert nesting_depth(json.dumps(review)) < MAX_NESTING // 10
    assert nesting_depth(json.dumps({"s": "[[[[[[" * 100})) == 1  # brackets inside strings do not count
