"""Issue 17, item 2: a scan cannot hang, even when libhdf5 spins forever in C.

The reproducers (``tests/fixtures/hardening/hang_*.h5``, built by ``build_hangs.py``) make
``h5py.File(...).attrs[...]`` run forever (confirmed in a child process here). mlgate reads HDF5 in
a child process with a hard deadline, so each scan ends within ``max_native_seconds`` with an
incomplete scan -- in one process, with ``--jobs``, and under a scan's own ``max_seconds``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlgate.analyzers.core.budget import Budgets
from mlgate.analyzers.core.policy import Policy, Verdict
from mlgate.controller.scanning import scan_target

HANGS = Path(__file__).resolve().parents[1] / "fixtures" / "hardening"
HANG_FILES = sorted(HANGS.glob("hang_*.h5"))
DEADLINE = 2.0
SLACK = 6.0  # child start, kill and the rest of the scan


def test_reproducers_really_hang_h5py() -> None:
    code = (
        "import h5py, io, sys\n"
        "with h5py.File(io.BytesIO(open(sys.argv[1], 'rb').read()), 'r') as h:\n"
        "    [h.attrs[k] for k in ('model_config', 'training_config') if k in h.attrs]\n"
    )
    assert len(HANG_FILES) == 2
    for path in HANG_FILES:
        with pytest.raises(subprocess.TimeoutExpired):
            subprocess.run([sys.executable, "-c", code, str(path)], timeout=2, stderr=subprocess.DEVNULL)


@pytest.mark.parametrize("path", HANG_FILES, ids=lambda p: p.name)
def test_scan_ends_within_the_native_deadline(path: Path) -> None:
    started = time.monotonic()
    report = scan_target(path, Policy(budgets=Budgets(max_native_seconds=DEADLINE)))
    elapsed = time.monotonic() - started
    assert elapsed < DEADLINE + SLACK, elapsed
    assert not report.scan_complete and report.verdict is Verdict.QUARANTINED
    messages = [f.message for f in report.findings if f.rule == "MLG-CORE-002"]
    assert any("max_native_seconds" in m for m in messages), [f.message for f in report.findings]


def test_scan_time_budget_also_stops_the_child() -> None:
    started = time.monotonic()
    report = scan_target(HANG_FILES[0], Policy(budgets=Budgets(max_seconds=1.5, max_native_seconds=600)))
    assert time.monotonic() - started < 1.5 + SLACK
    assert not report.scan_complete
    assert any("max_seconds" in f.message for f in report.findings if f.rule == "MLG-CORE-002")


def test_jobs_mode_ends_within_the_deadline(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(f"[budgets]\nmax_native_seconds = {DEADLINE}\n")
    benign = Path(__file__).resolve().parents[1] / "fixtures" / "keras_tf" / "keras" / "benign_k3.h5"
    cmd = [sys.executable, "-m", "mlgate.controller", "scan", "--jobs", "3", "--format", "json"]
    cmd += ["--no-progress", "--policy", str(policy), *map(str, HANG_FILES), str(benign)]
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert time.monotonic() - started < DEADLINE + 3 * SLACK
    assert proc.returncode == 1, proc.stderr
    reports = json.loads(proc.stdout)
    reports = reports["targets"]
    by_target = {Path(r["target"]).name: r for r in reports}
    for path in HANG_FILES:
        assert by_target[path.name]["verdict"] == "quarantined"
        assert by_target[path.name]["scan_complete"] is False
    assert by_target["benign_k3.h5"]["verdict"] == "approved"


def test_benign_hdf5_still_read_in_the_child() -> None:
    benign = Path(__file__).resolve().parents[1] / "fixtures" / "keras_tf" / "keras" / "benign_k3.h5"
    report = scan_target(benign, Policy(budgets=Budgets(max_native_seconds=DEADLINE)))
    assert report.verdict is Verdict.APPROVED and report.scan_complete


def test_one_reader_child_serves_many_files_and_a_hang_does_not_poison_the_next(tmp_path: Path, monkeypatch) -> None:
    """The h5py child that answered serves the next HDF5 file (start-up paid once per process, across
    targets too), except after a failure: the child killed at the deadline is replaced, and the files
    after it are still read."""
    from mlgate.analyzers.keras import hdf5_reader

    hdf5_reader.close_idle()
    keras = Path(__file__).resolve().parents[1] / "fixtures" / "keras_tf" / "keras"
    (tmp_path / "a_hang.h5").write_bytes(HANG_FILES[0].read_bytes())
    (tmp_path / "b_evil.h5").write_bytes((keras / "evil_lambda_k3.h5").read_bytes())
    (tmp_path / "c_benign.h5").write_bytes((keras / "benign_k3.h5").read_bytes())
    (tmp_path / "d_evil.h5").write_bytes((keras / "evil_lambda_k3.h5").read_bytes())
    started = []
    real_popen = hdf5_reader.subprocess.Popen

    def popen(*args, **kwargs):
        proc = real_popen(*args, **kwargs)
        started.append(proc)
        return proc

    monkeypatch.setattr(hdf5_reader.subprocess, "Popen", popen)
    report = scan_target(tmp_path, Policy(budgets=Budgets(max_native_seconds=DEADLINE)))
    again = scan_target(tmp_path / "d_evil.h5", Policy())  # another target: the same child
    rules = {(f.location.split(":")[0], f.rule) for f in report.findings}
    assert ("a_hang.h5", "MLG-CORE-002") in rules
    assert {("b_evil.h5", "MLG-KER-001"), ("d_evil.h5", "MLG-KER-001")} <= rules
    assert not any(loc == "c_benign.h5" for loc, _ in rules)
    assert [f.rule for f in again.findings] == ["MLG-KER-001"]
    assert len(started) == 2  # the hung child, then one child for b, c, d and the second target
    assert started[0].poll() is not None  # the hung one was stopped
    hdf5_reader.close_idle()
    assert all(proc.poll() is not None for proc in started)
