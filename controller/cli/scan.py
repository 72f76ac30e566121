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

from mlgate.analyzers.core.policy import Policy, PolicyError, Verdict, load_policy

from ..config.environment import colour_allowed
from ..formats import FORMATS, render
from ..scanning import scan_target
from .main import EXIT_OK, EXIT_QUARANTINED, UsageError, configure_logging
from .progress import Progress
from .targets import TargetError, check_reference, is_reference, scan_reference

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up, issue 19)
if TYPE_CHECKING:
    from concurrent.futures import Future

    from mlgate.analyzers.core.parallel import WorkerPool
    from mlgate.analyzers.core.report import TargetReport

MAX_DEFAULT_JOBS = 8
"""Worker processes ``--jobs`` defaults to at most, however many CPUs there are."""
MAX_TARGET_BATCH = 32
"""File targets per task at most (``_scan_on``)."""
POOL_MIN_FILES = 200
"""Files (in all targets of a call) from which the call starts worker processes (a reference
target, downloaded, always does). Below it the workers' own start (fork, the imports and the h5py
child each needs) costs more than they save: on the 2-core machine of bench/README.md, 32 and 96
files of the mixed folder took 0.2 s longer on 2 workers, the 153 fixtures as long, the 1,000 files
0.25 s less."""


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
    parser.add_argument(
        "--jobs",
        "-j",
        type=_positive_int,
        default=None,
        metavar="N",
        help="worker processes sharing the files of every target (default: the CPUs this process may use, "
        f"at most {MAX_DEFAULT_JOBS}; scans of fewer than {POOL_MIN_FILES} files run in this process)",
    )
    parser.add_argument(
        "--digest",
        action="store_true",
        help="hash every file for the report's content digest (default: null, or [scan] digest in the policy)",
    )
    parser.add_argument("--no-progress", action="store_true", help="never show the progress bar")
    parser.set_defaults(func=run, logging_when_needed=True)


def run(args: argparse.Namespace) -> int:
    if any(is_reference(path) for path in args.paths):
        configure_logging(args.verbose)  # resolvers log; local scans load logging only with -v (or a pool)
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
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text)
    else:
        sys.stdout.write(text)
    return EXIT_QUARANTINED if any(r.verdict is Verdict.QUARANTINED for r in reports) else EXIT_OK


def scan_all(
    paths: list[str], policy: Policy, jobs: int | None = None, show_progress: bool = True, digest: bool = False
) -> list[TargetReport]:
    """Scan each path, keeping the order of ``paths``; ``digest`` fills each report's content digest.

    ``jobs`` worker processes (default ``default_jobs()``) share the files of every target: a folder's
    files are split across them and merged back into one report per target, the same report a scan in
    one process gives (``analyzers/core/parallel.py``); file targets are scanned whole on them, in
    batches. The pool is started once for the call; folders and references are orchestrated by threads
    of this process that wait on it. A call with fewer than ``POOL_MIN_FILES`` files runs in this
    process (starting workers would cost more than it saves).
    """
    workers = jobs or default_jobs()
    progress = Progress(total=len(paths), enabled=show_progress and _wants_progress(paths))
    try:
        files = _local_files(paths)
        if workers == 1 or (len(files) < POOL_MIN_FILES and not any(map(is_reference, paths))):
            reports = []
            for path in paths:
                reports.append(_scan_one(path, policy, digest))
                progress.advance(path)
            return reports
        from mlgate.analyzers.core.parallel import WorkerPool

        configure_logging(0)  # the pool logs (a no-op when -v configured it already)
        with WorkerPool(workers, files) as pool:  # forked here, before any thread of this call starts
            if len(paths) == 1:
                report = _scan_one(paths[0], policy, digest, pool)
                progress.advance(paths[0])
                return [report]
            return _scan_on(pool, paths, policy, digest, progress)
    finally:
        progress.close()


