"""Registry scale-out: 1,000 versions on one MLflow server, verdicted by 1, 2 and 4 controller processes.

Starts a real ``mlflow server`` (sqlite, loopback; ``mlflow_throughput.start_server``) and the
coordination.k8s.io Lease API of the tests (``tests/runtime/lease_fake.py``, a real HTTP server),
then for each process count registers ``--versions`` versions (half a clean text model, half the
demo pickle) under a fresh name prefix and starts that many ``mlgate controller --leader-elect``
processes (``MLGATE_SHARDS=--shards``, a kubeconfig pointing at the fake, webhooks off: the
reconcile passes find everything). It reports the time from the processes' start until every
version carries a validly signed verdict, the scaling efficiency (speed-up / processes), how
many versions were missed (no verdict at the end) and, from the processes' JSON ``scanned`` log
lines, how many were scanned twice (and how many verdicts no log line accounts for: only a
process killed between writing a verdict and logging it leaves those). ``--kill`` adds a run
with ``--kill-processes`` processes where one is SIGKILLed once a third of the versions are
verdicted: its shards must be taken over and every version still verdicted.

    python3 bench/registry_scale.py [--versions 1000] [--processes 1,2,4] [--shards 8] [--workers 2] [--kill]
                                    [--server-workers 1]

The machine's load average is printed next to every figure (the host is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "runtime"))

from lease_fake import FakeLeaseAPI  # noqa: E402
from mlflow_throughput import (  # noqa: E402
    SIGNING_KEY,
    seed_run,
    server_cpu,
    server_floor,
    start_server,
    stop_server,
    wait_verdicted,
)

MODELS = 100  # versions spread over this many model names (names are what shards hash)
LEASE = {"MLGATE_LEASE_DURATION": "10", "MLGATE_RENEW_DEADLINE": "6", "MLGATE_RETRY_PERIOD": "1"}


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def kubeconfig(path: Path, url: str) -> Path:
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": url}}],
                "users": [{"name": "fake", "user": {"token": "bench"}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": "mlgate"}}],
                "current-context": "fake",
            }
        )
    )
    return path


class Controller:
    """One ``mlgate controller --leader-elect`` process and the versions its log says it scanned."""

    def __init__(self, home: Path, name: str, url: str, prefix: str, shards: int, workers: int, kube: Path) -> None:
        self.name = name
        self.scanned: list[tuple[str, str]] = []
        self._cpu: float | None = None
        state = home / f"state-{name}"
        config = home / f"{name}.json"
        config.write_text(
            json.dumps(
                {
                    "state_dir": str(state),
                    "workers": workers,
                    "log_format": "json",
                    "mlflow": {
                        "tracking_uri": url,
                        "model_name_like": f"{prefix}%",
                        "poll_interval_seconds": 10,
                        "page_size": 1000,
                    },
                    "webhook": {"enabled": False},
                    "http": {"enabled": False},
                }
            )
        )
        env = dict(
            os.environ,
            MLGATE_SIGNING_KEY=SIGNING_KEY,
            KUBECONFIG=str(kube),
            POD_NAMESPACE="mlgate",
            POD_NAME=name,
            MLGATE_LEASE_NAME=f"bench-{prefix.rstrip('-')}",
            MLGATE_SHARDS=str(shards),
            **LEASE,
        )
        env.pop("KUBERNETES_SERVICE_HOST", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlgate.controller", "controller", "--config", str(config), "--leader-elect"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.log = (home / f"{name}.log").open("w")
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.write(line)
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if doc.get("msg") == "scanned" and doc.get("version"):
                self.scanned.append((doc["model"], str(doc["version"])))

    def cpu(self) -> float:
        """CPU seconds (user + system) the process used so far (at its death once killed)."""
        if self._cpu is None:
            import psutil

            try:
                times = psutil.Process(self.proc.pid).cpu_times()
                return times.user + times.system
            except psutil.NoSuchProcess:
                return 0.0
        return self._cpu

    def kill(self) -> None:
        self._cpu = self.cpu()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(5)
        self.log.close()


def register(client, run, prefix: str, versions: int) -> set[tuple[str, str]]:
    names = [f"{prefix}{i:03d}" for i in range(min(MODELS, versions))]
    for name in names:
        client.create_registered_model(name)
    made = set()
    for i in range(versions):
        kind = "clean" if i % 2 == 0 else "evil"
        mv = client.create_model_version(
            names[i % len(names)], f"{run.info.artifact_uri}/models/{kind}", run_id=run.info.run_id
        )
        made.add((mv.name, str(mv.version)))
    return made


def mlgate_tags(client, prefix: str) -> int:
    """How many ``mlgate.*`` tags the versions under ``prefix`` carry."""
    count, token = 0, None
    while True:
        page = client.search_model_versions(f"name LIKE '{prefix}%'", max_results=1000, page_token=token)
        count += sum(1 for mv in page for k in mv.tags if k.startswith("mlgate."))
        token = page.token
        if not token:
            return count


def run_once(
    home: Path,
    client,
    run,
    url: str,
    server: subprocess.Popen,
    kube: Path,
    args: argparse.Namespace,
    processes: int,
    kill: bool = False,
) -> dict:
    prefix = f"{'k' if kill else 'p'}{processes}-"
    expected = register(client, run, prefix, args.versions)
    key = SIGNING_KEY.encode()
    started = time.monotonic()
    controllers = [
        Controller(home, f"{prefix}ctl{i}", url, prefix, args.shards, args.workers, kube) for i in range(processes)
    ]
    killed_at = None
    victim = None
    done: set[tuple[str, str]] = set()
    cpu0 = server_cpu(server)

    def maybe_kill(done: set[tuple[str, str]]) -> None:
        nonlocal victim, killed_at
        if kill and killed_at is None and len(done) >= len(expected) // 3:
            victim = max(controllers, key=lambda c: len(c.scanned))  # the busiest one
            victim.kill()
            killed_at = time.monotonic() - started

    try:
        done = wait_verdicted(client, prefix, key, expected, args.timeout, on_poll=maybe_kill)
        elapsed = time.monotonic() - started
        server_seconds = server_cpu(server) - cpu0
        controller_seconds = sum(c.cpu() for c in controllers)
    finally:
        for controller in controllers:
            controller.stop()
    tags = mlgate_tags(client, prefix)
    scans = Counter(s for c in controllers for s in c.scanned if s in expected)
    return {
        "processes": processes,
        "versions": len(expected),
        "verdicted": len(done),
        "seconds": round(elapsed, 1),
        "scanned_twice": sum(1 for n in scans.values() if n > 1),
        "missed": len(expected - done),  # no verdict at the end
        # verdicted but in nobody's log: a process SIGKILLed between writing a verdict and logging it
        "unlogged": len(done - set(scans)),
        "per_process": {c.name: len(c.scanned) for c in controllers},
        "killed": victim.name if victim else None,
        "killed_at_s": round(killed_at, 1) if killed_at is not None else None,
        # CPU seconds over the run: the MLflow server (all its processes) and the controllers together
        # (a killed one's up to its death); as a share of one core, the server's says whether it is the bound
        "server_cpu_s": round(server_seconds, 1),
        # mlgate.* tags on the versions at the end: a lower bound of the tag writes (one request each)
        "tag_writes": tags,
        "controllers_cpu_s": round(controller_seconds, 1),
        "load": load(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--processes", default="1,2,4", help="comma-separated process counts (default 1,2,4)")
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="scan workers per process")
    parser.add_argument("--server-workers", type=int, default=1, help="MLflow server workers (default 1)")
    parser.add_argument("--kill", action="store_true", help="also a run where one process is killed mid-run")
    parser.add_argument("--kill-processes", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=1800.0, help="per run")
    parser.add_argument(
        "--floor", action="store_true", help="at the end, the idle server's tag-write rate (mlflow_throughput)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document per run (tests read it)")
    args = parser.parse_args()

    from mlflow import MlflowClient

    counts = [int(p) for p in args.processes.split(",") if p.strip()]
    with tempfile.TemporaryDirectory(prefix="mlgate-scale-") as tmp:
        home = Path(tmp)
        proc, url = start_server(home, args.server_workers)
        leases = FakeLeaseAPI()
        leases._server.handle_error = lambda *_: None  # a killed process's reset connection is no news
        leases.start()
        kube = kubeconfig(home / "kubeconfig", leases.url)
        results = []
        try:
            client = MlflowClient(tracking_uri=url, registry_uri=url)
            run = seed_run(client, home, "scale")
            plan = [(n, False) for n in counts] + ([(args.kill_processes, True)] if args.kill else [])
            for processes, kill in plan:
                result = run_once(home, client, run, url, proc, kube, args, processes, kill)
                results.append(result)
                if args.json:
                    print(json.dumps(result), flush=True)
                    continue
                base = next((r["seconds"] for r in results if r["processes"] == 1 and not r["killed"]), None)
                eff = (
                    f", speed-up {base / result['seconds']:.2f}x, efficiency {base / result['seconds'] / processes:.0%}"
                    if base and not kill
                    else ""
                )
                what = f"{processes} process(es)" + (
                    f", {result['killed']} killed at {result['killed_at_s']} s" if kill else ""
                )
                print(
                    f"{what}: {result['verdicted']}/{result['versions']} verdicted in {result['seconds']} s"
                    f"{eff}; scanned twice {result['scanned_twice']}, missed {result['missed']}, "
                    f"unlogged {result['unlogged']}; MLflow server CPU {result['server_cpu_s']} s "
                    f"({result['server_cpu_s'] / result['seconds']:.0%} of one core), controllers' CPU "
                    f"{result['controllers_cpu_s']} s, {result['tag_writes']} mlgate tags "
                    f"({result['tag_writes'] / result['seconds']:.1f} written/s); "
                    f"per process {result['per_process']}; load average {result['load']}",
                    flush=True,
                )
            if args.floor:
                client.create_registered_model("floor")
                mv = client.create_model_version(
                    "floor", f"{run.info.artifact_uri}/models/clean", run_id=run.info.run_id
                )
                server_floor(client, proc, "floor", str(mv.version))
        finally:
            leases.stop()
            stop_server(proc)


if __name__ == "__main__":
    main()
