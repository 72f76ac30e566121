"""Planted fake credentials of each kind, in each place a model carries strings, are reported with
the right kind and location and never appear in any output (JSON, text, SARIF, stderr).

The credentials are fakes in the shape each service documents; the files are written by the
libraries that write them for real (json, yaml, pickle, safetensors, h5py, zipfile) or, for GGUF, by
the byte layout the format specifies.
"""

from __future__ import annotations

import json
import pickle
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from safetensors.numpy import save_file

FAKES = {  # value -> the rule a reviewer expects
    "hf_" + "aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3h": "MLG-SEC-002",
    "AKIA" + "QX7RT2ZW9LM4NB3V": "MLG-SEC-001",
    "dapi" + "0f3a9c2e7b1d4e6f8a0b2c4d6e8f0a1b": "MLG-SEC-004",
    "sk-proj-" + "Zq8Xw3Vu6Ts9Rq2Po5Nm8Lk1Ji4Hg7Fe0Dc3Ba6Zy9Xw2Vu5Ts8": "MLG-SEC-005",
}
HF, AWS, DATABRICKS, OPENAI = FAKES
WANDB = "7c1e4b9a2f6d8e0c3b5a7f9e1d3c5b7a9f0e2d4c"
DB_PASSWORD = "Tr0ub4dor-and-3"


def _scan(target: Path, fmt: str = "json") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mlgate.controller", "scan", str(target), "--format", fmt],
        capture_output=True,
        text=True,
        check=False,
    )


def _findings(target: Path) -> list[dict]:
    done = _scan(target)
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)["targets"][0]["findings"]


def _gguf(kvs: dict[str, str]) -> bytes:
    def s(text: str) -> bytes:
        raw = text.encode()
        return struct.pack("<Q", len(raw)) + raw

    body = b"".join(s(k) + struct.pack("<I", 8) + s(v) for k, v in kvs.items())
    out = b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs)) + body
    return out + b"\x00" * (-len(out) % 32)


@pytest.fixture
def leaky_model(tmp_path) -> Path:
    """One model folder with a fake credential in every kind of place a model keeps strings."""
    m = tmp_path / "leaky"
    m.mkdir()
    (m / "config.json").write_text(json.dumps({"model_type": "bert", "hub_token": HF}))
    (m / "MLmodel").write_text(
        yaml.safe_dump({"flavors": {"python_function": {"env": {"AWS_ACCESS_KEY_ID": AWS}, "loader_module": "x"}}})
    )
    (m / "requirements.txt").write_text(f"--extra-index-url https://ml:{DB_PASSWORD}@pypi.internal.example/simple\n")
    (m / "train.py").write_text(f'import os\nos.environ["WANDB_API_KEY"] = "{WANDB}"\n')
    (m / "tokenizer_config.json").write_text(
        json.dumps(
            {"chat_template": "{{ bos_token }}{# " + OPENAI + " #}{% for m in messages %}{{ m.content }}{% endfor %}"}
        )
    )
    with open(m / "pipeline.pkl", "wb") as fh:
        pickle.dump({"db": "postgresql://etl:" + DB_PASSWORD + "@10.0.0.5/features", "token": DATABRICKS}, fh)
    save_file({"w": np.zeros(4, dtype=np.float32)}, str(m / "model.safetensors"), metadata={"hf_token": HF})
    (m / "model.gguf").write_bytes(
        _gguf({"general.name": "leaky", "general.source.url": f"https://{AWS}@models.example"})
    )
    with h5py.File(m / "keras.h5", "w") as h5:
        h5.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {"name": OPENAI}})
    with zipfile.ZipFile(m / "assets.zip", "w") as zf:
        zf.writestr("notes/credentials.txt", f"prod key {DATABRICKS}\n")
    (m / "id_rsa").write_text(
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7yn3bRHQ5FHMQ==\n-----END RSA PRIVATE KEY-----\n"
    )
    return m


