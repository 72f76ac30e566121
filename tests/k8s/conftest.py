"""Fixtures for the Kubernetes area (the TLS pair is in tests/conftest.py): a real MLflow registry (sqlite store
through the real client), a real moto S3 server with tagged objects, and AdmissionReview builders."""

from __future__ import annotations

import urllib.parse
import uuid
from typing import Any

import boto3
import pytest
from k8s_helpers import DIGEST, OTHER_KEY, SIGNING_KEY, signed_tags

from mlgate.controller.s3.object_tags import object_name
from mlgate.controller.verdicts.signing import sign_verdict

# --- MLflow registry ---------------------------------------------------------------------------


def _tag_version(client: Any, name: str, version: str, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A real MLflow registry (sqlite store, real client) holding one model version per verdict case.

    fraud/1 approved (signed)      fraud/2 quarantined (signed)    fraud/3 never scanned
    fraud/4 "approved" signed with another key (forged)            fraud/5 approved tag, signature stripped
    aliases: @champion -> 1, @challenger -> 2
    """
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("fraud")
    for _ in range(5):
        source = root / "artifacts" / uuid.uuid4().hex
        source.mkdir(parents=True)
        client.create_model_version("fraud", source=str(source))
    _tag_version(client, "fraud", "1", signed_tags("fraud", "1", "approved"))
    _tag_version(
        client, "fraud", "2", {**signed_tags("fraud", "2", "quarantined"), "mlgate.findings": "critical=1 MLG-PKL-001"}
    )
    _tag_version(client, "fraud", "4", signed_tags("fraud", "4", "approved", key=OTHER_KEY))
    _tag_version(client, "fraud", "5", {"mlgate.verdict": "approved", "mlgate.digest": DIGEST})
    client.set_registered_model_alias("fraud", "champion", "1")
    client.set_registered_model_alias("fraud", "challenger", "2")
    return client


# --- S3 (moto server) --------------------------------------------------------------------------


def _put(
    client: Any,
    key: str,
    body: bytes,
    verdict: str | None = None,
    sign_key: bytes = SIGNING_KEY,
    tags_of: str | None = None,
) -> dict[str, str]:
    """Upload one object and tag it as the S3 watcher does (signature over s3://bucket/key and its ETag).

    ``tags_of`` signs for another object's key instead (tags copied onto different content)."""
    etag = client.put_object(Bucket="models", Key=key, Body=body)["ETag"].strip('"')
    if verdict is None:
        return {}
    name = object_name("models", tags_of or key)
    if tags_of:
        etag = client.head_object(Bucket="models", Key=tags_of)["ETag"].strip('"')
    tags = {
        "mlgate.verdict": verdict,
        "mlgate.digest": DIGEST,
        "mlgate.scanned_at": "2026-01-01T00:00:00Z",
        "mlgate.signature": sign_verdict(sign_key, name, etag, DIGEST, verdict),
    }
    client.put_object_tagging(
        Bucket="models", Key=key, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]}
    )
    return tags


@pytest.fixture(scope="session")
def s3_client() -> Any:
    """A boto3 client talking to a real moto server on loopback, with the objects above."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    client = boto3.client(
        "s3",
        endpoint_url=f"http://{host}:{port}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket="models")
    _put(client, "single/model.pkl", b"approved single file", "approved")
    _put(client, "single/model.pkl.bak", b"never downloaded when the exact key is served")
    _put(client, "team/fraud/model.pkl", b"approved weights", "approved")
    _put(client, "team/fraud/config.json", b"{}", "approved")
    _put(client, "team/fraud/", b"")  # a folder marker: never downloaded
    _put(client, "team/fraud-old/evil.pkl", b"evil", "quarantined")  # shares the raw prefix team/fraud
    _put(client, "mixed/ok.bin", b"ok", "approved")
    _put(client, "mixed/evil.pkl", b"evil", "quarantined")
    _put(client, "raw/x.pkl", b"never scanned")
    _put(client, "forged/model.pkl", b"attacker content", "approved", sign_key=OTHER_KEY)
    _put(client, "copied/model.pkl", b"attacker content", "approved", tags_of="single/model.pkl")
    old_tags = _put(client, "changed/model.pkl", b"scanned content", "approved")
    client.put_object(
        Bucket="models",
        Key="changed/model.pkl",
        Body=b"replaced after the scan",
        Tagging=urllib.parse.urlencode(old_tags),
    )  # same tags, new content
    yield client
    server.stop()
