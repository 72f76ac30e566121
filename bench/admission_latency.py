"""Admission webhook latency over real TLS with real verdict sources.

Starts the admission server on loopback with a real MLflow registry (sqlite store through the real client)
and a real moto S3 server (its own process), then sends AdmissionReviews for three workload shapes and prints latency
percentiles and throughput, sequentially and with concurrent clients.

    python3 bench/admission_latency.py [--requests 300] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from mlflow import MlflowClient

from mlgate.controller.admission.review import AdmissionPolicy
from mlgate.controller.admission.server import AdmissionWebhook, serve
from mlgate.controller.admission.verdict_lookup import RegistryVerdicts
from mlgate.controller.s3.actions import object_name
from mlgate.controller.verdicts.signing import sign_verdict

KEY = b"bench-signing-key-0123456789abcdef"
DIGEST = "sha256:" + "cd" * 32


def _certs(root: Path) -> tuple[Path, Path, Path]:
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")])
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(leaf)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = root / "ca.crt", root / "tls.crt", root / "tls.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


def _start_moto() -> subprocess.Popen:
    """moto in its own process (as in production, S3 is not competing for this process's GIL)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    proc.port = port  # type: ignore[attr-defined]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto server did not start")


def _review(spec: dict, kind: str = "InferenceService", group: str = "serving.kserve.io") -> bytes:
    gvk = {"group": group, "version": "v1beta1", "kind": kind}
    return json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": str(uuid.uuid4()),
                "kind": gvk,
                "requestKind": gvk,
                "operation": "CREATE",
                "namespace": "team",
                "name": "m",
                "object": {
                    "apiVersion": f"{group}/v1beta1",
                    "kind": kind,
                    "metadata": {"name": "m", "namespace": "team"},
                    "spec": spec,
                },
            },
        }
    ).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mlgate-bench-"))
    ca, cert, key = _certs(root)

    uri = f"sqlite:///{root / 'mlflow.db'}"
    registry = MlflowClient(tracking_uri=uri, registry_uri=uri)
    registry.create_registered_model("fraud")
    (root / "src").mkdir()
    registry.create_model_version("fraud", source=str(root / "src"))
    for k, v in {
        "mlgate.verdict": "approved",
        "mlgate.digest": DIGEST,
        "mlgate.signature": sign_verdict(KEY, "fraud", "1", DIGEST, "approved"),
    }.items():
        registry.set_model_version_tag("fraud", "1", k, v)

    moto = _start_moto()
    host, port = "127.0.0.1", moto.port
    s3 = boto3.client(
        "s3",
        endpoint_url=f"http://{host}:{port}",
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )
    s3.create_bucket(Bucket="models")
    for i in range(10):
        object_key = f"team/fraud/part-{i}.bin"
        etag = s3.put_object(Bucket="models", Key=object_key, Body=b"x" * 64)["ETag"].strip('"')
        signature = sign_verdict(KEY, object_name("models", object_key), etag, DIGEST, "approved")
        tags = {"mlgate.verdict": "approved", "mlgate.digest": DIGEST, "mlgate.signature": signature}
        s3.put_object_tagging(
            Bucket="models", Key=object_key, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]}
        )

    server = serve("127.0.0.1", 0, cert, key, AdmissionWebhook(RegistryVerdicts(registry, KEY, s3), AdmissionPolicy()))
    context = ssl.create_default_context(cafile=str(ca))
    shapes = {
        "no model reference (Deployment)": _review({"template": {"metadata": {}}}, "Deployment", "apps"),
        "models:/fraud/1 (signed verdict)": _review({"predictor": {"sklearn": {"storageUri": "models:/fraud/1"}}}),
        "s3:// prefix, 10 signed objects": _review(
            {"predictor": {"sklearn": {"storageUri": "s3://models/team/fraud/"}}}
        ),
    }

    def one(body: bytes) -> float:
        conn = http.client.HTTPSConnection("localhost", server.port, context=context, timeout=10)
        started = time.perf_counter()
        conn.request("POST", "/validate", body=body, headers={"Content-Type": "application/json"})
        answer = json.loads(conn.getresponse().read())
        elapsed = time.perf_counter() - started
        conn.close()
        assert answer["response"]["allowed"] is True, answer
        return elapsed

    print(f"{'shape':36} {'clients':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'req/s':>7}")
    for label, body in shapes.items():
        for clients in (1, args.concurrency):
            one(body)  # warm-up
            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=clients) as pool:
                times = sorted(pool.map(one, [body] * args.requests))
            wall = time.perf_counter() - started
            q = statistics.quantiles(times, n=100)
            print(
                f"{label:36} {clients:>7} {q[49] * 1000:8.1f} {q[94] * 1000:8.1f} {q[98] * 1000:8.1f} "
                f"{args.requests / wall:7.0f}"
            )
    server.stop()
    moto.terminate()
    moto.wait(timeout=10)


if __name__ == "__main__":
    main()