def test_each_planted_credential_is_found_where_it_sits(leaky_model) -> None:
    findings = [f for f in _findings(leaky_model) if f["rule"].startswith("MLG-SEC-")]
    got = {(f["rule"], f["location"].split("@")[0].split(":")[0].split("#")[0]) for f in findings}
    expected = {
        ("MLG-SEC-002", "config.json"),
        ("MLG-SEC-001", "MLmodel"),
        ("MLG-SEC-007", "requirements.txt"),
        ("MLG-SEC-003", "train.py"),
        ("MLG-SEC-005", "tokenizer_config.json"),
        ("MLG-SEC-007", "pipeline.pkl"),
        ("MLG-SEC-004", "pipeline.pkl"),
        ("MLG-SEC-002", "model.safetensors"),
        ("MLG-SEC-001", "model.gguf"),
        ("MLG-SEC-005", "keras.h5"),
        ("MLG-SEC-004", "assets.zip!notes/credentials.txt"),
        ("MLG-SEC-006", "id_rsa"),
    }
    assert expected <= got, sorted(expected - got)
    assert all(f["fingerprint"].startswith("sha256:") for f in findings)


def test_no_output_format_ever_contains_a_secret(leaky_model) -> None:
    secrets = [*FAKES, WANDB, DB_PASSWORD]
    for fmt in ("json", "text", "sarif"):
        done = _scan(leaky_model, fmt)
        assert done.returncode == 1, done.stderr
        for secret in secrets:
            assert secret not in done.stdout and secret not in done.stderr, (fmt, secret[:6])


def test_a_loader_read_url_is_a_network_indicator_and_a_raw_ip_is_medium(leaky_model) -> None:
    net = {(f["rule"], f["severity"]) for f in _findings(leaky_model) if f["rule"].startswith("MLG-NET-")}
    assert ("MLG-NET-002", "medium") in net  # postgresql://...@10.0.0.5 in the pickle
    assert ("MLG-NET-001", "info") in net  # the GGUF source URL


def test_a_model_card_url_is_not_a_network_indicator(tmp_path) -> None:
    m = tmp_path / "card"
    m.mkdir()
    (m / "README.md").write_text("See https://huggingface.co/bert-base-uncased and http://192.168.1.1/docs\n")
    (m / "config.json").write_text('{"model_type": "bert"}')
    assert not [f for f in _findings(m) if f["rule"].startswith("MLG-NET-")]


def test_the_secrets_policy_sets_severity_allowlists_and_can_stop_quarantining(leaky_model, tmp_path) -> None:
    first = next(f for f in _findings(leaky_model) if f["rule"] == "MLG-SEC-002")
    policy = tmp_path / "policy.toml"
    policy.write_text(f'[secrets]\nallow = ["{first["fingerprint"]}"]\nseverity = {{ "MLG-SEC-001" = "low" }}\n')
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlgate.controller",
            "scan",
            str(leaky_model),
            "--format",
            "json",
            "--policy",
            str(policy),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    findings = json.loads(done.stdout)["targets"][0]["findings"]
    assert all(f.get("suppressed") for f in findings if f.get("fingerprint") == first["fingerprint"])
    assert {f["severity"] for f in findings if f["rule"] == "MLG-SEC-001"} == {"low"}
    policy.write_text("[secrets]\nquarantine = false\n")
    clean = tmp_path / "clean-but-leaky"
    clean.mkdir()
    (clean / "config.json").write_text(json.dumps({"model_type": "bert", "hub_token": HF}))
    assert _scan(clean).returncode == 1
    done = subprocess.run(
        [sys.executable, "-m", "mlgate.controller", "scan", str(clean), "--policy", str(policy)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout


def test_hashes_and_vocabularies_stay_quiet(tmp_path) -> None:
    m = tmp_path / "benign"
    m.mkdir()
    (m / "config.json").write_text(
        json.dumps({"_commit_hash": "4b825dc642cb6eb9a060e54bf8d69288fbee4904", "model_type": "bert", "vocab_size": 30})
    )
    (m / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "the", "##ing", "token", "password"] * 50))
    assert not [f for f in _findings(m) if f["rule"].startswith(("MLG-SEC-", "MLG-NET-002"))]
