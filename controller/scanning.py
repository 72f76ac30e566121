"""Scan orchestration: one target path -> one ``TargetReport`` under a policy.

This is the single entry point the CLI, the MLflow controller, the S3 watcher
and the admission tooling use to scan something. Dependency resolution plugs in
here: each reference the walker found is resolved and scanned with the same
rules, and its verdict feeds the target's.
"""

from __future__ import annotations

import os

from mlgate.analyzers.core.policy import Policy
from mlgate.analyzers.core.report import TargetReport, build_report
from mlgate.analyzers.core.walker import ScanOptions, scan_path


def scan_target(path: str | os.PathLike[str], policy: Policy, label: str | None = None) -> TargetReport:
    """Scan ``path`` (file or directory) and decide its verdict under ``policy``.

    Raises ``OSError`` when ``path`` itself cannot be opened (callers report it as
    a usage error or a failed scan, never as approved).
    """
    scan = scan_path(path, ScanOptions(budgets=policy.budgets), label=label)
    return build_report(scan, policy, dependencies=[])
