"""The promotion-gate bypasses of issue 12, each tried as an ordinary registry user against a real
``mlflow server --app-name mlgate``: stage names in any case, double-encoded JSON bodies, reserved tags in
any case, artifacts replaced after approval (file store and S3 store), and the alias revert catching
what the plugin cannot see."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest
from helpers_mlflow import CLEAN_FILES, SIGNING_KEY, malicious_dir, register, signed_tags, wait_for

from mlgate.controller.cli.main import main

pytestmark = pytest.mark.integration

APIS = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")


def encodings(payload: dict) -> dict[str, tuple[bytes, dict[str, str]]]:
    """Every body encoding MLflow's request parser accepts for a JSON request."""
    body = json.dumps(payload).encode()
    return {
        "json": (body, {"Content-Type": "application/json"}),
        "json-charset": (body, {"Content-Type": "application/json; charset=utf-8"}),
        "double-encoded": (json.dumps(json.dumps(payload)).encode(), {"Content-Type": "application/json"}),
    }


def call(base: str, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, dict]:
    """A plain HTTP call as any MLflow user could make it (no controller token)."""
    request = urllib.request.Request(f"{base}{path}", data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=20) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw or b"{}") if raw[:1] in (b"{", b"") else {}
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw or b"{}")
        except ValueError:
            return exc.code, {"raw": raw.decode(errors="replace")}


def call_json(base: str, method: str, path: str, payload: dict) -> tuple[int, dict]:
    body, headers = encodings(payload)["json"]
    return call(base, method, path, body, headers)


@pytest.fixture
def verdicts(gated_server, make_controller, prefix, tmp_path):
    """A gated registry with one approved and one quarantined version (controller stopped afterwards)."""
    client = gated_server.client()
    name = f"{prefix}bypass"
    good = register(client, name, CLEAN_FILES, tmp_path)
    evil = register(client, name, malicious_dir(), tmp_path)
    controller = make_controller(gated_server.url)
    wait_for(lambda: signed_tags(client, name, good), what="clean verdict")
    wait_for(lambda: signed_tags(client, name, evil), what="malicious verdict")
    controller.runtime.stop()
    return client, name, good, evil


@pytest.mark.parametrize("stage", ["production", "PRODUCTION", "pRoDuCtIoN", "staging", "STAGING", "Staging"])
def test_stage_names_in_any_case_are_gated(gated_server, verdicts, stage):
    client, name, _, evil = verdicts
    for api in APIS:
        for encoding, (body, headers) in encodings(
            {"name": name, "version": evil, "stage": stage, "archive_existing_versions": False}
        ).items():
            status, reply = call(gated_server.url, "POST", f"{api}/model-versions/transition-stage", body, headers)
            assert status == 403, (api, encoding, reply)
            assert reply["error_code"] == "PERMISSION_DENIED"
            assert f"models:/{name}/{evil} is quarantined" in reply["message"]
    assert client.get_model_version(name, evil).current_stage == "None"


def test_client_library_lowercase_stage_is_refused(gated_server, verdicts):
    from mlflow.exceptions import RestException

    client, name, _, evil = verdicts
    with pytest.raises(RestException) as caught, pytest.warns(FutureWarning):
        client.transition_model_version_stage(name, evil, "staging")
    assert caught.value.error_code == "PERMISSION_DENIED"
    assert client.get_model_version(name, evil).current_stage == "None"


