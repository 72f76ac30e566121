"""Per-scan peak memory and state-directory usage: measured while a scan runs, exported as metrics."""

from __future__ import annotations

import os
import time
from pathlib import Path

from mlgate.analyzers.core.policy import Policy
from mlgate.analyzers.core.report import build_report
from mlgate.analyzers.core.walker import TargetScan
from mlgate.controller.config.settings import BackoffConfig
from mlgate.controller.runtime.engine import Runtime
from mlgate.controller.runtime.interface import Scanned, ScanRequest
from mlgate.controller.runtime.metrics import REGISTRY
from mlgate.controller.runtime.resources import ResourceSampler, disk_usage, resident_bytes

MiB = 1 << 20


def test_disk_usage_counts_allocated_bytes_not_apparent_size(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "dense.bin").write_bytes(os.urandom(3 * MiB))
    with open(tmp_path / "sparse.bin", "wb") as handle:  # 1 GiB apparent, almost nothing allocated
        handle.truncate(1 << 30)
    used = disk_usage(tmp_path)
    assert 3 * MiB <= used < 4 * MiB
    assert disk_usage(tmp_path / "missing") == 0


def test_a_scan_sees_memory_and_scratch_usage_that_come_and_go_while_it_runs(tmp_path: Path) -> None:
    sampler = ResourceSampler(tmp_path, interval=0.02, disk_interval=0.05)
    before = resident_bytes()
    with sampler.during() as peak:
        block = bytearray(os.urandom(64 * MiB))  # touched pages: resident
        scratch = tmp_path / "copy.bin"
        scratch.write_bytes(os.urandom(8 * MiB))
        time.sleep(0.3)
        scratch.unlink()
        del block
    assert peak.memory >= before + 48 * MiB, (peak.memory, before)
    assert peak.state_dir >= 8 * MiB  # gone by the end of the scan, still its peak
    assert sampler.last_state_dir < MiB


class _CopyingSource:
    """Scans by writing a private copy into the scratch folder (as the download path does)."""

    name = "fake"

    def __init__(self, work: Path) -> None:
        self.work = work

    def reconcile_once(self) -> list[ScanRequest]:
        return []

    def scan(self, request: ScanRequest) -> Scanned:
        copy = self.work / f"{request.key[1]}.bin"
        copy.write_bytes(os.urandom(5 * MiB))
        time.sleep(1.2)  # longer than the sampler's disk interval
        copy.unlink()
        scan = TargetScan(str(copy), [], True, [], "sha256:" + "0" * 64, 1.2, 5 * MiB, 1)
        return Scanned(build_report(scan, Policy()))

    def record(self, request: ScanRequest, scanned: Scanned) -> None:
        pass


def test_the_runtime_exports_the_peaks_of_every_scan(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    (tmp_path / "mlflow.db").write_bytes(os.urandom(2 * MiB))
    runtime = Runtime([_CopyingSource(tmp_path / "work")], BackoffConfig(), workers=1, state_dir=tmp_path)

    def sample(name: str, le: str | None = None) -> float:
        labels = {"source": "fake"} if le is None else {"source": "fake", "le": le}
        return REGISTRY.get_sample_value(name, labels) or 0.0

    count = sample("mlgate_scan_peak_state_dir_bytes_count")
    big = sample("mlgate_scan_peak_state_dir_bytes_bucket", str(float(4 * MiB)))
    mem = sample("mlgate_scan_peak_memory_bytes_count")
    assert runtime.process(ScanRequest("fake", ("version", "m", "1")))
    assert sample("mlgate_scan_peak_state_dir_bytes_count") == count + 1
    assert sample("mlgate_scan_peak_state_dir_bytes_bucket", str(float(4 * MiB))) == big  # above 4 MiB
    assert sample("mlgate_scan_peak_state_dir_bytes_sum") >= 5 * MiB
    assert sample("mlgate_scan_peak_memory_bytes_count") == mem + 1
    assert runtime.measure_state_dir() >= 2 * MiB
    assert REGISTRY.get_sample_value("mlgate_state_dir_bytes") >= 2 * MiB


def test_concurrent_scans_with_equal_peaks_are_tracked_apart(tmp_path: Path, monkeypatch) -> None:
    """Two scans whose peaks happen to be equal are still two entries: ending one must not end the other."""
    import itertools

    from mlgate.controller.runtime import resources

    rising = itertools.count(1)
    monkeypatch.setattr(resources, "resident_bytes", lambda: next(rising))
    sampler = ResourceSampler(None, interval=30.0)
    first, second = sampler.during(), sampler.during()
    peak1 = first.__enter__()
    peak2 = second.__enter__()  # both sampled together from here on: equal peaks
    assert peak1.memory == peak2.memory
    second.__exit__(None, None, None)
    first.__exit__(None, None, None)
    assert not sampler._active
    assert peak1.memory > peak2.memory  # the first kept being sampled until it ended
