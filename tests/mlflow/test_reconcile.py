"""Reconcile against a real MLflow server: signed verdict tags, forged tags rescanned, restarts idempotent."""

from __future__ import annotations

import hashlib
import re

import pytest
from helpers_mlflow import CLEAN_FILES, SIGNING_KEY, malicious_dir, metric, register, signed_tags, wait_for

from mlgate.controller.verdicts.signing import verify_verdict

pytestmark = pytest.mark.integration

KEY = SIGNING_KEY.encode()


def _tags(client, name, version):
    return client.get_model_version(name, version).tags


def _expected_digest(files: dict[str, bytes]) -> str:
    """docs/contracts.md §2 digest computed independently: sha256 over sorted '<path>\\t<sha256>\\n' lines."""
    lines = "".join(f"{path}\t{hashlib.sha256(data).hexdigest()}\n" for path, data in sorted(files.items()))
    return "sha256:" + hashlib.sha256(lines.encode()).hexdigest()


def test_clean_and_malicious_versions_get_signed_verdicts(plain_server, make_controller, prefix, tmp_path):
    client = plain_server.client()
    clean, evil = f"{prefix}clean", f"{prefix}evil"
    v_clean = register(client, clean, CLEAN_FILES, tmp_path)
    v_evil = register(client, evil, malicious_dir(), tmp_path)
    make_controller(plain_server.url)

    tags = wait_for(lambda: signed_tags(client, clean, v_clean), what="clean verdict")
    assert tags["mlgate.verdict"] == "approved"
    assert tags["mlgate.digest"] == _expected_digest(CLEAN_FILES)
    assert verify_verdict(KEY, clean, v_clean, tags["mlgate.digest"], "approved", tags["mlgate.signature"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", tags["mlgate.scanned_at"])
    assert tags["mlgate.scanner"].startswith("mlgate ")
    assert tags["mlgate.findings"].startswith("critical=0 high=0 medium=0 low=0 info=0")

    tags = wait_for(lambda: signed_tags(client, evil, v_evil), what="malicious verdict")
    assert tags["mlgate.verdict"] == "quarantined"
    assert verify_verdict(KEY, evil, v_evil, tags["mlgate.digest"], "quarantined", tags["mlgate.signature"])
    assert "; top: MLG-" in tags["mlgate.findings"]


def test_forged_verdicts_are_rescanned(plain_server, make_controller, prefix, tmp_path):
    client = plain_server.client()
    name = f"{prefix}forged"
    unsigned = register(client, name, malicious_dir(), tmp_path)
    badsig = register(client, name, malicious_dir(), tmp_path)
    client.set_model_version_tag(name, unsigned, "mlgate.verdict", "approved")
    client.set_model_version_tag(name, unsigned, "mlgate.digest", "sha256:" + "0" * 64)
    for key, value in (
        ("mlgate.verdict", "approved"),
        ("mlgate.digest", "sha256:" + "1" * 64),
        ("mlgate.signature", "0" * 64),
    ):
        client.set_model_version_tag(name, badsig, key, value)
    make_controller(plain_server.url)

    for version in (unsigned, badsig):
        tags = wait_for(lambda v=version: signed_tags(client, name, v), what=f"version {version} rescanned")
        assert tags["mlgate.verdict"] == "quarantined"


def test_signature_from_another_version_does_not_carry_over(plain_server, make_controller, prefix, tmp_path):
    """Copying every verdict tag of an approved version onto a malicious one gets it rescanned."""
    client = plain_server.client()
    name = f"{prefix}copy"
    good = register(client, name, CLEAN_FILES, tmp_path)
    controller = make_controller(plain_server.url)
    approved = wait_for(lambda: signed_tags(client, name, good), what="clean verdict")
    controller.runtime.stop()
    evil = register(client, name, malicious_dir(), tmp_path)
    for key, value in approved.items():
        if key.startswith("mlgate."):
            client.set_model_version_tag(name, evil, key, value)
    make_controller(plain_server.url)
    tags = wait_for(lambda: signed_tags(client, name, evil), what="copied verdict rescanned")
    assert tags["mlgate.verdict"] == "quarantined"


def test_restart_rescans_nothing(plain_server, make_controller, prefix, tmp_path):
    client = plain_server.client()
    names = [f"{prefix}a", f"{prefix}b"]
    versions = [
        register(client, names[0], CLEAN_FILES, tmp_path),
        register(client, names[1], malicious_dir(), tmp_path),
    ]
    first = make_controller(plain_server.url)
    before = [
        wait_for(lambda n=n, v=v: signed_tags(client, n, v), what="first verdicts")
        for n, v in zip(names, versions, strict=True)
    ]
    wait_for(lambda: first.runtime.queue.wait_idle(0.1), what="first controller idle")
    first.runtime.stop()

    scans = sum(metric("mlgate_scans_total", source="mlflow", verdict=v) for v in ("approved", "quarantined", "error"))
    second = make_controller(plain_server.url)
    wait_for(second.runtime.ready, what="second controller ready")
    # Let it run several reconcile passes (0.5 s apart, full resync every 2 s).
    wait_for(lambda: metric("mlgate_last_successful_sync_timestamp_seconds", source="mlflow") > 0, what="a sync")
    import time

    time.sleep(3.0)
    after = [_tags(client, n, v) for n, v in zip(names, versions, strict=True)]
    assert after == before  # same scanned_at: nothing was rewritten
    assert (
        sum(metric("mlgate_scans_total", source="mlflow", verdict=v) for v in ("approved", "quarantined", "error"))
        == scans
    )


def test_versions_whose_scan_reads_past_the_byte_budget_are_quarantined(
    plain_server, make_controller, prefix, tmp_path
):
    client = plain_server.client()
    name = f"{prefix}big"
    version = register(client, name, {"weights.txt": b"0" * 4096}, tmp_path)
    make_controller(plain_server.url, max_download_bytes=1024)
    tags = wait_for(lambda: signed_tags(client, name, version), what="budget verdict")
    assert tags["mlgate.verdict"] == "quarantined"
    assert tags["mlgate.digest"].startswith("sha256:")  # read in place: the verdict is still bound to content
    assert "top: MLG-CORE-002" in tags["mlgate.findings"]
    assert not list((tmp_path / "state" / "work").glob("*"))  # nothing left on disk
