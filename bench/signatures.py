"""Signature verification cost next to the metadata-only scan, on one model of SIZE_MB bytes.

Builds a model folder (a config and one large safetensors file of zeros, plus a small pickle),
signs it with a fresh elliptic-curve key through the model-signing library, then times, best of 3:

* the scan of the same folder with the signature file not looked at (the analysis reads only the
  safetensors header; the report's content digest still hashes every byte today);
* the scan with the signature verified (every byte hashed);
* ``sha256sum`` of the same bytes, the hashing floor.

Usage: python3 bench/signatures.py [SIZE_MB]   (default 1024)
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mlgate.analyzers.core.policy import Policy, SignaturePolicy
from mlgate.controller.resolver import ResolverRegistry
from mlgate.controller.scanning import scan_target


def _model(root: Path, size_mb: int) -> None:
    root.mkdir()
    n = size_mb * (1 << 20) // 4
    header = json.dumps({"w": {"dtype": "F32", "shape": [n], "data_offsets": [0, n * 4]}}).encode()
    with open(root / "model.safetensors", "wb") as out:
        out.write(struct.pack("<Q", len(header)) + header)
        out.truncate(8 + len(header) + n * 4)
    (root / "config.json").write_text('{"model_type": "bench"}')


def _best(fn, runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main(size_mb: int) -> None:
    from model_signing import hashing, signing

    with tempfile.TemporaryDirectory() as tmp:
        root, model = Path(tmp), Path(tmp) / "model"
        _model(model, size_mb)
        key = ec.generate_private_key(ec.SECP256R1())
        (root / "k.pem").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        (root / "k.pub").write_bytes(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        ignore = hashing.Config().set_ignored_paths(paths=["model.sig"])
        signing.Config().use_elliptic_key_signer(private_key=root / "k.pem").set_hashing_config(ignore).sign(
            model, model / "model.sig"
        )
        no_deps = ResolverRegistry({})
        trusted = Policy(signatures=SignaturePolicy(trusted_public_keys=(root / "k.pub",)))
        report = scan_target(model, trusted, resolver=no_deps)
        assert report.signer is not None, [f.message for f in report.findings]
        gib = size_mb / 1024
        metadata = _best(
            lambda: scan_target(model, Policy(signatures=SignaturePolicy(signature_file="none.sig")), resolver=no_deps)
        )
        verified = _best(lambda: scan_target(model, trusted, resolver=no_deps))
        floor = _best(
            lambda: subprocess.run(["sha256sum", str(model / "model.safetensors")], capture_output=True, check=True)
        )
        print(f"model: {size_mb} MiB safetensors + config + model.sig")
        print(f"scan, metadata only (no signature checked):  {metadata:.3f} s")
        print(f"scan with signature verified:                {verified:.3f} s  ({gib / verified:.2f} GiB/s)")
        print(f"sha256sum of the weights file:               {floor:.3f} s  ({gib / floor:.2f} GiB/s)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1024)