def test_double_encoded_bodies_on_every_gated_route(gated_server, verdicts):
    client, name, good, evil = verdicts
    attempts = {
        ("POST", "registered-models/alias"): {"name": name, "alias": "champion", "version": evil},
        ("POST", "model-versions/transition-stage"): {"name": name, "version": evil, "stage": "Production"},
        ("POST", "model-versions/set-tag"): {"name": name, "version": evil, "key": "mlgate.verdict", "value": "x"},
        ("DELETE", "model-versions/delete-tag"): {"name": name, "version": evil, "key": "mlgate.signature"},
        ("POST", "registered-models/set-tag"): {"name": name, "key": "mlgate.alias.champion", "value": evil},
        ("DELETE", "registered-models/delete-tag"): {"name": name, "key": "mlgate.alias.champion"},
        ("POST", "model-versions/create"): {
            "name": name,
            "source": "/tmp/nowhere",
            "tags": [{"key": "mlgate.verdict", "value": "approved"}],
        },
        ("POST", "registered-models/create"): {
            "name": f"{name}-copy",
            "tags": [{"key": "mlgate.alias.champion", "value": "1"}],
        },
    }
    versions_before = len(client.search_model_versions(f"name = '{name}'"))
    for (method, route), payload in attempts.items():
        for api in APIS:
            body, headers = encodings(payload)["double-encoded"]
            status, reply = call(gated_server.url, method, f"{api}/{route}", body, headers)
            assert status == 403, (method, api, route, reply)
            assert reply["message"].startswith("mlgate: "), reply
    assert client.get_registered_model(name).aliases == {}
    assert client.get_model_version(name, evil).current_stage == "None"
    assert client.get_model_version(name, evil).tags["mlgate.verdict"] == "quarantined"
    assert signed_tags(client, name, evil)
    assert len(client.search_model_versions(f"name = '{name}'")) == versions_before
    assert not client.search_registered_models(f"name = '{name}-copy'")
    # The same encoding still works for what is allowed.
    body, headers = encodings({"name": name, "alias": "champion", "version": good})["double-encoded"]
    assert call(gated_server.url, "POST", f"{APIS[0]}/registered-models/alias", body, headers)[0] == 200
    assert client.get_registered_model(name).aliases == {"champion": good}


@pytest.mark.parametrize(
    "key", ["MLGATE.verdict", "Mlgate.Signature", "mlGate.digest", "ＭＬＧＡＴＥ.verdict", "mlgatè.x"]
)
def test_reserved_tags_in_any_case_are_refused(gated_server, verdicts, key):
    client, name, _, evil = verdicts
    for api in APIS:
        status, reply = call_json(
            gated_server.url, "POST", f"{api}/model-versions/set-tag", {"name": name, "version": evil, "key": key}
        )
        assert status == 403, (api, reply)
        assert "reserved for the mlgate controller" in reply["message"]
        status, _ = call_json(
            gated_server.url, "POST", f"{api}/registered-models/set-tag", {"name": name, "key": key, "value": "1"}
        )
        assert status == 403
    assert key not in client.get_model_version(name, evil).tags


def _server_artifact_file(server, client, name: str, version: str, rel: str) -> Path:
    """The file behind a proxied (mlflow-artifacts:) version artifact, in the server's destination."""
    uri = client.get_model_version_download_uri(name, version)
    assert uri.startswith("mlflow-artifacts:"), uri
    return server.log.parent / "artifacts" / urlparse(uri).path.lstrip("/") / rel


