"""Every route the MLflow server registers, classified against the gate plugin's ``ROUTE_CLASSES``.

The Flask URL map (both ``/api/2.0/mlflow`` and ``/ajax-api/2.0/mlflow``, every method) is read
from MLflow itself; a model-registry or artifact route whose method can change something and that
the plugin does not classify fails the test, so a new MLflow release that adds one is noticed.
Every gated and reserved-tag route is then called, with every body encoding MLflow's parser
accepts, on a real ``mlflow server --app-name mlgate``.
"""

from __future__ import annotations

import re

import pytest
from helpers_mlflow import CLEAN_FILES, register, signed_tags, wait_for
from test_gate_bypasses import call, encodings

from mlgate.controller.mlflow.server_plugin import (
    ARTIFACT_WRITE,
    GATED,
    HARMLESS,
    RESERVED_TAG,
    ROUTE_CLASSES,
    _ArtifactWriteGuard,
    registry_handlers,
)

MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
# A route is a registry or artifact route when its path or MLflow handler name says so.
REGISTRY_WORDS = re.compile(r"registered[-_]models?|model[-_]versions?|artifact", re.I)


def _routes() -> list[tuple[str, str, str, object]]:
    """(rule, method, endpoint, handler) for every route of MLflow's Flask app."""
    from mlflow.server import app

    out = []
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            out.append((rule.rule, method, rule.endpoint, app.view_functions[rule.endpoint]))
    return out


def _classified() -> dict[tuple[str, str], str]:
    """(rule, method) -> class, for every route served by a handler the plugin knows."""
    handlers = registry_handlers()
    out = {}
    for rule, method, _, handler in _routes():
        if handler in handlers:
            out[(rule, method)] = ROUTE_CLASSES[handlers[handler][0]]
    return out


def test_every_registry_rpc_is_classified() -> None:
    from mlflow.protos.mlflow_artifacts_pb2 import MlflowArtifactsService
    from mlflow.protos.model_registry_pb2 import ModelRegistryService

    for service in (ModelRegistryService, MlflowArtifactsService):
        missing = [m.name for m in service.DESCRIPTOR.methods if m.name not in ROUTE_CLASSES]
        assert not missing, f"{service.DESCRIPTOR.name} RPCs the gate plugin does not classify: {missing}"
    assert set(ROUTE_CLASSES.values()) <= {GATED, RESERVED_TAG, ARTIFACT_WRITE, HARMLESS}


def test_no_unclassified_mutating_registry_route() -> None:
    classified = _classified()
    both_prefixes = {(r, m) for r, m in classified if "/ajax-api/" in r} and {
        (r, m) for r, m in classified if r.startswith("/api/")
    }
    assert both_prefixes, "expected registry routes under both /api and /ajax-api"
    unclassified = [
        f"{method} {rule} ({endpoint})"
        for rule, method, endpoint, _ in _routes()
        if method in MUTATING
        and (REGISTRY_WORDS.search(rule) or REGISTRY_WORDS.search(endpoint))
        and (rule, method) not in classified
        and not rule.startswith(("/api/2.0/mlflow/logged-models", "/ajax-api/2.0/mlflow/logged-models"))
        and "trace" not in endpoint
    ]
    assert not unclassified, "mutating registry/artifact routes the gate plugin does not classify: " + ", ".join(
        unclassified
    )
    # Every gated and reserved-tag RPC is served on both prefixes.
    for rpc, kind in ROUTE_CLASSES.items():
        if kind in (GATED, RESERVED_TAG):
            rules = [r for (r, _), k in classified.items() if k == kind]
            assert any(r.startswith("/api/2.0/mlflow/") for r in rules), rpc
            assert any(r.startswith("/ajax-api/2.0/mlflow/") for r in rules), rpc


def test_native_asgi_artifact_writes_are_guarded() -> None:
    """Under uvicorn MLflow serves artifact uploads in FastAPI, outside Flask: the ASGI guard must match them."""
    from fastapi.routing import APIRoute
    from mlflow.server import app
    from mlflow.server.fastapi_app import create_fastapi_app

    def walk(routes: list) -> list:
        out = []
        for route in routes:
            nested = getattr(getattr(route, "original_router", None), "routes", None) or getattr(route, "routes", None)
            out.extend(walk(nested) if nested and not isinstance(route, APIRoute) else [route])
        return out

    writes = [
        route.path
        for route in walk(create_fastapi_app(app).routes)
        if isinstance(route, APIRoute) and "artifact" in route.path and route.methods & MUTATING
    ]
    assert writes, "expected native artifact upload routes"
    for path in writes:
        example = path.replace("{artifact_path:path}", "1/abc/artifacts/model/x.pkl")
        assert _ArtifactWriteGuard._PATH.match(example), path


def _payload(rpc: str, name: str, version: str) -> dict:
    """A request that would promote a quarantined version or write a reserved tag."""
    return {
        "setRegisteredModelAlias": {"name": name, "alias": "champion", "version": version},
        "transitionModelVersionStage": {"name": name, "version": version, "stage": "production"},
        "setModelVersionTag": {"name": name, "version": version, "key": "MLGATE.verdict", "value": "approved"},
        "deleteModelVersionTag": {"name": name, "version": version, "key": "mlgate.signature"},
        "setRegisteredModelTag": {"name": name, "key": "mlgate.alias.champion", "value": version},
        "deleteRegisteredModelTag": {"name": name, "key": "Mlgate.alias.champion"},
        "createModelVersion": {"name": name, "source": "/tmp/x", "tags": [{"key": "mlgate.verdict", "value": "a"}]},
        "createRegisteredModel": {"name": f"{name}-new", "tags": [{"key": "mlgate.verdict", "value": "approved"}]},
    }[rpc]


@pytest.mark.integration
def test_every_gated_route_with_every_encoding(gated_server, make_controller, prefix, tmp_path) -> None:
    client = gated_server.client()
    name = f"{prefix}surface"
    # An unscanned version: no verdict, so every promotion is refused; reserved tags are refused anyway.
    version = register(client, name, CLEAN_FILES, tmp_path)
    handlers = registry_handlers()
    by_route = {(r, m): handlers[h][0] for r, m, _, h in _routes() if h in handlers}
    tried = 0
    for (rule, method), rpc in sorted(by_route.items()):
        if ROUTE_CLASSES[rpc] not in (GATED, RESERVED_TAG):
            continue
        for encoding, (body, headers) in encodings(_payload(rpc, name, version)).items():
            status, reply = call(gated_server.url, method, rule, body, headers)
            assert status == 403, (method, rule, encoding, reply)
            assert reply["error_code"] == "PERMISSION_DENIED" and reply["message"].startswith("mlgate: ")
            tried += 1
    assert tried >= 8 * 2 * 3
    mv = client.get_model_version(name, version)
    assert mv.current_stage == "None" and not any(k.lower().startswith("mlgate.") for k in mv.tags)
    assert client.get_registered_model(name).aliases == {}
    assert len(client.search_model_versions(f"name = '{name}'")) == 1

    # With the controller's verdicts in place, the approved version can be promoted with any encoding.
    make_controller(gated_server.url)
    wait_for(lambda: signed_tags(client, name, version), what="verdict")
    for i, (encoding, (body, headers)) in enumerate(
        encodings({"name": name, "alias": "approved", "version": version}).items()
    ):
        body = body.replace(b"approved", f"approved{i}".encode())
        status, reply = call(gated_server.url, "POST", "/api/2.0/mlflow/registered-models/alias", body, headers)
        assert status == 200, (encoding, reply)
