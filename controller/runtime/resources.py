"""Bounded resources, measured: per-scan peak memory and state-directory disk usage (docs/contracts.md §4).

``ResourceSampler.during()`` wraps one scan. While any scan runs, one daemon thread samples the
process's resident memory (``/proc/self/statm``) every ``interval`` seconds and the disk usage of
the scans' scratch folder in the state directory (``<state dir>/work``: downloads and private
copies; allocated blocks of every file under it) every ``disk_interval`` seconds;
each scan keeps the highest values seen while it ran, including one sample at its start and its
end. Workers scan concurrently in one process, so a scan's memory peak is the process's: it bounds
what every scan running at that moment used together. The runtime exports them as
``mlgate_scan_peak_memory_bytes`` and ``mlgate_scan_peak_state_dir_bytes``; ``disk_usage`` of the
whole state directory is ``mlgate_state_dir_bytes`` (measured by the runtime after reconcile passes).
"""

from __future__ import annotations

import os
import resource
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int:
    """Resident memory of this process now (peak so far where /proc is missing)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def disk_usage(path: Path | None) -> int:
    """Bytes allocated on disk for every file under ``path`` (0 when it does not exist)."""
    if path is None:
        return 0
    total = 0
    stack = [str(path)]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    else:
                        st = entry.stat(follow_symlinks=False)
                        blocks = getattr(st, "st_blocks", None)  # a sparse file allocates less than its size
                        total += blocks * 512 if blocks is not None else st.st_size
                except OSError:
                    continue
    return total


@dataclass(eq=False)  # identity: two scans with equal peaks are still two entries of ``_active``
class Peak:
    """The highest values seen while one scan ran."""

    memory: int = 0
    state_dir: int = 0


class ResourceSampler:
    """Samples memory and state-dir usage while scans run (see the module docstring)."""

    def __init__(self, state_dir: Path | None, interval: float = 0.1, disk_interval: float = 1.0) -> None:
        self.state_dir = state_dir
        self.interval = interval
        self.disk_interval = disk_interval
        self._active: list[Peak] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self.last_state_dir = 0

    def sample(self, memory: bool = True, disk: bool = True) -> None:
        mem = resident_bytes() if memory else 0
        used = disk_usage(self.state_dir) if disk else -1
        with self._cond:
            if used >= 0:
                self.last_state_dir = used
            for peak in self._active:
                peak.memory = max(peak.memory, mem)
                if used >= 0:
                    peak.state_dir = max(peak.state_dir, used)

    @contextmanager
    def during(self) -> Iterator[Peak]:
        """Track one scan; the yielded ``Peak`` holds its maxima when the block ends."""
        peak = Peak()
        with self._cond:
            self._active.append(peak)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="mlgate-resources", daemon=True)
                self._thread.start()
            self._cond.notify_all()
        self.sample()
        try:
            yield peak
        finally:
            self.sample()
            with self._cond:
                self._active.remove(peak)

    def _run(self) -> None:
        waited = 0.0
        while True:
            with self._cond:
                if not self._active and not self._cond.wait_for(lambda: bool(self._active), timeout=30.0):
                    self._thread = None
                    return
            disk = waited >= self.disk_interval
            self.sample(memory=True, disk=disk)
            waited = 0.0 if disk else waited + self.interval
            time.sleep(self.interval)
