"""Promotion gate, three layers: the MLflow server plugin (403), alias revert without it, ``mlgate check``."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from helpers_mlflow import CLEAN_FILES, SIGNING_KEY, malicious_dir, metric, register, signed_tags, wait_for

from mlgate.controller.cli.main import main

pytestmark = pytest.mark.integration


def _call(base: str, method: str, path: str, payload: dict) -> tuple[int, dict]:
    """A plain REST call as any MLflow user would make it (no controller token)."""
    request = urllib.request.Request(
        f"{base}{path}", data=json.dumps(payload).encode(), method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_plugin_refuses_promotion_of_unapproved_versions(gated_server, make_controller, prefix, tmp_path):
    client = gated_server.client()
    name = f"{prefix}gated"
    good = register(client, name, CLEAN_FILES, tmp_path)
    evil = register(client, name, malicious_dir(), tmp_path)
    base = gated_server.url

    # Not scanned yet: no verdict, no promotion.
    status, body = _call(
        base, "POST", "/api/2.0/mlflow/registered-models/alias", {"name": name, "alias": "champion", "version": good}
    )
    assert status == 403
    assert body["error_code"] == "PERMISSION_DENIED"
    assert "no valid mlgate verdict" in body["message"]

    # The controller authenticates to the plugin with its token and writes its verdicts.
    make_controller(gated_server.url)
    assert wait_for(lambda: signed_tags(client, name, good), what="clean verdict")["mlgate.verdict"] == "approved"
    assert (
        wait_for(lambda: signed_tags(client, name, evil), what="malicious verdict")["mlgate.verdict"] == "quarantined"
    )

    for api in ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow"):
        status, body = _call(
            base, "POST", f"{api}/registered-models/alias", {"name": name, "alias": "champion", "version": evil}
        )
        assert status == 403, api
        assert f"models:/{name}/{evil} is quarantined" in body["message"]
        status, body = _call(
            base,
            "POST",
            f"{api}/model-versions/transition-stage",
            {"name": name, "version": evil, "stage": "Production", "archive_existing_versions": False},
        )
        assert status == 403, api
        status, body = _call(
            base,
            "POST",
            f"{api}/model-versions/set-tag",
            {"name": name, "version": evil, "key": "mlgate.verdict", "value": "approved"},
        )
        assert status == 403, api
        assert "reserved for the mlgate controller" in body["message"]
        status, _ = _call(
            base,
            "DELETE",
            f"{api}/model-versions/delete-tag",
            {"name": name, "version": evil, "key": "mlgate.signature"},
        )
        assert status == 403, api
        status, _ = _call(
            base,
            "POST",
            f"{api}/registered-models/set-tag",
            {"name": name, "key": "mlgate.alias.champion", "value": evil},
        )
        assert status == 403, api
    assert client.get_registered_model(name).aliases == {}
    assert client.get_model_version(name, evil).tags["mlgate.verdict"] == "quarantined"

    # Approved versions and ordinary tags pass through.
    status, _ = _call(
        base, "POST", "/api/2.0/mlflow/registered-models/alias", {"name": name, "alias": "champion", "version": good}
    )
    assert status == 200
    status, _ = _call(
        base,
        "POST",
        "/api/2.0/mlflow/model-versions/set-tag",
        {"name": name, "version": evil, "key": "team", "value": "fraud"},
    )
    assert status == 200
    status, _ = _call(
        base,
        "POST",
        "/api/2.0/mlflow/model-versions/transition-stage",
        {"name": name, "version": evil, "stage": "Archived", "archive_existing_versions": False},
    )
    assert status == 200
    # Creating a version that carries verdict tags is refused too (a copied signature must not ride along).
    status, body = _call(
        base,
        "POST",
        "/api/2.0/mlflow/model-versions/create",
        {"name": name, "source": "/tmp/nowhere", "tags": [{"key": "mlgate.verdict", "value": "x"}]},
    )
    assert status == 403
    assert client.get_registered_model(name).aliases == {"champion": good}


def test_alias_reverted_without_the_plugin(plain_server, make_controller, prefix, tmp_path):
    client = plain_server.client()
    name = f"{prefix}revert"
    good = register(client, name, CLEAN_FILES, tmp_path)
    make_controller(plain_server.url)
    wait_for(lambda: signed_tags(client, name, good), what="clean verdict")
    client.set_registered_model_alias(name, "champion", good)
    # The guard records the approved target before anything else happens.
    wait_for(lambda: "mlgate.alias.champion" in client.get_registered_model(name).tags, what="alias recorded")

    evil = register(client, name, malicious_dir(), tmp_path)
    wait_for(lambda: signed_tags(client, name, evil), what="malicious verdict")
    blocked = metric("mlgate_promotions_blocked_total", source="mlflow")
    client.set_registered_model_alias(name, "champion", evil)
    client.set_registered_model_alias(name, "canary", evil)
    wait_for(
        lambda: client.get_registered_model(name).aliases == {"champion": good},
        timeout=20,
        what="champion moved back and canary deleted",
    )
    assert metric("mlgate_promotions_blocked_total", source="mlflow") - blocked == 2

    client.transition_model_version_stage(name, evil, "Production")
    wait_for(lambda: client.get_model_version(name, evil).current_stage == "None", timeout=20, what="stage reverted")
    assert metric("mlgate_promotions_blocked_total", source="mlflow") - blocked == 3


def test_check_command(plain_server, make_controller, prefix, tmp_path, monkeypatch, capsys):
    client = plain_server.client()
    name = f"{prefix}check"
    good = register(client, name, CLEAN_FILES, tmp_path)
    evil = register(client, name, malicious_dir(), tmp_path)
    unscanned_name = f"{prefix}unscanned"
    controller = make_controller(plain_server.url)
    wait_for(lambda: signed_tags(client, name, good) and signed_tags(client, name, evil), what="verdicts")
    controller.runtime.stop()
    unscanned = register(client, unscanned_name, CLEAN_FILES, tmp_path)
    client.set_registered_model_alias(name, "champion", good)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", plain_server.url)
    monkeypatch.setenv("MLGATE_SIGNING_KEY", SIGNING_KEY)
    monkeypatch.setenv("MLGATE_HOME", str(tmp_path / "state"))

    assert main(["check", f"models:/{name}@champion"]) == 0
    assert f"models:/{name}@champion (version {good}): approved" in capsys.readouterr().out
    assert main(["check", f"models:/{name}/{good}", "--verify-digest"]) == 0
    assert main(["check", f"models:/{name}/{evil}"]) == 1
    assert "quarantined" in capsys.readouterr().out
    assert main(["check", f"models:/{unscanned_name}/{unscanned}"]) == 1
    assert "no valid mlgate verdict" in capsys.readouterr().out
    # Unknown references are "not approved" (1); only usage errors are 2.
    assert main(["check", f"models:/{name}/999"]) == 1
    assert "no such model version or alias" in capsys.readouterr().out
    assert main(["check", f"models:/{name}@missing"]) == 1
    assert main(["check", f"models:/{prefix}never-registered/1"]) == 1
    assert main(["check", "runs:/abc/model"]) == 2
    monkeypatch.setenv("MLGATE_SIGNING_KEY", "some-other-key-0123456789")
    assert main(["check", f"models:/{name}@champion"]) == 1  # a verdict signed by another key is no verdict
