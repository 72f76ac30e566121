"""A model carrying credentials is quarantined by the controller without the credential reaching a
tag, a log line or a metric."""

from __future__ import annotations

import json
import logging
import pickle

import pytest
from helpers_mlflow import register, signed_tags, wait_for

pytestmark = pytest.mark.integration

TOKEN = "hf_" + "Qw8Er4Ty6Ui2Op0As3Df5Gh7Jk9Lz1Xc4V"
PASSWORD = "S3cret-Passw0rd-db"


def test_secrets_never_leave_the_scan(plain_server, make_controller, prefix, tmp_path, caplog) -> None:
    from prometheus_client import generate_latest

    from mlgate.controller.runtime.metrics import REGISTRY

    caplog.set_level(logging.DEBUG)
    client = plain_server.client()
    name = f"{prefix}leaky"
    files = {
        "config.json": json.dumps({"model_type": "bert", "token": TOKEN}).encode(),
        "features.pkl": pickle.dumps({"dsn": f"postgresql://etl:{PASSWORD}@db.example/features"}),
    }
    version = register(client, name, files, tmp_path)
    make_controller(plain_server.url)
    tags = wait_for(lambda: signed_tags(client, name, version), what="verdict")
    assert tags["mlgate.verdict"] == "quarantined"
    assert "MLG-SEC-002" in tags["mlgate.findings"]
    outputs = {
        "tags": json.dumps(client.get_model_version(name, version).tags),
        "logs": "\n".join(r.getMessage() + json.dumps(r.__dict__, default=str) for r in caplog.records),
        "metrics": generate_latest(REGISTRY).decode(),
    }
    for where, text in outputs.items():
        assert TOKEN not in text and PASSWORD not in text, where
