"""MLflow versions scanned where their artifacts live (controller/mlflow/stores.py), never copied.

Three stores, each holding a version with a large sparse safetensors file and a large torch-zip
checkpoint (16 storages, built like ``bench/s3_ranged_reads.py``), plus a small model card:
a local file store, the ``mlflow-artifacts:`` proxy of a real server (HTTP Range), and a real MLflow
server whose artifact root is a moto S3 bucket (ranged GETs). Each is verdicted reading under 1% of
its bytes, with the state directory holding at most a few MB, and a digest equal to the manifest of
the files' sha256 computed here independently. A byte budget below what the scan must read is a
budget finding; a model larger than the budget whose scan reads little is not.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from archives.builders import sparse_weights
from helpers_mlflow import SIGNING_KEY, MlflowServer, free_port, kill_server, register

from mlgate.analyzers.core.digest import manifest_digest
from mlgate.analyzers.core.policy import Policy, Verdict
from mlgate.controller.config.settings import ControllerConfig, MLflowConfig
from mlgate.controller.mlflow.source import SOURCE, MLflowSource, version_key
from mlgate.controller.runtime.interface import ScanRequest

# Size of each large file per store (bench/mlflow_in_place.py runs S3 at 2 GiB too; bench/README.md).
LOCAL_BIG = int(os.environ.get("MLGATE_TEST_LOCAL_BIG", 2 << 30))  # sparse, read in place: costs its hashing
PROXY_BIG = int(os.environ.get("MLGATE_TEST_PROXY_BIG", 2 << 30))  # written sparse, but hashed through the server
S3_BIG = int(os.environ.get("MLGATE_TEST_S3_BIG", 200 << 20))  # uploaded to moto, which holds it in memory
CARD = b"A model card.\n"


def add_big_files(folder: Path, size: int) -> None:
    sparse_weights(folder / "big.safetensors", "safetensors", size)
    sparse_weights(folder / "big.pt", "torch", size)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def disk_usage(root: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in root.rglob("*") if p.is_file()) if root.exists() else 0


def make_source(client, tmp_path: Path, url: str, **settings) -> MLflowSource:
    config = ControllerConfig(
        state_dir=str(tmp_path / "state"),
        signing_key=SIGNING_KEY,
        mlflow=MLflowConfig(tracking_uri=url, **settings),
    )
    return MLflowSource(config, SIGNING_KEY.encode(), Policy(), client=client)


def scan(source: MLflowSource, name: str, version: str):
    scanned = source.scan(ScanRequest(SOURCE, version_key(name, version), "test"))
    assert scanned is not None
    return scanned.report


def check_in_place(
    source: MLflowSource, name: str, version: str, local_copies: Path, tmp_path: Path, size: int
) -> None:
    """The version is approved reading < 1% of its bytes, nothing lands in the state dir, digest bound to content."""
    state = tmp_path / "state"
    peak = [0]
    done = threading.Event()

    def sample() -> None:  # the state directory's disk usage, every 5 ms while the scan runs
        while not done.is_set():
            peak[0] = max(peak[0], disk_usage(state))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    try:
        report = scan(source, name, version)
    finally:
        done.set()
        sampler.join()
    print(
        f"{name}: read {report.bytes_read} of {2 * size} bytes, {time.monotonic() - started:.2f} s, "
        f"state peak {peak[0]}"
    )
    assert peak[0] < 4 << 20
    assert report.verdict is Verdict.APPROVED, report.findings
    assert report.scan_complete
    assert 0 < report.bytes_read < 2 * size // 100, report.bytes_read  # two files of ``size`` bytes
    assert disk_usage(tmp_path / "state") < 4 << 20
    expected = manifest_digest(
        [("CARD.md", hashlib.sha256(CARD).hexdigest())]
        + [(f, sha256_of(local_copies / f)) for f in ("big.safetensors", "big.pt")]
    )
    assert report.digest == expected
    assert source.current_digest(name, version) == expected


def test_local_file_store(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    url = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=url, registry_uri=url)
    exp = client.create_experiment("local", artifact_location=(tmp_path / "artifacts").as_uri())
    name = f"local-{uuid.uuid4().hex[:6]}"
    version = _register_with_big_file(client, name, exp, tmp_path)
    root = Path(client.get_model_version_download_uri(name, version).removeprefix("file://"))
    assert root.is_dir()
    add_big_files(root, LOCAL_BIG)
    source = make_source(client, tmp_path, url)
    check_in_place(source, name, version, root, tmp_path, LOCAL_BIG)

    # The budget is on bytes read: a 16 KiB budget stops the scan (a budget finding), a 1 MiB one does not.
    # (On a second version of 200 MiB files: each scan hashes every byte, and the point is made at that size.)
    name = f"local-{uuid.uuid4().hex[:6]}"
    version = _register_with_big_file(client, name, exp, tmp_path)
    add_big_files(Path(client.get_model_version_download_uri(name, version).removeprefix("file://")), 200 << 20)
    report = scan(make_source(client, tmp_path, url, max_download_bytes=16 << 10), name, version)
    assert report.verdict is Verdict.QUARANTINED
    assert any(f.rule == "MLG-CORE-002" for f in report.findings), report.findings
    report = scan(make_source(client, tmp_path, url, max_download_bytes=1 << 20), name, version)
    assert report.verdict is Verdict.APPROVED, report.findings


def _register_with_big_file(client, name: str, experiment_id: str, tmp_path: Path) -> str:
    src = tmp_path / f"src-{uuid.uuid4().hex[:6]}"
    src.mkdir()
    (src / "CARD.md").write_bytes(CARD)
    run = client.create_run(experiment_id)
    client.log_artifacts(run.info.run_id, str(src), "model")
    client.set_terminated(run.info.run_id)
    client.create_registered_model(name)
    return str(client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id).version)


def test_mlflow_artifacts_proxy(plain_server: MlflowServer, prefix: str, tmp_path: Path) -> None:
    client = plain_server.client()
    name = f"{prefix}proxy"
    version = register(client, name, {"CARD.md": CARD}, tmp_path)
    uri = client.get_model_version_download_uri(name, version)
    assert uri.startswith("mlflow-artifacts:/"), uri
    # the server's --artifacts-destination folder: write the big file there (sparse, no upload)
    folder = plain_server.log.parent / "artifacts" / uri.removeprefix("mlflow-artifacts:/")
    assert (folder / "CARD.md").is_file(), folder
    add_big_files(folder, PROXY_BIG)
    source = make_source(client, tmp_path, plain_server.url)
    check_in_place(source, name, version, folder, tmp_path, PROXY_BIG)


@pytest.fixture
def s3_server(aws_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MlflowServer, str]]:
    """An MLflow server whose artifact root is a moto bucket (clients read and write S3 directly)."""
    import boto3

    bucket = f"mlflow-{uuid.uuid4().hex[:10]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    home = tmp_path_factory.mktemp("mlflow-s3")
    port = free_port()
    env = {**os.environ, **aws_env, "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    cmd += ["--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}"]
    cmd += ["--default-artifact-root", f"s3://{bucket}/root", "--no-serve-artifacts"]
    log = home / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=home)
    server = MlflowServer("s3", f"http://127.0.0.1:{port}", proc, log)
    try:
        deadline = time.monotonic() + 120
        while not server.healthy():
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "mlflow server with an S3 artifact root did not start"
            time.sleep(0.2)
        yield server, bucket
    finally:
        kill_server(server)


def test_s3_artifact_root(s3_server: tuple[MlflowServer, str], tmp_path: Path) -> None:
    import boto3

    server, bucket = s3_server
    client = server.client()
    exp = client.create_experiment(f"s3-{uuid.uuid4().hex[:6]}")
    name = f"s3-{uuid.uuid4().hex[:6]}"
    version = _register_with_big_file(client, name, exp, tmp_path)
    uri = client.get_model_version_download_uri(name, version)
    assert uri.startswith(f"s3://{bucket}/"), uri
    local = tmp_path / "upload"
    add_big_files(local, S3_BIG)
    for f in ("big.safetensors", "big.pt"):
        boto3.client("s3").upload_file(str(local / f), bucket, uri.removeprefix(f"s3://{bucket}/") + f"/{f}")
    source = make_source(client, tmp_path, server.url)
    check_in_place(source, name, version, local, tmp_path, S3_BIG)


def test_proxy_that_ignores_range_is_read_by_streaming(tmp_path: Path) -> None:
    """A server answering 200 with the whole file to a Range request: blocks are cut out of the stream."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from mlflow.utils.rest_utils import MlflowHostCreds

    from mlgate.controller.mlflow.stores import HttpObject
    from mlgate.controller.s3.reader import ReadSession

    data = bytes(range(256)) * 4096  # 1 MiB, every offset distinguishable
    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Range"))
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        session = ReadSession()
        obj = HttpObject(MlflowHostCreds(f"http://127.0.0.1:{server.server_port}"), "/f.bin", len(data), session)
        with obj.open() as stream:
            stream.seek(300_000)
            assert stream.read(10) == data[300_000:300_010]
            stream.seek(len(data) - 5)
            assert stream.read() == data[-5:]
        assert obj.ranges_ignored
        assert seen and all(r and r.startswith("bytes=") for r in seen)
        assert obj.sha256(lambda n: None) == hashlib.sha256(data).hexdigest()
        assert not session.errors
    finally:
        server.shutdown()


