"""``mlgate scan`` on MLflow references against a real MLflow server: the same verdicts as the downloaded folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers_mlflow import CLEAN_FILES, malicious_dir, register

from mlgate.controller.cli.main import main


def _scan(capsys, *targets: str) -> tuple[int, dict, str]:
    capsys.readouterr()  # MLflow prints run links when the test registers models
    code = main(["scan", "--format", "json", "--no-progress", *targets])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else {}), err


def _download(url: str, uri: str, dest) -> str:
    from mlflow.artifacts import download_artifacts

    folder = download_artifacts(artifact_uri=uri, dst_path=str(dest), tracking_uri=url, registry_uri=url)
    # MLflow adds this file to a models:/ download; it is not one of the version's artifacts
    (Path(folder) / "registered_model_meta").unlink(missing_ok=True)
    return folder


@pytest.mark.integration
def test_models_alias_and_runs_references_scan_like_their_downloads(
    plain_server, prefix, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", plain_server.url)
    client = plain_server.client()
    bad, good = f"{prefix}bad", f"{prefix}good"
    bad_version = register(client, bad, malicious_dir(), tmp_path)
    good_version = register(client, good, CLEAN_FILES, tmp_path)
    client.set_registered_model_alias(bad, "champion", bad_version)
    run_id = client.get_model_version(bad, bad_version).run_id

    refs = {
        f"models:/{bad}/{bad_version}": "quarantined",
        f"models:/{bad}@champion": "quarantined",
        f"runs:/{run_id}/model": "quarantined",
        f"models:/{good}/{good_version}": "approved",
    }
    code, doc, _ = _scan(capsys, *refs)
    assert code == 1
    by_target = {t["target"]: t for t in doc["targets"]}
    assert set(by_target) == set(refs)

    for i, (ref, expected) in enumerate(refs.items()):
        folder = _download(plain_server.url, ref, tmp_path / f"dl{i}")
        local_code, local_doc, _ = _scan(capsys, folder)
        (local,) = local_doc["targets"]
        remote = by_target[ref]
        assert remote["verdict"] == local["verdict"] == expected, ref
        assert remote["digest"] == local["digest"], ref  # the same bytes were read
        assert [(f["rule"], f["location"]) for f in remote["findings"]] == [
            (f["rule"], f["location"]) for f in local["findings"]
        ]
        assert local_code == (1 if expected == "quarantined" else 0)


@pytest.mark.integration
def test_unresolvable_references_fail_in_one_line_naming_the_reference(plain_server, prefix, capsys, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", plain_server.url)
    for ref in (f"models:/{prefix}missing/1", f"models:/{prefix}missing@champion", "runs:/0123456789abcdef/model"):
        code, _, err = _scan(capsys, ref)
        assert code == 2, ref
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"mlgate: error: {ref}: "), err
    code, _, err = _scan(capsys, "models:/only-a-name")
    assert code == 2 and "expected models:/NAME/VERSION or models:/NAME@ALIAS" in err


def test_mlflow_reference_without_a_tracking_uri_is_a_usage_error(capsys, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code, _, err = _scan(capsys, "models:/fraud/3")
    assert code == 2
    assert (
        err.strip()
        == "mlgate: error: models:/fraud/3: MLFLOW_TRACKING_URI is not set, so models:/fraud/3 cannot be looked up"
    )
