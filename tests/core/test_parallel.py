"""A folder's files walked on worker processes (``analyzers/core/parallel.py``, ``mlgate scan --jobs``).

The report must be the one a walk in one process gives, including what needs several files at once
(the model's import roots, a shard index against the files present, a secret reported once, the
target's byte and member budgets), whatever the chunks; and nothing is lost when a file takes its
worker down.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from mlgate.analyzers.core import parallel, registry, walker
from mlgate.analyzers.core.budget import Budgets
from mlgate.analyzers.core.kinds import Kind
from mlgate.analyzers.core.parallel import WorkerPool, plan_chunks
from mlgate.analyzers.core.walker import ScanOptions, TargetScan, scan_path
from mlgate.controller.cli.scan import POOL_MIN_FILES

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SECRET = "q8Zr4T1xVb9LmN2pK7sW3dF6hJ0cY5eA"  # a secret-named field's high-entropy value (MLG-SEC-010)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="worker processes are forked")


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder with a malicious pickle and every cross-file case, 20+ files."""
    root = tmp_path_factory.mktemp("mixed") / "model"
    # MLmodel names code/ as an import root: the pickle's unknown module ships there (settled across files)
    shutil.copytree(FIXTURES / "benign" / "mlflow-pyfunc", root)
    # a shard index naming a shard that is not in the folder (checked against the whole file list)
    shutil.copytree(FIXTURES / "shards" / "missing-shard", root / "shards")
    shutil.copyfile(FIXTURES / "pickles" / "malicious" / "builtins_exec.pkl", root / "evil.pkl")
    for name in ("benign_k3.h5", "evil_lambda_k3.h5"):  # walked by the parent while the workers walk the rest
        shutil.copyfile(FIXTURES / "keras_tf" / "keras" / name, root / name)
    for name in ("a_config.json", "z_config.json"):  # the same secret in two files: reported once
        (root / name).write_text(json.dumps({"api_token": SECRET}))
    for i in range(12):
        (root / f"notes_{i:02d}.json").write_text(json.dumps({"layer": i, "units": [i] * 4}))
    (root / "empty.bin").write_bytes(b"")
    return root


@pytest.fixture(scope="module")
def pool() -> WorkerPool:
    with WorkerPool(2) as shared:
        yield shared


@pytest.fixture()
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """One file per chunk: every file crosses a process boundary and is merged back."""
    monkeypatch.setattr(parallel, "MAX_CHUNK_COST", 1)


def same(a: TargetScan, b: TargetScan) -> None:
    assert [f.to_dict() for f in a.findings] == [f.to_dict() for f in b.findings]
    assert [f.code_module for f in a.findings] == [f.code_module for f in b.findings]
    assert a.references == b.references
    assert (a.complete, a.digest, a.bytes_read, a.members) == (b.complete, b.digest, b.bytes_read, b.members)


def test_fixture_has_every_cross_file_case(mixed: Path) -> None:
    scan = scan_path(mixed, ScanOptions(compute_digest=False))
    rules = [f.rule for f in scan.findings]
    assert "MLG-DEP-012" in rules  # the missing shard
    assert sum(r == "MLG-SEC-010" for r in rules) == 1  # the secret once, in the first file
    assert any(f.location.startswith("evil.pkl") and f.severity.label in ("high", "critical") for f in scan.findings)
    assert any("ships with the model" in f.message for f in scan.findings)  # lowered through MLmodel's code/
    assert len(list(mixed.rglob("*"))) >= 20


@pytest.mark.parametrize("chunking", ["default", "one file per chunk"])
def test_pool_gives_the_report_of_one_process(mixed: Path, pool: WorkerPool, chunking: str, request) -> None:
    if chunking != "default":
        request.getfixturevalue("small_chunks")
    options = ScanOptions(compute_digest=True)
    same(scan_path(mixed, options, label="m", pool=pool), scan_path(mixed, options, label="m"))


