"""Scale-out end to end: ``mlgate controller --leader-elect`` processes sharing shards over the Lease fake.

Runs ``bench/registry_scale.py`` small (its own MLflow server and Lease fake; ``--json``): two
controller processes over 8 shards verdict every version, both do part of the work, and none is
scanned twice; then three processes, the busiest SIGKILLed once a third is verdicted: its shards
are taken over after their Leases run out and every version is still verdicted, none scanned twice.
Scan counts come from each process's own JSON ``scanned`` log lines, the verdicts from the registry.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "registry_scale.py"
VERSIONS = 30


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_controller_processes_share_the_registry_and_survive_a_kill(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--versions",
            str(VERSIONS),
            "--processes",
            "2",
            "--kill",
            "--kill-processes",
            "3",
            "--json",
            "--timeout",
            "600",
        ],
        capture_output=True,
        text=True,
        timeout=1400,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    runs = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert len(runs) == 2, out.stdout
    shared, killed = runs

    assert shared["processes"] == 2 and shared["killed"] is None
    assert shared["verdicted"] == shared["versions"] == VERSIONS
    assert shared["missed"] == shared["unlogged"] == shared["scanned_twice"] == 0, shared
    assert all(n > 0 for n in shared["per_process"].values()), f"one process did all the work: {shared}"
    assert sum(shared["per_process"].values()) == VERSIONS

    assert killed["processes"] == 3 and killed["killed"] in killed["per_process"]
    assert killed["verdicted"] == killed["versions"] == VERSIONS, killed
    assert killed["missed"] == killed["scanned_twice"] == 0, json.dumps(killed)
    # A verdict the killed process wrote just before the SIGKILL may miss its log line (the kill is
    # triggered by watching verdicts appear), never more than its two workers' scans.
    assert killed["unlogged"] <= 2, json.dumps(killed)
    survivors = {name: n for name, n in killed["per_process"].items() if name != killed["killed"]}
    assert sum(survivors.values()) > 0
    assert sum(killed["per_process"].values()) + killed["unlogged"] == VERSIONS
