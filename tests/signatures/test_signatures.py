"""OpenSSF model signatures: models signed by the real ``model-signing`` library (keys made here),
then scanned with ``mlgate scan --policy``. The expectations come from what signing means: every
file covered, by a signer the policy trusts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "controller" / "mlflow" / "demo_models" / "fraud-classifier"  # scikit-learn, as MLflow saves it


def _keypair(folder: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    private, public = folder / f"{name}.pem", folder / f"{name}.pub.pem"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public


def _sign_with_library(model: Path, private: Path) -> None:
    """Sign as a model publisher would, with the model-signing library (signature inside the folder)."""
    from model_signing import hashing, signing

    hashing_config = hashing.Config().set_ignored_paths(paths=["model.sig"], ignore_git_paths=True)
    signing.Config().use_elliptic_key_signer(private_key=private).set_hashing_config(hashing_config).sign(
        model, model / "model.sig"
    )


def _scan(model: Path, policy: Path | None) -> tuple[int, dict]:
    cmd = [sys.executable, "-m", "mlgate.controller", "scan", str(model), "--format", "json"]
    if policy is not None:
        cmd += ["--policy", str(policy)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)["targets"][0]


def _policy(folder: Path, *keys: Path, require: bool = False) -> Path:
    path = folder / "policy.toml"
    listed = ", ".join(json.dumps(str(k)) for k in keys)
    path.write_text(f"[signatures]\nrequire = {str(require).lower()}\ntrusted_public_keys = [{listed}]\n")
    return path


def _rules(report: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for finding in report["findings"]:
        if finding["rule"].startswith("MLG-SIG-"):
            out.setdefault(finding["rule"], []).append(finding["message"])
    return out


@pytest.fixture
def signed(tmp_path) -> tuple[Path, Path, Path]:
    model = tmp_path / "model"
    shutil.copytree(MODEL, model)
    private, public = _keypair(tmp_path, "publisher")
    _sign_with_library(model, private)
    return model, private, public


def test_a_valid_signature_is_approved_and_the_signer_recorded(signed, tmp_path) -> None:
    model, _, public = signed
    status, report = _scan(model, _policy(tmp_path, public))
    assert status == 0 and report["verdict"] == "approved"
    assert report["signature"]["verified"] is True
    assert public.name in report["signature"]["signer"]
    assert "MLG-SIG-006" in _rules(report)


@pytest.mark.parametrize("change", ["byte", "added", "removed"])
def test_tampering_after_signing_is_quarantined_naming_the_file(signed, tmp_path, change: str) -> None:
    model, _, public = signed
    if change == "byte":
        data = bytearray((model / "model.pkl").read_bytes())
        data[-2] ^= 1
        (model / "model.pkl").write_bytes(bytes(data))
        expected = "model.pkl"
    elif change == "added":
        (model / "extra_weights.bin").write_bytes(b"\x00" * 64)
        expected = "extra_weights.bin"
    else:
        (model / "requirements.txt").unlink()
        expected = "requirements.txt"
    status, report = _scan(model, _policy(tmp_path, public))
    assert status == 1 and report["verdict"] == "quarantined"
    mismatches = _rules(report)["MLG-SIG-001"]
    assert any(m.startswith(f"{expected}:") for m in mismatches), mismatches
    severities = {f["severity"] for f in report["findings"] if f["rule"] == "MLG-SIG-001"}
    assert severities == {"critical"}


def test_tampering_is_caught_even_when_no_signer_is_trusted(signed) -> None:
    model, _, _ = signed
    (model / "extra.py").write_text("print('added after signing')\n")
    status, report = _scan(model, None)
    assert status == 1
    assert "MLG-SIG-001" in _rules(report) and "MLG-SIG-007" in _rules(report)


def test_a_signature_by_an_untrusted_key_is_flagged(signed, tmp_path) -> None:
    model, _, _ = signed
    _, other = _keypair(tmp_path, "someone-else")
    status, report = _scan(model, _policy(tmp_path, other))
    assert status == 1
    assert "MLG-SIG-003" in _rules(report)
    assert report["signature"]["verified"] is False


def test_a_forged_signature_naming_a_trusted_key_is_critical(signed, tmp_path) -> None:
    model, _, public = signed
    bundle = json.loads((model / "model.sig").read_text())
    signature = bundle["dsseEnvelope"]["signatures"][0]
    signature["sig"] = signature["sig"][:-8] + ("AAAAAAA=" if not signature["sig"].endswith("AAAAAAA=") else "BBBBBBB=")
    (model / "model.sig").write_text(json.dumps(bundle))
    status, report = _scan(model, _policy(tmp_path, public))
    assert status == 1
    assert "MLG-SIG-002" in _rules(report)


def test_require_quarantines_an_unsigned_model(tmp_path) -> None:
    model = tmp_path / "model"
    shutil.copytree(MODEL, model)
    _, public = _keypair(tmp_path, "team")
    status, report = _scan(model, _policy(tmp_path, public, require=True))
    assert status == 1 and "MLG-SIG-004" in _rules(report)
    not_required = tmp_path / "trust-only.toml"
    not_required.write_text(f"[signatures]\ntrusted_public_keys = [{json.dumps(str(public))}]\n")
    status, report = _scan(model, not_required)  # signers trusted, signature not required: info only
    assert status == 0 and "MLG-SIG-005" in _rules(report)
    status, report = _scan(model, None)  # no signature policy: nothing to say, the report's signature is null
    assert status == 0 and not _rules(report) and report["signature"] is None


def test_a_bad_signature_section_is_one_line(tmp_path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[signatures]\ntrusted_public_keys = ["missing.pem"]\n')
    done = subprocess.run(
        [sys.executable, "-m", "mlgate.controller", "scan", str(MODEL), "--policy", str(policy)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "trusted_public_keys: no such file" in done.stderr


def test_what_mlgate_signs_verifies_with_the_stock_tool(tmp_path) -> None:
    from mlgate.analyzers.signatures import sign_model

    model = tmp_path / "model"
    shutil.copytree(MODEL, model)
    private, public = _keypair(tmp_path, "mlgate")
    sign_model(model, private, tmp_path / "model.mlgate.sig")
    stock = Path(sys.executable).with_name("model_signing")
    done = subprocess.run(
        [
            str(stock),
            "verify",
            "key",
            str(model),
            "--public_key",
            str(public),
            "--signature",
            str(tmp_path / "model.mlgate.sig"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and "Verification succeeded" in done.stdout + done.stderr, done.stdout + done.stderr
