"""The controller signs what it approves (opt-in): the signature it publishes beside an approved
version verifies with the stock ``model_signing verify key`` command; quarantined versions get none."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from helpers_mlflow import CLEAN_FILES, malicious_dir, register, signed_tags, wait_for

pytestmark = pytest.mark.integration


def test_approved_versions_are_signed_and_verify_with_the_stock_tool(plain_server, make_controller, prefix, tmp_path):
    from mlflow.artifacts import download_artifacts

    key = ec.generate_private_key(ec.SECP256R1())
    private, public = tmp_path / "mlgate-signer.pem", tmp_path / "mlgate-signer.pub.pem"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    client = plain_server.client()
    clean, evil = f"{prefix}clean", f"{prefix}evil"
    v_clean = register(client, clean, CLEAN_FILES, tmp_path)
    v_evil = register(client, evil, malicious_dir(), tmp_path)
    make_controller(plain_server.url, sign_approved_key_file=str(private))

    wait_for(lambda: (signed_tags(client, clean, v_clean) or {}).get("mlgate.model_signature"), what="signature tag")
    tags = signed_tags(client, clean, v_clean)
    assert tags["mlgate.verdict"] == "approved"
    model = Path(
        download_artifacts(
            client.get_model_version_download_uri(clean, v_clean),
            dst_path=str(tmp_path / "m"),
            tracking_uri=plain_server.url,
        )
    )
    signature = Path(
        download_artifacts(tags["mlgate.model_signature"], dst_path=str(tmp_path / "s"), tracking_uri=plain_server.url)
    )
    stock = Path(sys.executable).with_name("model_signing")
    cmd = [str(stock), "verify", "key", str(model), "--public_key", str(public), "--signature", str(signature)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "Verification succeeded" in done.stdout + done.stderr, done.stdout + done.stderr

    evil_tags = wait_for(lambda: signed_tags(client, evil, v_evil), what="quarantine verdict")
    assert evil_tags["mlgate.verdict"] == "quarantined"
    assert "mlgate.model_signature" not in evil_tags
