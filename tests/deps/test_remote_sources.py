"""MLflow (``models:/``, ``runs:/``) and S3 (``s3://``) dependencies, through the real clients.

MLflow: a real tracking + registry store (sqlite, in-process client, no server:
``tests/mlflow/conftest.py`` owns the server fixture, and the resolver only
needs the client API). S3: a real moto server on a loopback port, reached
through ``AWS_ENDPOINT_URL`` the way operators configure S3-compatible stores.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
from pathlib import Path

import pytest
from deps_helpers import HUB, MODELS

from mlgate.analyzers.core.policy import Verdict
from mlgate.analyzers.core.report import DependencyReport
from mlgate.controller.scanning import scan_target


def adapter(folder: Path, base: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "base_model_name_or_path": base}))
    return folder


def dependency(folder: Path, policy) -> tuple[Verdict, DependencyReport]:
    report = scan_target(folder, policy)
    (dep,) = report.dependencies
    return report.verdict, dep


def leftover_copies() -> set[str]:
    return {n for n in os.listdir(tempfile.gettempdir()) if n.startswith("mlgate-dep-")}


# --- MLflow ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A sqlite tracking/registry store with model ``base``: v1 = template escape (@champion), v2 = plain (@safe)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("deps", artifact_location=(root / "artifacts").as_uri())
    client.create_registered_model("base")
    runs = {}
    for fixture, alias in (("tokenizer-template-escape", "champion"), ("tokenizer-plain", "safe")):
        run = client.create_run(experiment)
        client.log_artifacts(run.info.run_id, str(MODELS / fixture), "model")
        client.set_terminated(run.info.run_id)
        version = client.create_model_version("base", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
        client.set_registered_model_alias("base", alias, version.version)
        runs[fixture] = run.info.run_id
    return uri, runs


@pytest.fixture()
def tracking(registry, monkeypatch):
    uri, runs = registry
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return runs


def test_models_alias_resolves_to_a_version_and_is_scanned(tracking, tmp_path, policy):
    before = leftover_copies()
    verdict, dep = dependency(adapter(tmp_path / "a", "models:/base@champion"), policy)
    assert (dep.kind, dep.resolved, dep.resolved_to) == ("mlflow", True, "models:/base/1")
    assert "alias @champion pointed at version 1" in dep.reason
    assert dep.verdict is Verdict.QUARANTINED and verdict is Verdict.QUARANTINED
    assert {f.rule for f in dep.findings} == {"MLG-TPL-001", "MLG-TPL-002"}
    assert leftover_copies() == before  # the temporary download is gone


def test_models_version_and_runs_uri(tracking, tmp_path, policy):
    verdict, dep = dependency(adapter(tmp_path / "v", "models:/base/2"), policy)
    assert (dep.resolved, dep.verdict, dep.reason) == (True, Verdict.APPROVED, "")
    assert verdict is Verdict.APPROVED
    run_uri = f"runs:/{tracking['tokenizer-template-escape']}/model"
    _, dep = dependency(adapter(tmp_path / "r", run_uri), policy)
    assert dep.resolved and dep.verdict is Verdict.QUARANTINED and dep.digest.startswith("sha256:")


def test_unknown_mlflow_model_is_unresolved(tracking, tmp_path, policy):
    verdict, dep = dependency(adapter(tmp_path / "u", "models:/nope/7"), policy)
    assert not dep.resolved and dep.reason.startswith("MLflow could not") and verdict is Verdict.QUARANTINED


def test_mlflow_without_tracking_uri_is_unresolved(tmp_path, policy, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    _, dep = dependency(adapter(tmp_path / "n", "models:/base/1"), policy)
    assert not dep.resolved and "MLFLOW_TRACKING_URI is not set" in dep.reason


def test_default_resolver_takes_the_controllers_uris(registry, tmp_path, policy, monkeypatch):
    from mlgate.controller.resolver import default_resolver

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri, runs = registry
    resolver = default_resolver(tracking_uri=uri, registry_uri=uri)
    report = scan_target(adapter(tmp_path / "c", "models:/base@safe"), policy, resolver=resolver)
    assert report.dependencies[0].resolved_to == "models:/base/2"
    assert report.dependencies[0].verdict is Verdict.APPROVED
    run_uri = f"runs:/{runs['tokenizer-plain']}/model"
    report = scan_target(adapter(tmp_path / "r", run_uri), policy, resolver=resolver)
    assert report.dependencies[0].verdict is Verdict.APPROVED


# --- S3 -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture()
def bucket(moto_endpoint, monkeypatch):
    import boto3

    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto_endpoint,
    }.items():
        monkeypatch.setenv(key, value)
    s3 = boto3.client("s3", endpoint_url=moto_endpoint)
    name = f"models-{os.urandom(4).hex()}"
    s3.create_bucket(Bucket=name)
    for prefix, source in (("bases/clean/", HUB / "acme--clean-base"), ("bases/pickled/", HUB / "acme--pickled-base")):
        for file in source.iterdir():
            s3.upload_file(str(file), name, prefix + file.name)
    s3.put_object(Bucket=name, Key="trav/../../escaped.txt", Body=b"x")
    return name


def test_s3_prefix_resolves_through_aws_endpoint_url(bucket, tmp_path, policy):
    before = leftover_copies()
    verdict, dep = dependency(adapter(tmp_path / "c", f"s3://{bucket}/bases/clean"), policy)
    assert (dep.kind, dep.resolved, dep.verdict) == ("s3", True, Verdict.APPROVED)
    assert dep.resolved_to == f"s3://{bucket}/bases/clean/" and verdict is Verdict.APPROVED
    verdict, dep = dependency(adapter(tmp_path / "p", f"s3://{bucket}/bases/pickled/"), policy)
    assert dep.resolved and dep.verdict is Verdict.QUARANTINED and verdict is Verdict.QUARANTINED
    assert leftover_copies() == before


def test_s3_single_object_missing_prefix_and_traversal(bucket, tmp_path, policy):
    _, single = dependency(adapter(tmp_path / "s", f"s3://{bucket}/bases/clean/model.safetensors"), policy)
    assert single.resolved and single.verdict is Verdict.APPROVED
    _, missing = dependency(adapter(tmp_path / "m", f"s3://{bucket}/bases/none"), policy)
    assert not missing.resolved and "no object or prefix" in missing.reason
    _, escape = dependency(adapter(tmp_path / "t", f"s3://{bucket}/trav"), policy)
    assert not escape.resolved and "outside the copy folder" in escape.reason