@pytest.mark.parametrize("budget", ["max_members", "max_bytes"])
def test_target_budgets_stop_where_one_process_stops(
    mixed: Path, pool: WorkerPool, small_chunks: None, budget: str
) -> None:
    full = scan_path(mixed, ScanOptions(compute_digest=False))
    limit = (full.members if budget == "max_members" else full.bytes_read) // 2
    options = ScanOptions(budgets=replace(Budgets(), **{budget: limit}), compute_digest=False)
    alone = scan_path(mixed, options)
    assert any(f.rule == "MLG-CORE-002" and budget in f.message for f in alone.findings)
    same(scan_path(mixed, options, pool=pool), alone)


def test_a_budget_is_reported_once_per_target(tmp_path: Path, pool: WorkerPool, small_chunks: None) -> None:
    for i in range(6):  # each nests a gzip in a gzip: over max_depth 1 in every file
        (tmp_path / f"m{i}.pkl.gz").write_bytes(_gzip(_gzip(b"\x80\x04K\x01.")))
    options = ScanOptions(budgets=replace(Budgets(), max_depth=1), compute_digest=False)
    alone = scan_path(tmp_path, options)
    assert sum(f.rule == "MLG-CORE-002" for f in alone.findings) == 1
    same(scan_path(tmp_path, options, pool=pool), alone)


def _gzip(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data)


def test_cli_jobs_2_gives_the_report_of_jobs_1(mixed: Path, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(mixed, folder)
    for i in range(POOL_MIN_FILES):  # enough files for the call to start its workers
        (folder / f"more_{i:03d}.json").write_text(json.dumps({"index": i}))

    def report(jobs: str) -> dict:
        cmd = [sys.executable, "-m", "mlgate.controller", "scan", "--format", "json", "--no-progress", "-j", jobs]
        result = subprocess.run([*cmd, str(folder)], capture_output=True, text=True, timeout=120)
        assert result.returncode == 1, result.stderr  # quarantined: the malicious pickle
        out = json.loads(result.stdout)
        for target in out["targets"]:
            target.pop("duration_s")
        return out

    assert report("2") == report("1")


# --- errors in a worker ------------------------------------------------------------------------------
@pytest.fixture()
def bomb(monkeypatch: pytest.MonkeyPatch, mixed: Path, tmp_path: Path) -> Path:
    """``mixed`` plus ``boom.pkl``, whose analysis kills the process analyzing it (a worker: the
    test's own process never reads it). Registered before the pool forks, so the workers have it."""
    parent = os.getpid()

    def kill_worker(artifact, ctx):
        if artifact.name == "boom.pkl" and os.getpid() != parent:
            os._exit(3)  # a crash in native code, or the out-of-memory killer
        return iter(())

    monkeypatch.setitem(registry._REGISTRY, Kind.PICKLE, [*registry.analyzers_for(Kind.PICKLE), ("bomb", kill_worker)])
    monkeypatch.setattr(registry, "_DISPATCH", {})  # the per-kind answers are recomputed with the bomb
    folder = tmp_path / "model"
    shutil.copytree(mixed, folder)
    shutil.copyfile(FIXTURES / "pickles" / "malicious" / "builtins_exec.pkl", folder / "boom.pkl")
    return folder


@pytest.mark.parametrize("chunking", ["default", "one file per chunk"])
def test_a_file_that_kills_its_worker_loses_no_other_result(bomb: Path, chunking: str, request) -> None:
    if chunking != "default":
        request.getfixturevalue("small_chunks")
    options = ScanOptions(compute_digest=False)
    with WorkerPool(2) as crashing:
        scan = scan_path(bomb, options, pool=crashing)
        again = scan_path(bomb, options, pool=crashing)  # the pool was replaced: it still serves
    crashed = [f for f in scan.findings if f.location == "boom.pkl"]
    assert [f.rule for f in crashed] == ["MLG-CORE-004"] and crashed[0].incomplete
    assert "worker process" in crashed[0].message
    assert not scan.complete
    others = [f.to_dict() for f in scan.findings if not f.location.startswith("boom.pkl")]
    (bomb / "boom.pkl").unlink()
    assert others == [f.to_dict() for f in scan_path(bomb, options).findings]
    assert [f.to_dict() for f in again.findings] == [f.to_dict() for f in scan.findings]


def test_an_error_outside_the_analyzers_is_a_finding(
    monkeypatch: pytest.MonkeyPatch, mixed: Path, small_chunks: None
) -> None:
    real = walker.sniff

    def broken(head: bytes, name: str) -> Kind:
        if name == "evil.pkl":
            raise ValueError("sniffer bug")
        return real(head, name)

    monkeypatch.setattr(walker, "sniff", broken)  # before the fork: the workers have it too
    options = ScanOptions(compute_digest=False)
    with WorkerPool(2) as own:
        pooled = scan_path(mixed, options, pool=own)
    alone = scan_path(mixed, options)
    same(pooled, alone)
    failed = [f for f in alone.findings if f.location == "evil.pkl"]
    assert [f.rule for f in failed] == ["MLG-CORE-004"] and "sniffer bug" in failed[0].message
    assert not alone.complete


def test_chunks_cover_every_file_once_in_order() -> None:
    names = [f"f{i}.h5" if i % 5 == 0 else f"f{i}.pkl" for i in range(300)]
    sizes = [64 << 20 if i == 17 else 100 for i in range(300)]
    chunks = plan_chunks(list(range(300)), names, sizes, workers=2)
    assert sorted(i for chunk in chunks for i in chunk) == list(range(300))
    assert [17] in chunks
    assert all(chunk == sorted(chunk) for chunk in chunks)
    assert len(chunks) >= 2 * parallel.CHUNKS_PER_WORKER


@pytest.mark.parametrize(("cpus", "quota", "jobs"), [(4, None, 4), (4, 2, 2), (1, None, 1), (32, None, 8)])
def test_default_jobs_are_the_cpus_this_process_may_use(monkeypatch: pytest.MonkeyPatch, cpus, quota, jobs) -> None:
    from mlgate.controller.cli import scan as cli

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)), raising=False)
    monkeypatch.setattr(cli, "_cgroup_cpus", lambda: quota)
    assert cli.default_jobs() == jobs


