"""``mlgate scan TARGET...``: scan models and print a report (docs/contracts.md §1).

A TARGET is a path or a model reference (``models:/``, ``runs:/``, ``s3://``, ``hf://``;
``cli/targets.py``), each scanned with the same rules and reported the same way.

Exit status: 0 when every target is approved, 1 when any is quarantined,
2 on a usage error or internal failure.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mlgate.analyzers.core.policy import Policy, PolicyError, Verdict, load_policy

from ..config.environment import colour_allowed
from ..formats import FORMATS, render
from ..scanning import scan_target
from .main import EXIT_OK, EXIT_QUARANTINED, UsageError, configure_logging
from .progress import Progress
from .targets import TargetError, check_reference, is_reference, scan_reference

if TYPE_CHECKING:
    from mlgate.analyzers.core.report import TargetReport


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "scan",
        help="statically scan model files or directories",
        description="Scan each TARGET (a model file or directory, or a reference: models:/NAME/VERSION, "
        "models:/NAME@ALIAS, runs:/RUN_ID/PATH, s3://BUCKET/PREFIX/, hf://ORG/NAME[@REVISION]) without executing it.",
    )
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="TARGET",
        help="model file or directory, or models:/, runs:/, s3://, hf:// reference; each is one target",
    )
    parser.add_argument("--format", choices=sorted(FORMATS), default="text", help="report format (default: text)")
    parser.add_argument("--output", "-o", metavar="FILE", help="write the report to FILE instead of stdout")
    parser.add_argument("--policy", metavar="FILE", help="policy TOML file (thresholds, budgets, suppressions)")
    parser.add_argument("--jobs", "-j", type=_positive_int, default=1, metavar="N", help="targets scanned in parallel")
    parser.add_argument(
        "--digest",
        action="store_true",
        help="hash every file for the report's content digest (default: null, or [scan] digest in the policy)",
    )
    parser.add_argument("--no-progress", action="store_true", help="never show the progress bar")
    parser.set_defaults(func=run, logging_when_needed=True)


def run(args: argparse.Namespace) -> int:
    if args.jobs > 1 or any(is_reference(path) for path in args.paths):
        configure_logging(args.verbose)  # resolvers and worker pools log; local scans load logging only with -v
    try:
        policy = load_policy(args.policy)
    except PolicyError as exc:
        raise UsageError(str(exc)) from None
    for path in args.paths:
        if is_reference(path):
            try:
                check_reference(path)
            except TargetError as exc:
                raise UsageError(str(exc)) from None
        else:
            _check_readable(path)
    if args.output:
        _check_writable(args.output)
    digest = args.digest or policy.scan_digest
    reports = scan_all(args.paths, policy, args.jobs, show_progress=not args.no_progress, digest=digest)
    colour = args.output is None and sys.stdout.isatty() and colour_allowed()
    text = render(args.format, reports, colour=colour)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return EXIT_QUARANTINED if any(r.verdict is Verdict.QUARANTINED for r in reports) else EXIT_OK


def scan_all(
    paths: list[str], policy: Policy, jobs: int, show_progress: bool = True, digest: bool = False
) -> list[TargetReport]:
    """Scan each path, keeping the order of ``paths``; ``digest`` fills each report's content digest.

    With ``jobs`` > 1 the targets are scanned in worker processes (analysis is
    CPU-bound Python, so threads would not run in parallel).
    """
    progress = Progress(total=len(paths), enabled=show_progress and _wants_progress(paths))
    try:
        if jobs == 1 or len(paths) == 1:
            reports = []
            for path in paths:
                reports.append(_scan_one(path, policy, digest))
                progress.advance(path)
            return reports
        from concurrent.futures import ProcessPoolExecutor, as_completed

        results: dict[int, TargetReport] = {}
        with ProcessPoolExecutor(max_workers=min(jobs, len(paths))) as pool:
            futures = {pool.submit(_scan_one, path, policy, digest): i for i, path in enumerate(paths)}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                progress.advance(paths[futures[future]])
        return [results[i] for i in range(len(paths))]
    finally:
        progress.close()


def _scan_one(path: str, policy: Policy, digest: bool) -> TargetReport:
    if is_reference(path):
        try:
            return scan_reference(path, policy, compute_digest=digest)
        except TargetError as exc:
            raise UsageError(str(exc)) from None
    try:
        return scan_target(path, policy, label=path, compute_digest=digest)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def _wants_progress(paths: list[str]) -> bool:
    """A bar helps when there are many targets or large ones."""
    if len(paths) >= 4:
        return True
    return any(os.path.isfile(p) and os.path.getsize(p) > 256 << 20 for p in paths) or any(
        os.path.isdir(p) for p in paths
    )


def _check_readable(path: str) -> None:
    if not os.path.lexists(path):
        raise UsageError(f"no such file or directory: {path}")
    if os.path.isdir(path):
        if not os.access(path, os.R_OK | os.X_OK):
            raise UsageError(f"cannot read directory {path}: permission denied")
        return
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def _check_writable(path: str) -> None:
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        raise UsageError(f"cannot write report to {path}: folder {parent.name or parent} does not exist")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value
