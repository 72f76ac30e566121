"""MLflow controller throughput: 200 versions registered at once, and webhook-to-tag latency.

Starts a real ``mlflow server`` (sqlite, ``--workers 1``, job execution off,
webhooks allowed to loopback http) in a temp dir, runs the controller in-process
with its webhook registered, then:

1. registers ``--versions`` small model versions at once (half a clean text model,
   half the demo pickle whose payload would touch a canary) and reports the time
   until every one carries a validly signed verdict;
2. registers ``--latency-samples`` more versions one at a time and reports the
   time from ``create_model_version`` returning to the signature tag being
   readable (median, p95).

    python3 bench/mlflow_throughput.py [--versions 200] [--latency-samples 20] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

SIGNING_KEY = "bench-signing-key-0123456789abcdef"
WEBHOOK_SECRET = "bench-webhook-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home: Path) -> tuple[subprocess.Popen, str]:
    from cryptography.fernet import Fernet

    port = free_port()
    env = dict(
        os.environ,
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
        MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS="true",
        MLFLOW_WEBHOOK_ALLOWED_SCHEMES="http,https",
        MLFLOW_WEBHOOK_CACHE_TTL="1",
        MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY=Fernet.generate_key().decode(),
    )
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{home / 'mlflow.db'}",
        "--artifacts-destination",
        str(home / "artifacts"),
    ]
    log = open(home / "server.log", "wb")  # stays open as long as the server runs
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=home)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return proc, url
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.2)
    stop_server(proc)
    raise SystemExit(f"mlflow server did not start; see {home / 'server.log'}")


def stop_server(proc: subprocess.Popen) -> None:
    import psutil

    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
    for child in children:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass


def verdicted(client, prefix: str, key: bytes) -> set[tuple[str, str]]:
    from mlgate.controller.verdicts.tags import check_verdict

    done = set()
    token = None
    while True:
        page = client.search_model_versions(f"name LIKE '{prefix}%'", max_results=1000, page_token=token)
        for mv in page:
            if check_verdict(key, mv.name, str(mv.version), mv.tags).signed is not None:
                done.add((mv.name, str(mv.version)))
        token = page.token
        if not token:
            return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=200)
    parser.add_argument("--latency-samples", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from mlflow import MlflowClient

    from mlgate.analyzers.core.policy import Policy
    from mlgate.controller.cli.controller import build_controller
    from mlgate.controller.cli.main import main as mlgate_main
    from mlgate.controller.config.settings import ControllerConfig, HttpConfig, MLflowConfig, WebhookConfig
    from mlgate.controller.mlflow.demo import demo_model_dir
    from mlgate.controller.runtime.logging_json import configure

    configure(level=40)  # errors only: the bench prints its own figures
    key = SIGNING_KEY.encode()
    with tempfile.TemporaryDirectory(prefix="mlgate-bench-") as tmp:
        home = Path(tmp)
        t0 = time.monotonic()
        proc, url = start_server(home)
        print(f"mlflow server up in {time.monotonic() - t0:.1f} s ({url})")
        try:
            client = MlflowClient(tracking_uri=url, registry_uri=url)
            # One run holds both models once; every version points at one of them.
            src = home / "src"
            (src / "clean").mkdir(parents=True)
            (src / "clean" / "README.txt").write_text("A tiny model card.\n")
            (src / "clean" / "weights.txt").write_text("0.25 0.5 0.75\n")
            evil = src / "evil"
            evil.mkdir()
            for f in demo_model_dir("churn-pickle").iterdir():
                (evil / f.name).write_bytes(f.read_bytes())
            exp = client.create_experiment("bench")
            run = client.create_run(exp)
            client.log_artifacts(run.info.run_id, str(src), "models")
            client.set_terminated(run.info.run_id)

            config = ControllerConfig(
                state_dir=str(home / "state"),
                signing_key=SIGNING_KEY,
                workers=args.workers,
                mlflow=MLflowConfig(tracking_uri=url, poll_interval_seconds=10.0),
                http=HttpConfig(port=0),
                webhook=WebhookConfig(secret=WEBHOOK_SECRET),
            )
            controller = build_controller(config, key, Policy())
            controller.runtime.start()
            while not controller.runtime.ready():
                time.sleep(0.05)
            os.environ.update(MLFLOW_TRACKING_URI=url, MLGATE_WEBHOOK_SECRET=WEBHOOK_SECRET)
            assert (
                mlgate_main(["mlflow", "register-webhook", "--url", f"{controller.runtime.http.url}/webhooks/mlflow"])
                == 0
            )
            time.sleep(1.5)  # MLFLOW_WEBHOOK_CACHE_TTL

            models = 20
            for i in range(models):
                client.create_registered_model(f"burst-{i:02d}")
            start = time.monotonic()
            for i in range(args.versions):
                kind = "clean" if i % 2 == 0 else "evil"
                client.create_model_version(
                    f"burst-{i % models:02d}", f"{run.info.artifact_uri}/models/{kind}", run_id=run.info.run_id
                )
            registered = time.monotonic() - start
            while len(verdicted(client, "burst-", key)) < args.versions:
                time.sleep(0.1)
            total = time.monotonic() - start
            print(
                f"{args.versions} versions: registered in {registered:.1f} s; every one verdicted "
                f"{total:.1f} s after the first registration ({args.versions / total:.1f} versions/s, "
                f"{args.workers} workers)"
            )

            client.create_registered_model("latency")
            samples = []
            for _ in range(args.latency_samples):
                mv = client.create_model_version(
                    "latency", f"{run.info.artifact_uri}/models/clean", run_id=run.info.run_id
                )
                created = time.monotonic()
                version = str(mv.version)
                while ("latency", version) not in verdicted(client, "latency", key):
                    time.sleep(0.01)
                samples.append(time.monotonic() - created)
                time.sleep(0.2)
            samples.sort()
            p95 = samples[min(len(samples) - 1, int(round(0.95 * (len(samples) - 1))))]
            print(
                f"webhook-to-tag latency over {len(samples)} versions: "
                f"median {statistics.median(samples) * 1000:.0f} ms, "
                f"p95 {p95 * 1000:.0f} ms"
            )
            controller.runtime.stop()
        finally:
            stop_server(proc)


if __name__ == "__main__":
    main()