def _keypair(folder: Path) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    private, public = folder / "signer.pem", folder / "signer.pub.pem"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public


def _local_version(tmp_path: Path, files: dict[str, bytes]) -> tuple[object, str, str, str, Path]:
    from mlflow import MlflowClient

    url = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=url, registry_uri=url)
    exp = client.create_experiment(f"sig-{uuid.uuid4().hex[:6]}", artifact_location=(tmp_path / "artifacts").as_uri())
    name = f"sig-{uuid.uuid4().hex[:6]}"
    version = _register_with_big_file(client, name, exp, tmp_path)
    root = Path(client.get_model_version_download_uri(name, version).removeprefix("file://"))
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return client, url, name, version, root


def _no_download(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the version was downloaded")

    monkeypatch.setattr(MLflowSource, "_downloaded", refuse)


def test_signed_model_is_verified_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model signed by the model-signing library (model.sig inside) is verified from the digest's
    per-file sha256: approved with the signer recorded, a file changed after signing is MLG-SIG-001,
    and nothing is downloaded."""
    from dataclasses import replace

    from model_signing import hashing, signing

    from mlgate.analyzers.core.policy import SignaturePolicy

    private, public = _keypair(tmp_path)
    client, url, name, version, root = _local_version(tmp_path, {"weights/w.bin": b"\0" * 4096, ".gitignore": b"x"})
    config = hashing.Config().set_ignored_paths(paths=["model.sig"], ignore_git_paths=True)
    signing.Config().use_elliptic_key_signer(private_key=private).set_hashing_config(config).sign(
        root, root / "model.sig"
    )
    _no_download(monkeypatch)
    policy = replace(Policy(), signatures=SignaturePolicy(require=True, trusted_public_keys=(public,)))
    cfg = ControllerConfig(
        state_dir=str(tmp_path / "state"), signing_key=SIGNING_KEY, mlflow=MLflowConfig(tracking_uri=url)
    )
    source = MLflowSource(cfg, SIGNING_KEY.encode(), policy, client=client)
    report = scan(source, name, version)
    assert report.verdict is Verdict.APPROVED, report.findings
    assert report.signer and "signer.pub.pem" in report.signer
    assert [f.rule for f in report.findings if f.rule.startswith("MLG-SIG-")] == ["MLG-SIG-006"]

    (root / "weights" / "w.bin").write_bytes(b"\1" * 4096)  # same size, other content
    (root / "added.txt").write_bytes(b"added after signing")
    report = scan(source, name, version)
    assert report.verdict is Verdict.QUARANTINED
    mismatches = sorted(f.message for f in report.findings if f.rule == "MLG-SIG-001")
    assert len(mismatches) == 2, report.findings
    assert "added.txt" in mismatches[0] and "weights/w.bin" in mismatches[1]


def test_approved_version_is_signed_in_place_and_verifies_with_the_stock_tool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private, public = _keypair(tmp_path)
    client, url, name, version, root = _local_version(tmp_path, {"sub/config.json": b'{"a": 1}'})
    _no_download(monkeypatch)
    source = make_source(client, tmp_path, url, sign_approved_key_file=str(private))
    scanned = source.scan(ScanRequest(SOURCE, version_key(name, version), "test"))
    assert scanned is not None and scanned.report.verdict is Verdict.APPROVED
    signature = scanned.state.model_signature
    assert signature
    (tmp_path / "mlgate.sig").write_bytes(signature)
    stock = Path(sys.executable).with_name("model_signing")
    cmd = [
        str(stock),
        "verify",
        "key",
        str(root),
        "--public_key",
        str(public),
        "--signature",
        str(tmp_path / "mlgate.sig"),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "Verification succeeded" in done.stdout + done.stderr, done.stdout + done.stderr
    (root / "sub" / "config.json").write_bytes(b'{"a": 2}')
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode != 0  # the signature covers the content as scanned


def test_sharded_checkpoint_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An index and four sparse shards in a local store: approved reading each shard's header only;
    the same version with one shard deleted is quarantined for it (MLG-DEP-012)."""
    shards = {f"model-{i:05d}-of-00004.safetensors": f"layers.{i}.weight" for i in range(1, 5)}
    index = {"metadata": {"total_size": 4 * (64 << 20)}, "weight_map": {t: s for s, t in shards.items()}}
    client, url, name, version, root = _local_version(
        tmp_path, {"model.safetensors.index.json": json.dumps(index).encode()}
    )
    for shard in shards:
        sparse_weights(root / shard, "safetensors", 64 << 20)
    _no_download(monkeypatch)
    source = make_source(client, tmp_path, url)
    report = scan(source, name, version)
    assert report.verdict is Verdict.APPROVED, report.findings
    # per shard: its header and the polyglot check's look at the last 64 KiB (the end-of-zip record)
    assert 0 < report.bytes_read < 4 * ((64 << 10) + (16 << 10)), report.bytes_read
    (root / "model-00003-of-00004.safetensors").unlink()
    report = scan(source, name, version)
    assert report.verdict is Verdict.QUARANTINED
    missing = [f for f in report.findings if f.rule == "MLG-DEP-012"]
    assert len(missing) == 1 and "model-00003-of-00004.safetensors" in missing[0].message
