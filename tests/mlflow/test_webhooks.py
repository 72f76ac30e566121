"""MLflow webhooks as hints: real deliveries trigger scans, forged verdict tags are re-verified,
bad deliveries rejected."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid

import pytest
from helpers_mlflow import (
    CLEAN_FILES,
    WEBHOOK_CACHE_TTL_SECONDS,
    WEBHOOK_SECRET,
    malicious_dir,
    metric,
    register,
    signed_tags,
    wait_for,
)

from mlgate.controller.cli.main import main
from mlgate.controller.mlflow.webhooks import expected_signature

pytestmark = pytest.mark.integration

QUIET = {"poll_interval_seconds": 3600.0, "full_resync_seconds": 3600.0}  # only webhooks can trigger work


@pytest.fixture
def webhook(plain_server, prefix, monkeypatch):
    """Register (via the CLI) a webhook to a URL given later; delete it after the test."""
    client = plain_server.client()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", plain_server.url)
    monkeypatch.setenv("MLGATE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    names = []

    def create(url: str) -> None:
        name = f"{prefix}hook"
        assert main(["mlflow", "register-webhook", "--url", url, "--name", name]) == 0
        names.append(name)
        # The server calls the new webhook only once its cached webhook list has expired: an earlier test's
        # version created just before would otherwise leave this test's first event undelivered.
        time.sleep(WEBHOOK_CACHE_TTL_SECONDS + 0.5)

    yield create
    for hook in client.list_webhooks():
        if hook.name in names:
            client.delete_webhook(hook.webhook_id)


def test_webhook_delivery_scans_new_version_and_reverifies_forged_tags(
    plain_server, make_controller, prefix, tmp_path, webhook
):
    client = plain_server.client()
    controller = make_controller(plain_server.url, **QUIET)
    wait_for(controller.runtime.ready, what="first reconcile pass")
    # A version created just before the webhook exists fills the server's webhook cache with an empty list
    # (what an earlier test does in a full run); the fixture's wait is what lets the next event through.
    register(client, f"{prefix}before-hook", CLEAN_FILES, tmp_path)
    webhook(f"{controller.runtime.http.url}/webhooks/mlflow")
    received = metric("mlgate_events_received_total", source="mlflow-webhook")

    name = f"{prefix}hooked"
    scans = metric("mlgate_scans_total", source="mlflow", verdict="quarantined") + 1  # after the first scan
    version = register(client, name, malicious_dir(), tmp_path)
    tags = wait_for(lambda: signed_tags(client, name, version), timeout=30, what="verdict written after the webhook")
    assert tags["mlgate.verdict"] == "quarantined"
    assert metric("mlgate_events_received_total", source="mlflow-webhook") > received

    # The controller's own six tag writes come back as events and must not trigger another scan.
    # (The scan is counted once its record step returns, which may be just after the tags are visible.)
    wait_for(
        lambda: metric("mlgate_scans_total", source="mlflow", verdict="quarantined") >= scans,
        timeout=10,
        what="the first scan counted",
    )
    time.sleep(2.0)
    assert metric("mlgate_scans_total", source="mlflow", verdict="quarantined") == scans

    # Someone forges approval: the tag event makes the controller re-verify and restore the signed verdict.
    client.set_model_version_tag(name, version, "mlgate.verdict", "approved")
    wait_for(
        lambda: metric("mlgate_scans_total", source="mlflow", verdict="quarantined") > scans,
        timeout=30,
        what="rescan after a forged tag",
    )
    tags = wait_for(lambda: signed_tags(client, name, version), timeout=30, what="verdict restored")
    assert tags["mlgate.verdict"] == "quarantined"


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _delivery(body: bytes, secret: str = WEBHOOK_SECRET, stamp: int | None = None, delivery_id: str | None = None):
    delivery_id = delivery_id or str(uuid.uuid4())
    stamp_text = str(int(time.time()) if stamp is None else stamp)
    return {
        "X-MLflow-Delivery-Id": delivery_id,
        "X-MLflow-Timestamp": stamp_text,
        "X-MLflow-Signature": expected_signature(secret.encode(), delivery_id, stamp_text, body),
    }


def test_bad_deliveries_are_rejected_and_counted(plain_server, make_controller, prefix):
    controller = make_controller(plain_server.url, **QUIET)
    url = f"{controller.runtime.http.url}/webhooks/mlflow"
    body = json.dumps(
        {
            "entity": "model_version",
            "action": "created",
            "timestamp": "2026-01-01T00:00:00+00:00",
            "data": {"name": f"{prefix}x", "version": "1"},
        }
    ).encode()

    def rejected(reason: str) -> float:
        return metric("mlgate_events_rejected_total", source="mlflow-webhook", reason=reason)

    before = {r: rejected(r) for r in ("signature", "timestamp", "replay", "malformed")}
    assert _post(url, body, _delivery(body, secret="not-the-secret")) == 401
    assert _post(url, body, {}) == 401
    tampered = _delivery(body)
    assert _post(url, body.replace(b'"1"', b'"2"'), tampered) == 401
    assert _post(url, body, _delivery(body, stamp=int(time.time()) - 3600)) == 401
    good = _delivery(body)
    assert _post(url, body, good) == 200
    assert _post(url, body, good) == 200  # replay: acknowledged, not acted on
    garbage = b"{not json"
    assert _post(url, garbage, _delivery(garbage)) == 400
    assert rejected("signature") - before["signature"] == 3
    assert rejected("timestamp") - before["timestamp"] == 1
    assert rejected("replay") - before["replay"] == 1
    assert rejected("malformed") - before["malformed"] == 1
    assert len(controller.runtime.queue) + len(controller.runtime.results) <= 1  # only the one good delivery queued