def _scan_on(
    pool: WorkerPool, paths: list[str], policy: Policy, digest: bool, progress: Progress
) -> list[TargetReport]:
    """Many targets on one pool: file targets whole, in batches (the per-target work runs in the workers
    too); folders and references from threads of this process, their files on the pool."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    singles = [i for i, path in enumerate(paths) if not is_reference(path) and not os.path.isdir(path)]
    per = max(1, min(MAX_TARGET_BATCH, -(-len(singles) // (pool.workers * 4))))
    batches = [singles[k : k + per] for k in range(0, len(singles), per)]
    taken = set(singles)
    others = [i for i in range(len(paths)) if i not in taken]
    results: dict[int, TargetReport] = {}
    threads = ThreadPoolExecutor(
        max_workers=max(1, min(len(others), 2 * pool.workers + 2)), thread_name_prefix="mlgate-scan"
    )
    try:
        pending: dict[Future, list[int]] = {
            pool.submit(_scan_targets, [paths[i] for i in batch], policy, digest): batch for batch in batches
        }
        pending.update({threads.submit(_scan_one, paths[i], policy, digest, pool): [i] for i in others})
        for future in as_completed(pending):
            indexes = pending[future]
            if indexes[0] in taken:
                reports = _batch_reports(pool, future, [paths[i] for i in indexes], policy, digest)
            else:
                reports = [future.result()]
            for i, report in zip(indexes, reports, strict=True):
                results[i] = report
                progress.advance(paths[i])
    finally:
        threads.shutdown(wait=True, cancel_futures=True)
    return [results[i] for i in range(len(paths))]


def _scan_targets(paths: list[str], policy: Policy, digest: bool) -> list[TargetReport]:
    """Worker: scan file targets whole, one after the other."""
    return [_scan_one(path, policy, digest) for path in paths]


def _batch_reports(
    pool: WorkerPool, future: Future, paths: list[str], policy: Policy, digest: bool
) -> list[TargetReport]:
    """A batch's reports; when its worker died, each target again alone: the one whose worker dies alone
    gets a report with an incomplete ``MLG-CORE-004`` finding, the others their own report."""
    from concurrent.futures.process import BrokenProcessPool

    try:
        return future.result()
    except UsageError:
        raise
    except Exception:
        import logging  # loaded when a batch fails only

        logging.getLogger("mlgate.cli").debug("a batch of %d targets failed; one by one", len(paths), exc_info=True)
    reports = []
    for path in paths:
        try:
            reports.append(pool.submit(_scan_targets, [path], policy, digest).result()[0])
        except UsageError:
            raise
        except BrokenProcessPool:
            reports.append(_crashed_report(path, policy, "the worker process scanning it died"))
        except Exception as exc:
            import logging

            logging.getLogger("mlgate.cli").debug("%s failed alone", path, exc_info=True)
            reports.append(_crashed_report(path, policy, f"{type(exc).__name__}: {exc}"))
    return reports


def _crashed_report(path: str, policy: Policy, why: str) -> TargetReport:
    from mlgate.analyzers.core.report import build_report
    from mlgate.analyzers.core.walker import CRASH, TargetScan

    finding = CRASH.finding(os.path.basename(path), f"not scanned: {why}")
    return build_report(TargetScan(path, [finding], False, [], "", 0.0, 0, 0), policy, [])


def default_jobs() -> int:
    """Worker processes by default: the CPUs this process may run on (affinity and cgroup quota), at
    most ``MAX_DEFAULT_JOBS``. Not the load average: back-to-back scans (a CI job, a benchmark) raise
    it themselves, and on busy cores the pool costs little more than one process (bench/README.md)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, _cgroup_cpus() or cpus, MAX_DEFAULT_JOBS))


CGROUP_CPU_MAX = "/sys/fs/cgroup/cpu.max"
"""The cgroup v2 CPU quota of this process's group (``_cgroup_cpus``)."""


def _cgroup_cpus() -> int | None:
    """CPUs a cgroup v2 quota allows (``cpu.max``: ``200000 100000`` is 2), None without a quota."""
    try:
        with open(CGROUP_CPU_MAX) as limits:
            quota, period = limits.read().split()[:2]
        return None if quota == "max" else max(1, -(-int(quota) // int(period)))
    except (OSError, ValueError):
        return None


def _local_files(paths: list[str], limit: int = 10_000) -> list[str]:
    """Paths of the files of the local targets (at most ``limit``): how many decides whether to start
    workers, and their names which analyzers to import before the workers fork."""
    files: list[str] = []
    for path in paths:
        if is_reference(path):
            continue
        if not os.path.isdir(path):
            files.append(path)
            continue
        for dirpath, _dirnames, filenames in os.walk(path):
            files.extend(os.path.join(dirpath, name) for name in filenames)
            if len(files) >= limit:
                return files
    return files


def _scan_one(path: str, policy: Policy, digest: bool, pool: WorkerPool | None = None) -> TargetReport:
    if is_reference(path):
        try:
            return scan_reference(path, policy, compute_digest=digest, pool=pool)
        except TargetError as exc:
            raise UsageError(str(exc)) from None
    try:
        return scan_target(path, policy, label=path, compute_digest=digest, pool=pool)
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
    from pathlib import Path  # only with --output: a plain scan never loads pathlib

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
