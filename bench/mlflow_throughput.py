"""MLflow controller throughput: 200 versions registered at once, webhook-to-tag latency, per-phase cost.

Starts a real ``mlflow server`` (sqlite, ``--workers 1`` unless ``--server-workers``, job execution
off, webhooks allowed to loopback http) in a temp dir, runs the controller in-process with its
webhook registered, then:

1. registers ``--versions`` small model versions at once (half a clean text model,
   half the demo pickle whose payload would touch a canary) and reports the time
   until every one carries a validly signed verdict;
2. registers ``--latency-samples`` more versions one at a time and reports the
   time from ``create_model_version`` returning to the signature tag being
   readable (median, p95);
3. prints where a version's time goes: every HTTP request the controller makes, by kind
   (calls and milliseconds per version), the scan's own CPU, the webhook deliveries it
   receives, and the MLflow server's CPU per request it served;
4. measures the server alone: sequential ``get_model_version`` and ``set_model_version_tag``
   calls (wall time per call, server CPU per call).

Completion is observed in the controller process (the moment the signature write of a version
returns, i.e. the moment it becomes readable) and then checked once against the registry: the bench
no longer polls the single-worker server while it measures (``--poll`` restores the old polling
loop, which searched the whole burst every 0.1 s on the same server).

    python3 bench/mlflow_throughput.py [--versions 200] [--latency-samples 20] [--workers 4]
        [--server-workers 1] [--poll]
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

SIGNING_KEY = "bench-signing-key-0123456789abcdef"
WEBHOOK_SECRET = "bench-webhook-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home: Path, workers: int) -> tuple[subprocess.Popen, str]:
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
        str(workers),
        "--backend-store-uri",
        f"sqlite:///{home / 'mlflow.db'}",
        "--artifacts-destination",
        str(home / "artifacts"),
    ]
    log = open(home / "server.log", "wb")  # stays open as long as the server runs
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=home)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
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


def server_cpu(proc: subprocess.Popen) -> float:
    """CPU seconds (user + system) of the server and every process under it."""
    import psutil

    total = 0.0
    try:
        root = psutil.Process(proc.pid)
        for p in [root, *root.children(recursive=True)]:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
    except psutil.NoSuchProcess:
        pass
    return total


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


def wait_verdicted(
    client,
    prefix: str,
    key: bytes,
    expected: set[tuple[str, str]],
    timeout: float,
    interval: float = 0.5,
    on_poll: Callable[[set[tuple[str, str]]], None] | None = None,
) -> set[tuple[str, str]]:
    """Poll the registry until every version of ``expected`` carries a validly signed verdict, or ``timeout``.

    Returns the verdicted ones among ``expected`` (all of them unless the time ran out); ``on_poll`` sees
    them after every poll (the scale bench kills a process from there).
    """
    deadline = time.monotonic() + timeout
    while True:
        done = verdicted(client, prefix, key) & expected
        if len(done) == len(expected) or time.monotonic() >= deadline:
            return done
        if on_poll is not None:
            on_poll(done)
        time.sleep(interval)


def seed_run(client, home: Path, experiment: str) -> Any:
    """One run holding two models under ``models/``: ``clean`` (a text card and weights) and ``evil`` (the demo
    pickle whose payload would touch a canary file); every bench version points at one of them."""
    from mlgate.controller.mlflow.demo import demo_model_dir

    src = home / "src"
    (src / "clean").mkdir(parents=True)
    (src / "clean" / "README.txt").write_text("A tiny model card.\n")
    (src / "clean" / "weights.txt").write_text("0.25 0.5 0.75\n")
    (src / "evil").mkdir()
    for f in demo_model_dir("churn-pickle").iterdir():
        (src / "evil" / f.name).write_bytes(f.read_bytes())
    run = client.create_run(client.create_experiment(experiment))
    client.log_artifacts(run.info.run_id, str(src), "models")
    client.set_terminated(run.info.run_id)
    return run


# -- profiling (in the controller's process: wrappers, no change to the controller) --------------------


class Profile:
    """HTTP requests the controller makes, by kind; the scan's CPU; webhook deliveries received."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: collections.Counter[str] = collections.Counter()
        self.seconds: collections.Counter[str] = collections.Counter()
        self.local = threading.local()
        self.bench_threads: set[int] = set()
        self.recorded: dict[tuple[str, str], float] = {}
        self.recorded_event = threading.Condition(self.lock)

    def add(self, kind: str, seconds: float) -> None:
        with self.lock:
            self.calls[kind] += 1
            self.seconds[kind] += seconds

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()
            self.seconds.clear()

    def snapshot(self) -> tuple[collections.Counter[str], collections.Counter[str]]:
        with self.lock:
            return collections.Counter(self.calls), collections.Counter(self.seconds)