def test_artifacts_replaced_after_approval_file_store(
    gated_server, make_controller, prefix, tmp_path, monkeypatch, capsys
):
    client = gated_server.client()
    name = f"{prefix}swap"
    good = register(client, name, CLEAN_FILES, tmp_path)
    destination = str(gated_server.log.parent / "artifacts")
    controller = make_controller(gated_server.url, artifacts_destination=destination)
    tags = wait_for(lambda: signed_tags(client, name, good), what="clean verdict")
    assert tags["mlgate.listing"].startswith("v1:file:")
    client.set_registered_model_alias(name, "champion", good)  # approved and unchanged: allowed
    controller.runtime.stop()

    # Through the server, the registered artifacts cannot be overwritten or deleted.
    uri = client.get_model_version_download_uri(name, good)
    rel = urlparse(uri).path.lstrip("/")
    for api in ("/api/2.0", "/ajax-api/2.0"):
        status, reply = call(
            gated_server.url,
            "PUT",
            f"{api}/mlflow-artifacts/artifacts/{rel}/weights.txt",
            b"0.25 0.5 0.99\n",
            {"Content-Type": "application/octet-stream"},
        )
        assert status == 403, reply
        assert "registered model version" in reply["message"]
        status, _ = call(gated_server.url, "DELETE", f"{api}/mlflow-artifacts/artifacts/{rel}", None, {})
        assert status == 403
    # Elsewhere uploads still work (a new run's artifacts).
    run = client.create_run(client.get_experiment_by_name("mlgate-tests").experiment_id)
    (tmp_path / "note.txt").write_text("ok\n")
    client.log_artifact(run.info.run_id, str(tmp_path / "note.txt"))

    # Someone with write access to the store itself swaps a file for one of the same size.
    weights = _server_artifact_file(gated_server, client, name, good, "weights.txt")
    original = weights.read_bytes()
    time.sleep(0.02)
    weights.write_bytes(original.replace(b"0.75", b"0.99"))
    assert weights.stat().st_size == len(original)

    status, reply = call_json(
        gated_server.url,
        "POST",
        "/api/2.0/mlflow/registered-models/alias",
        {"name": name, "alias": "b", "version": good},
    )
    assert status == 403, reply
    assert "artifacts changed since the scan" in reply["message"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", gated_server.url)
    monkeypatch.setenv("MLGATE_SIGNING_KEY", SIGNING_KEY)
    monkeypatch.setenv("MLGATE_HOME", str(tmp_path / "check-state"))
    monkeypatch.setenv("MLGATE_MLFLOW__ARTIFACTS_DESTINATION", destination)
    assert main(["check", f"models:/{name}@champion"]) == 1
    assert "artifacts changed since the scan" in capsys.readouterr().out

    # The controller's next pass invalidates the verdict, reverts the alias set before the swap
    # (the plugin cannot see a store write) and rescans: the new content gets its own verdict.
    make_controller(gated_server.url, artifacts_destination=destination)
    wait_for(lambda: client.get_registered_model(name).aliases == {}, timeout=30, what="alias reverted")
    tags = wait_for(lambda: signed_tags(client, name, good), timeout=30, what="rescanned verdict")
    assert tags["mlgate.listing"] != "" and tags["mlgate.verdict"] == "approved"
    status, _ = call_json(
        gated_server.url,
        "POST",
        "/api/2.0/mlflow/registered-models/alias",
        {"name": name, "alias": "b", "version": good},
    )
    assert status == 200


def test_artifacts_replaced_after_approval_s3_store(s3_gated_server, make_controller, prefix, tmp_path):
    import boto3

    client = s3_gated_server.client()
    name = f"{prefix}s3swap"
    good = register(client, name, CLEAN_FILES, tmp_path)
    make_controller(s3_gated_server.url, start=True)
    tags = wait_for(lambda: signed_tags(client, name, good), timeout=60, what="clean verdict")
    assert tags["mlgate.listing"].startswith("v1:s3:")
    uri = client.get_model_version_download_uri(name, good)
    assert uri.startswith("s3://"), uri
    status, _ = call_json(
        s3_gated_server.url,
        "POST",
        "/api/2.0/mlflow/registered-models/alias",
        {"name": name, "alias": "champion", "version": good},
    )
    assert status == 200

    # Overwrite the approved weights in the bucket with a malicious pickle.
    parsed = urlparse(uri)
    s3 = boto3.client("s3", endpoint_url=os.environ["MLFLOW_S3_ENDPOINT_URL"])
    evil = (malicious_dir() / "model.pkl").read_bytes()
    s3.put_object(Bucket=parsed.netloc, Key=f"{parsed.path.strip('/')}/weights.txt", Body=evil)

    status, reply = call_json(
        s3_gated_server.url,
        "POST",
        "/api/2.0/mlflow/registered-models/alias",
        {"name": name, "alias": "canary", "version": good},
    )
    assert status == 403, reply
    assert "artifacts changed since the scan" in reply["message"]
    # The running controller notices on its next pass: alias reverted, verdict rewritten for the new content.
    wait_for(lambda: client.get_registered_model(name).aliases == {}, timeout=30, what="alias reverted")
    tags = wait_for(lambda: signed_tags(client, name, good), timeout=60, what="rescanned verdict")
    assert tags["mlgate.verdict"] == "quarantined"


def test_alias_revert_catches_a_swap_without_the_plugin(plain_server, make_controller, prefix, tmp_path):
    client = plain_server.client()
    name = f"{prefix}plainswap"
    good = register(client, name, CLEAN_FILES, tmp_path)
    make_controller(plain_server.url)
    first = wait_for(lambda: signed_tags(client, name, good), what="clean verdict")
    client.set_registered_model_alias(name, "champion", good)
    # Without the plugin the proxy accepts the overwrite; the listing (path, size) changes.
    uri = client.get_model_version_download_uri(name, good)
    rel = urlparse(uri).path.lstrip("/")
    evil = (malicious_dir() / "model.pkl").read_bytes()
    status, _ = call(
        plain_server.url,
        "PUT",
        f"/api/2.0/mlflow-artifacts/artifacts/{rel}/model.pkl",
        evil,
        {"Content-Type": "application/octet-stream"},
    )
    assert status == 200
    wait_for(lambda: client.get_registered_model(name).aliases == {}, timeout=30, what="alias reverted")
    tags = wait_for(
        lambda: (t := signed_tags(client, name, good)) and t["mlgate.digest"] != first["mlgate.digest"] and t,
        timeout=60,
        what="rescanned verdict",
    )
    assert tags["mlgate.verdict"] == "quarantined"