def test_cgroup_quota_is_read_from_cpu_max(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from mlgate.controller.cli import scan as cli

    cpu_max = tmp_path / "cpu.max"
    assert cli.CGROUP_CPU_MAX == "/sys/fs/cgroup/cpu.max"
    monkeypatch.setattr(cli, "CGROUP_CPU_MAX", str(cpu_max))
    for text, cpus in (("150000 100000\n", 2), ("max 100000\n", None), ("garbage", None)):
        cpu_max.write_text(text)
        assert cli._cgroup_cpus() == cpus


def test_hdf5_ahead_starts_the_h5py_child_the_walk_then_uses(tmp_path: Path) -> None:
    from mlgate.analyzers.keras import hdf5_reader

    hdf5_reader.close_idle()
    walker.warm_up_for(["config.json", "weights.h5"])
    assert len(hdf5_reader._STARTING) == 1  # started, h5py importing while the walk goes on
    h5 = FIXTURES / "keras_tf" / "keras" / "benign_k3.h5"
    scan = scan_path(h5, ScanOptions(compute_digest=False))
    assert not hdf5_reader._STARTING and len(hdf5_reader._IDLE) == 1  # taken, used, given back
    assert scan.complete
    hdf5_reader.close_idle()


def test_many_file_targets_share_the_pool_and_survive_a_dying_worker(bomb: Path, tmp_path: Path) -> None:
    from mlgate.analyzers.core.policy import Policy, Verdict
    from mlgate.controller.cli.scan import scan_all

    files = sorted(str(p) for p in bomb.rglob("*") if p.is_file())
    extra = tmp_path / "extra"
    extra.mkdir()
    for i in range(POOL_MIN_FILES):
        (extra / f"t{i:03d}.json").write_text(json.dumps({"i": i}))
    paths = files + sorted(str(p) for p in extra.iterdir()) + [str(bomb / "code")]  # and a folder target
    pooled = scan_all(paths, Policy(), jobs=2, show_progress=False)
    boom = paths.index(str(bomb / "boom.pkl"))
    assert [f.rule for f in pooled[boom].findings] == ["MLG-CORE-004"]
    assert pooled[boom].verdict is Verdict.QUARANTINED and not pooled[boom].scan_complete
    del paths[boom], pooled[boom]
    alone = scan_all(paths, Policy(), jobs=1, show_progress=False)
    assert [r.target for r in pooled] == paths
    assert [r.to_dict() | {"duration_s": 0} for r in pooled] == [r.to_dict() | {"duration_s": 0} for r in alone]