def request_kind(method: str, url: str, headers: Any) -> str:
    path = urlsplit(url).path
    if "/mlflow-artifacts/artifacts" in path:
        if method == "PUT":
            return "artifact upload (report)"
        if path.rstrip("/").endswith("/mlflow-artifacts/artifacts"):
            return "artifact listing"
        return "artifact read (range)" if headers and "Range" in headers else "artifact read (whole, hash)"
    tail = path.split("/api/2.0/mlflow/")[-1]
    return {
        "model-versions/get": "get version",
        "model-versions/get-download-uri": "get download URI",
        "model-versions/set-tag": "tag write",
        "model-versions/delete-tag": "tag delete",
        "model-versions/search": "search versions",
        "registered-models/get": "get registered model",
        "registered-models/search": "search models",
        "runs/get": "get run (report)",
    }.get(tail, f"{method} {tail}")


def install_profile(profile: Profile) -> None:
    import requests

    import mlgate.controller.mlflow.source as source_module
    from mlgate.controller.mlflow.source import MLflowSource
    from mlgate.controller.mlflow.webhooks import WebhookReceiver

    original_request = requests.Session.request

    def request(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if threading.get_ident() in profile.bench_threads:
            return original_request(self, method, url, *args, **kwargs)
        started = time.perf_counter()
        try:
            return original_request(self, method, url, *args, **kwargs)
        finally:
            elapsed = time.perf_counter() - started
            profile.add(request_kind(method.upper(), url, kwargs.get("headers")), elapsed)
            inside = getattr(profile.local, "http_in_scan", None)
            if inside is not None:
                profile.local.http_in_scan = inside + elapsed

    requests.Session.request = request  # type: ignore[method-assign]

    original_scan = source_module.scan_artifacts

    def scan_artifacts(*args: Any, **kwargs: Any) -> Any:
        profile.local.http_in_scan = 0.0
        started = time.perf_counter()
        try:
            return original_scan(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - started
            profile.add("scan (analysis, without its reads)", elapsed - profile.local.http_in_scan)
            profile.local.http_in_scan = None

    source_module.scan_artifacts = scan_artifacts

    original_handle = WebhookReceiver.handle

    def handle(self: Any, request: Any) -> Any:
        started = time.perf_counter()
        try:
            return original_handle(self, request)
        finally:
            profile.add("webhook delivery handled", time.perf_counter() - started)

    WebhookReceiver.handle = handle  # type: ignore[method-assign]

    original_record = MLflowSource.record

    def record(self: Any, request: Any, scanned: Any) -> None:
        original_record(self, request, scanned)
        with profile.recorded_event:
            profile.recorded[(request.key[1], request.key[2])] = time.monotonic()
            profile.recorded_event.notify_all()

    MLflowSource.record = record  # type: ignore[method-assign]


def wait_recorded(profile: Profile, wanted: set[tuple[str, str]], timeout: float) -> float:
    """Block until every version in ``wanted`` had its verdict written; the time of the last write."""
    deadline = time.monotonic() + timeout
    with profile.recorded_event:
        while not wanted <= profile.recorded.keys():
            left = deadline - time.monotonic()
            if left <= 0:
                raise SystemExit(f"{len(wanted - profile.recorded.keys())} versions never got a verdict")
            profile.recorded_event.wait(min(left, 1.0))
        return max(profile.recorded[k] for k in wanted)


def print_breakdown(
    calls: collections.Counter[str], seconds: collections.Counter[str], versions: int, wall: float, cpu: float
) -> None:
    print(f"per version (averaged over {versions}; milliseconds are summed over the controller's threads):")
    print(f"  {'phase':38} {'calls':>7} {'ms':>8}")
    served = 0
    for kind in sorted(calls, key=lambda k: -seconds[k]):
        per = calls[kind] / versions
        if kind != "scan (analysis, without its reads)":
            served += calls[kind]
        print(f"  {kind:38} {per:7.2f} {seconds[kind] / versions * 1000:8.1f}")
    requests = sum(v for k, v in calls.items() if k not in ("scan (analysis, without its reads)",))
    deliveries = calls["webhook delivery handled"]
    made = requests - deliveries
    print(
        f"  requests to the server per version: {made / versions:.1f}; webhook deliveries it made back: "
        f"{deliveries / versions:.1f}"
    )
    print(
        f"  server CPU {cpu:.1f} s over {wall:.1f} s wall ({cpu / wall * 100:.0f}% of one core): "
        f"{cpu / max(1, made + deliveries) * 1000:.1f} ms per request served or delivery made"
    )


def server_floor(client: Any, proc: subprocess.Popen, name: str, version: str, n: int = 100) -> None:
    """Sequential calls against the otherwise idle server: the per-request floor."""
    for label, call in (
        ("get_model_version", lambda i: client.get_model_version(name, version)),
        (
            "set_model_version_tag (one webhook delivery each)",
            lambda i: client._get_registry_client().set_model_version_tag(name, version, "bench.floor", str(i)),
        ),
    ):
        call(0)
        cpu0, times = server_cpu(proc), []
        for i in range(n):
            t = time.perf_counter()
            call(i)
            times.append(time.perf_counter() - t)
        time.sleep(0.5)  # the deliveries of the last writes
        cpu = server_cpu(proc) - cpu0
        print(
            f"server alone, {n} sequential {label}: median {statistics.median(times) * 1000:.1f} ms per call, "
            f"server CPU {cpu / n * 1000:.1f} ms per call"
        )
    # Tag writes from 8 threads at once: the server's write capacity (each write is its own transaction).
    registry = client._get_registry_client()
    cpu0, started = server_cpu(proc), time.perf_counter()

    def writer(t: int) -> None:
        for i in range(n // 8):
            registry.set_model_version_tag(name, version, f"bench.floor{t}", str(i))

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    writes = 8 * (n // 8)
    time.sleep(0.5)
    print(
        f"server alone, {writes} tag writes from 8 threads: {writes / elapsed:.0f} writes/s "
        f"(server CPU {(server_cpu(proc) - cpu0) / writes * 1000:.1f} ms per write)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=200)
    parser.add_argument("--latency-samples", type=int, default=20)
    parser.add_argument("--workers", type=int, default=None, help="controller workers (default: the controller's)")
    parser.add_argument("--server-workers", type=int, default=1)
    parser.add_argument("--poll", action="store_true", help="detect completion by polling the registry (old way)")
    args = parser.parse_args()

    from mlflow import MlflowClient

    from mlgate.analyzers.core.policy import Policy
    from mlgate.controller.cli.controller import build_controller
    from mlgate.controller.cli.main import main as mlgate_main
    from mlgate.controller.config.settings import ControllerConfig, HttpConfig, MLflowConfig, WebhookConfig
    from mlgate.controller.runtime.logging_json import configure
    from mlgate.controller.verdicts.tags import check_verdict

    configure(level=40)  # errors only: the bench prints its own figures
    key = SIGNING_KEY.encode()
    profile = Profile()
    profile.bench_threads.add(threading.get_ident())
    install_profile(profile)
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="mlgate-bench-") as tmp:
        home = Path(tmp)
        t0 = time.monotonic()
        proc, url = start_server(home, args.server_workers)
        print(f"mlflow server up in {time.monotonic() - t0:.1f} s ({url}, --workers {args.server_workers})")
        try:
            client = MlflowClient(tracking_uri=url, registry_uri=url)
            run = seed_run(client, home, "bench")

            extra = {} if args.workers is None else {"workers": args.workers}
            config = ControllerConfig(
                state_dir=str(home / "state"),
                signing_key=SIGNING_KEY,
                mlflow=MLflowConfig(tracking_uri=url, poll_interval_seconds=10.0),
                http=HttpConfig(port=0),
                webhook=WebhookConfig(secret=WEBHOOK_SECRET),
                **extra,
            )
            controller = build_controller(config, key, Policy())
            workers = controller.runtime.workers
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
            profile.reset()
            cpu0 = server_cpu(proc)
            start = time.monotonic()
            wanted = set()
            for i in range(args.versions):
                kind = "clean" if i % 2 == 0 else "evil"
                mv = client.create_model_version(
                    f"burst-{i % models:02d}", f"{run.info.artifact_uri}/models/{kind}", run_id=run.info.run_id
                )
                wanted.add((mv.name, str(mv.version)))
            registered = time.monotonic() - start
            if args.poll:
                wait_verdicted(client, "burst-", key, wanted, 600, interval=0.1)
                total = time.monotonic() - start
            else:
                total = wait_recorded(profile, wanted, 600) - start
                missing = wanted - verdicted(client, "burst-", key)
                if missing:
                    raise SystemExit(f"{len(missing)} versions recorded without a valid signed verdict")
            time.sleep(1.0)  # the last webhook echoes
            cpu = server_cpu(proc) - cpu0
            calls, seconds = profile.snapshot()
            load = os.getloadavg()
            print(
                f"{args.versions} versions: registered in {registered:.1f} s; every one verdicted "
                f"{total:.1f} s after the first registration ({args.versions / total:.1f} versions/s, "
                f"{workers} workers; load average {load[0]:.2f})"
            )
            print_breakdown(calls, seconds, args.versions, total + 1.0, cpu)

            client.create_registered_model("latency")
            samples = []
            for _ in range(args.latency_samples):
                mv = client.create_model_version(
                    "latency", f"{run.info.artifact_uri}/models/clean", run_id=run.info.run_id
                )
                created = time.monotonic()
                version = str(mv.version)
                if args.poll:
                    wait_verdicted(client, "latency", key, {("latency", version)}, 120, interval=0.01)
                    samples.append(time.monotonic() - created)
                else:
                    samples.append(wait_recorded(profile, {("latency", version)}, 120) - created)
                    tags = client.get_model_version("latency", version).tags
                    assert check_verdict(key, "latency", version, tags).signed is not None
                time.sleep(0.2)
            samples.sort()
            p95 = samples[min(len(samples) - 1, int(round(0.95 * (len(samples) - 1))))]
            print(
                f"webhook-to-tag latency over {len(samples)} versions: "
                f"median {statistics.median(samples) * 1000:.0f} ms, "
                f"p95 {p95 * 1000:.0f} ms"
            )
            server_floor(client, proc, "latency", "1")  # the controller still answers the deliveries
            controller.runtime.stop()
            print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        finally:
            stop_server(proc)


if __name__ == "__main__":
    main()
