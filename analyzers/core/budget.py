"""Scan budgets: how much one target may cost before the scan stops, incomplete.

A budget that runs out never means "clean": the walker turns ``BudgetExceeded``
into an incomplete finding, and the default policy quarantines incomplete scans.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields

GiB = 1 << 30
MiB = 1 << 20


@dataclass(frozen=True)
class Budgets:
    """Per-target limits. Every field can be set from the policy file's ``[budgets]`` table."""

    max_bytes: int = 4 * GiB
    """Bytes read or decompressed by analyzers over the whole target."""
    max_members: int = 20_000
    """Files plus container members visited."""
    max_depth: int = 8
    """Nesting depth of containers (a file in a folder is depth 0; a zip member of it depth 1)."""
    max_ratio: float = 100.0
    """Decompressed/compressed ratio of one member, enforced once it expands past ``ratio_floor``."""
    ratio_floor: int = 256 * MiB
    """Members smaller than this once decompressed are never ratio-limited (Keras uses the same floor)."""
    max_seconds: float = 300.0
    """Wall time for the target."""
    max_member_bytes: int = 2 * GiB
    """Decompressed size of any single member read as a stream."""
    max_native_seconds: float = 60.0
    """Wall time of one native parser that cannot be interrupted (libhdf5 via h5py), which runs in a
    child process killed when this (or ``max_seconds``) runs out."""

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


class BudgetExceeded(Exception):
    """Raised by budget checks; the walker records it once per budget and stops that branch."""

    def __init__(self, budget: str, detail: str) -> None:
        super().__init__(f"{budget}: {detail}")
        self.budget = budget
        self.detail = detail


class BudgetTracker:
    """Mutable per-target accounting against one ``Budgets``."""

    def __init__(self, budgets: Budgets) -> None:
        self.budgets = budgets
        self.bytes_read = 0
        self.members = 0
        self.started = time.monotonic()
        self.deadline = self.started + budgets.max_seconds

    def charge_bytes(self, n: int) -> None:
        self.bytes_read += n
        if self.bytes_read > self.budgets.max_bytes:
            raise BudgetExceeded("max_bytes", f"more than {self.budgets.max_bytes} bytes read or decompressed")

    def charge_member(self) -> None:
        self.members += 1
        if self.members > self.budgets.max_members:
            raise BudgetExceeded("max_members", f"more than {self.budgets.max_members} files and members")

    def check_depth(self, depth: int) -> None:
        if depth > self.budgets.max_depth:
            raise BudgetExceeded("max_depth", f"containers nested deeper than {self.budgets.max_depth}")

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise BudgetExceeded("max_seconds", f"scan took longer than {self.budgets.max_seconds:g} s")

    def check_ratio(self, produced: int, consumed: int) -> None:
        """Check a decompressing stream: ``produced`` bytes out of ``consumed`` compressed bytes."""
        if produced > self.budgets.max_member_bytes:
            raise BudgetExceeded("max_member_bytes", f"a member expands past {self.budgets.max_member_bytes} bytes")
        if produced > self.budgets.ratio_floor and produced > self.budgets.max_ratio * max(consumed, 1):
            raise BudgetExceeded(
                "max_ratio",
                f"a member expands {produced // max(consumed, 1)}x (limit {self.budgets.max_ratio:g}x)",
            )
