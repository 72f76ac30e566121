"""Suite-wide fixtures: the canary check that proves no malicious payload ever ran, TLS files, xz fixtures.

Every malicious fixture's payload, if executed, creates a file in ``CANARY_DIR``
(``touch /tmp/mlgate-canary/<fixture>``). The suite fails at the end if any exists.

Fixtures that are large but compress well (zero-weight ResNet50 files, keras.applications graphs)
are committed as ``<file>.xz``; ``xz_fixture`` unpacks one into a temporary folder named like its
committed parent folder, so the file keeps its name.
"""

from __future__ import annotations

import datetime
import ipaddress
import lzma
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

pytest_plugins = ["moto_server"]  # moto_endpoint, aws_env: tests/moto_server.py

CANARY_DIR = Path(os.environ.get("MLGATE_CANARY_DIR", "/tmp/mlgate-canary"))


@pytest.fixture(scope="session", autouse=True)
def no_payload_ever_runs():
    """Fail the session if any malicious fixture's payload created its canary file."""
    if CANARY_DIR.exists():
        for stale in CANARY_DIR.iterdir():
            stale.unlink()
    yield
    fired = sorted(p.name for p in CANARY_DIR.iterdir()) if CANARY_DIR.exists() else []
    assert not fired, f"malicious payloads executed during the test session: {fired}"


@pytest.fixture(scope="session")
def xz_fixture(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], Path]:
    """``unpack(folder/name.ext.xz)`` -> ``<tmp>/folder/name.ext`` (once per session); other paths as is."""
    root = tmp_path_factory.mktemp("xz_fixtures")
    done: dict[Path, Path] = {}

    def unpack(path: Path) -> Path:
        if path.suffix != ".xz":
            return path
        if path not in done:
            target = root / f"{len(done)}" / path.parent.name / path.name[: -len(".xz")]
            target.parent.mkdir(parents=True)
            target.write_bytes(lzma.decompress(path.read_bytes()))
            done[path] = target
        return done[path]

    return unpack


# --- TLS ---------------------------------------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA and a serving certificate valid for the webhook Service names, localhost and 127.0.0.1."""
    out = tmp_path_factory.mktemp("tls")
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("mlgate-test-ca"))
        .issuer_name(_name("mlgate-test-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = ["mlgate", "mlgate.mlgate", "mlgate.mlgate.svc", "mlgate.mlgate.svc.cluster.local", "localhost"]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("mlgate.mlgate.svc"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [*(x509.DNSName(n) for n in names), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files = {"ca": out / "ca.crt", "cert": out / "tls.crt", "key": out / "tls.key"}
    files["ca"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return files
