"""A target's top-level files walked on worker processes, merged back into what one walk reports.

``WorkerPool`` is the process pool of one scan call (``mlgate scan --jobs N``), shared by every
target and dependency of the call: its workers are forked once, when the pool starts, after the
analyzers the call's file names promise were imported (``preload``), so none is imported twice.
``walk_on_pool`` (what ``walker.scan_path`` calls, through ``WorkerPool.walk``, when it is given a
pool) sends a target's files to the workers in chunks of consecutive files (``plan_chunks``) and
walks the small HDF5-named ones itself meanwhile (``split_here``: one h5py child for them all); each
file is walked on its own, in a fresh context holding the target's file list, budgets and deadline,
and gives one ``FileResult``. The parent replays them in file order with the
rules a single walk applies across files, so the report is the one a walk in one process gives:

- a budget is reported once per target (the first file that ran it out keeps the finding);
- a secret value is reported once (``ScanContext.observe_value`` skips values already seen in an
  earlier file) and redacted everywhere (the values of every file go to the parent's context);
- the byte and member budgets count the whole target: when the files' sum runs out at file K, the
  walk restarts at K in this process with the counts of the files before it, and stops where a
  single walk stops;
- the model's import roots (an MLflow ``code`` folder) are collected from every file before the
  findings about unknown modules are settled; the cross-file checks of the configs (shard
  indexes, files a config names) read ``ScanContext.files``, the whole file list, in every worker.

Nothing is skipped silently: an error a walk raises becomes a ``CRASH`` finding on its file, and
a worker process that dies (a crash in native code, the out-of-memory killer) takes down only its
chunk, whose files are walked again one per task in a fresh pool; the file whose worker dies alone
gets a ``CRASH`` finding, and the scan is incomplete.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from .artifact import Artifact
from .budget import Budgets
from .findings import Finding
from .kinds import Kind, expected_kinds, posix_name, promise_for
from .references import Reference
from .registry import analyzers_for, probe_for
from .walker import CRASH, ScanContext, ScanOptions, named_like_hdf5, walk_top, warm_up_for

log = logging.getLogger(__name__)

CHUNKS_PER_WORKER = 4
"""Chunks per worker of a big folder: enough for one slow chunk not to hold up the end."""
MAX_CHUNK_COST = 64
"""Cost of a chunk at most (``plan_chunks``; one round trip to a worker each)."""
HDF5_COST = 8
"""What a file named like HDF5 costs in a chunk, against 1 for any other (measured on the 1,000-file
folder of ``bench/compare.py``: about 8x the time of the average other file)."""
OWN_CHUNK_BYTES = 16 << 20
"""A file at least this big travels alone: its cost is unknown (a pickle VM over megabytes)."""


class WorkerPool:
    """The worker processes of one scan call, forked when it starts (before any thread of the call).

    Use as a context manager. ``submit`` is thread-safe; a pool that a dying worker broke is
    replaced by a fresh one on the next ``submit``.
    """

    def __init__(self, workers: int, files: Iterable[str] = ()) -> None:
        """``files``: paths of the files the call will scan, if known (some or all): the analyzers their
        names promise are imported here, once for every worker."""
        self.workers = max(1, workers)
        self._lock = threading.Lock()
        files = list(files)
        preload(os.path.basename(path) for path in files)
        self._executor = self._start()

    def _start(self) -> ProcessPoolExecutor:
        methods = multiprocessing.get_all_start_methods()
        # fork: the workers start with what this process imported (no interpreter start, no re-imports)
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        executor = ProcessPoolExecutor(max_workers=self.workers, mp_context=context)
        executor.submit(int).result()  # start the workers now, while this is the only thread
        return executor

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        with self._lock:
            try:
                return self._executor.submit(fn, *args)
            except BrokenProcessPool:
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = self._start()
                return self._executor.submit(fn, *args)

    def walk(self, paths: list[str], artifacts: list[Artifact], ctx: ScanContext) -> None:
        """``walk_on_pool`` on this pool (what ``walker.scan_path`` calls)."""
        walk_on_pool(self, paths, artifacts, ctx)

    def close(self) -> None:
        with self._lock:
            self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def preload(names: Iterable[str]) -> None:
    """Import the analyzers of the kinds these file names promise, and the pickle probe every file may
    need, here, before the workers fork: imported once for all of them instead of once in each."""
    kinds = {Kind.PICKLE}
    for name in names:
        base = posix_name(name)
        kinds.update(expected_kinds(base) or ())
        promise = promise_for(base)
        if promise is not None:
            kinds.update(promise.accepts)
    for kind in sorted(kinds, key=lambda k: k.value):
        analyzers_for(kind)
        probe_for(kind)


@dataclass
class _Observed:
    """One secrets observation of a file: its findings ``[start, end)`` and the values it added."""

    start: int
    end: int
    values: set[str]
    value_args: tuple[str, str, str] | None  # (location, value, field) of an ``observe_value`` call


@dataclass
class FileResult:
    """What walking one top-level file added to the target (indexes relative to its own findings)."""

    index: int
    findings: list[Finding] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)
    bytes_read: int = 0
    members: int = 0
    import_roots: list[str] = field(default_factory=list)
    observed: list[_Observed] = field(default_factory=list)
    budgets: list[tuple[str, int]] = field(default_factory=list)  # (budget, index of its finding)


@dataclass(frozen=True)
class _Job:
    target: str
    budgets: Budgets
    started: float
    names: frozenset[str]
    files: list[tuple[int, str, str, int | None]]  # (index, location, local path, size)


class _ChunkContext(ScanContext):
    """A worker's context: logs what the parent needs to replay the target-wide rules."""

    def __init__(self, job: _Job) -> None:
        super().__init__(job.target, ScanOptions(budgets=job.budgets, compute_digest=False))
        self.tracker.started = job.started  # the target's deadline, not the worker's
        self.tracker.deadline = job.started + job.budgets.max_seconds
        self.files = job.names
        self.observed: list[_Observed] = []
        self.budget_log: list[tuple[str, int]] = []
        self._value_args: tuple[str, str, str] | None = None

    def observe_value(self, location: str, value: str, field: str) -> None:
        self._value_args = (location, value, field)
        try:
            super().observe_value(location, value, field)
        finally:
            self._value_args = None

    def _observed(self, result: tuple[list[Finding], set[str]]) -> None:
        findings, values = result
        if findings or values:
            start = len(self.findings)
            new = set(values) - self.secret_values
            self.observed.append(_Observed(start, start + len(findings), new, self._value_args))
        super()._observed(result)

    def budget_exceeded(self, exc: Any, location: str) -> None:
        before = len(self.findings)
        super().budget_exceeded(exc, location)
        if len(self.findings) > before:
            self.budget_log.append((exc.budget, before))


def _scan_chunk(job: _Job) -> list[FileResult]:
    """Worker: walk each of the job's files on its own (a fresh context: what depends on other files
    is the parent's to replay), files named like HDF5 last (the h5py child starts meanwhile)."""
    warm_up_for(location for _, location, _, _ in job.files)
    out = []
    for index, location, path, size in sorted(job.files, key=lambda file: named_like_hdf5(file[1])):
        ctx = _ChunkContext(job)
        walk_top(ctx, Artifact(location, location, functools.partial(open, path, "rb"), size))
        out.append(
            FileResult(
                index=index,
                findings=ctx.findings,
                references=ctx.references,
                bytes_read=ctx.tracker.bytes_read,
                members=ctx.tracker.members,
                import_roots=ctx.import_roots,
                observed=ctx.observed,
                budgets=ctx.budget_log,
            )
        )
    return out


def split_here(names: list[str], sizes: list[int | None]) -> tuple[list[int], list[int]]:
    """(indexes this process walks, indexes for the workers). This process, idle otherwise, takes the
    small files named like HDF5: what costs in them is the round trip to the h5py child, not CPU, and
    one child serves them all instead of one per worker (a Python start and an h5py import each).
    Unless they are most of the target: then the workers share them like any other file."""
    here = [i for i, name in enumerate(names) if named_like_hdf5(name) and (sizes[i] or 0) < OWN_CHUNK_BYTES]
    if len(here) * 2 > len(names):
        here = []
    taken = set(here)
    return here, [i for i in range(len(names)) if i not in taken]


def plan_chunks(indexes: list[int], names: list[str], sizes: list[int | None], workers: int) -> list[list[int]]:
    """``indexes`` (ascending) in chunks of consecutive files of about equal cost, ``CHUNKS_PER_WORKER``
    per worker. A file named like HDF5 costs ``HDF5_COST`` (a round trip to the h5py child, whose
    wake-ups a loaded machine delays), any other 1; a big file travels alone.
    """
    costs = {i: HDF5_COST if named_like_hdf5(names[i]) else 1 for i in indexes}
    per = max(1, min(MAX_CHUNK_COST, -(-sum(costs.values()) // max(1, workers * CHUNKS_PER_WORKER))))
    chunks: list[list[int]] = []
    current: list[int] = []
    spent = 0
    for index in indexes:
        if (sizes[index] or 0) >= OWN_CHUNK_BYTES:
            chunks.append([index])
            continue
        current.append(index)
        spent += costs[index]
        if spent >= per:
            chunks.append(current)
            current, spent = [], 0
    if current:
        chunks.append(current)
    return chunks


def walk_on_pool(pool: WorkerPool, paths: list[str], artifacts: list[Artifact], ctx: ScanContext) -> None:
    """Walk the top-level ``artifacts`` (local files at ``paths``) of ``ctx``'s target on ``pool``.

    ``ctx`` ends as a walk of every artifact in this process would leave it (module docstring).
    """

    def job(indexes: list[int]) -> _Job:
        files = [(i, artifacts[i].location, paths[i], artifacts[i].size) for i in indexes]
        return _Job(ctx.target, ctx.options.budgets, ctx.tracker.started, ctx.files, files)

    def arrived(result: FileResult) -> None:
        results[result.index] = result
        kinds = {reference.kind for reference in result.references} - ctx._kinds_told
        if kinds and ctx.reference_kinds is not None:
            ctx._kinds_told |= kinds
            ctx.reference_kinds(kinds)

    results: list[FileResult | None] = [None] * len(artifacts)
    names, sizes = [a.location for a in artifacts], [a.size for a in artifacts]
    here, there = split_here(names, sizes)
    chunks = plan_chunks(there, names, sizes, pool.workers)
    submitted = [(chunk, pool.submit(_scan_chunk, job(chunk))) for chunk in chunks]
    suspects: list[int] = []
    if here:
        try:
            for result in _scan_chunk(job(here)):  # as a worker would, while the workers walk the rest
                arrived(result)
        except Exception:
            log.debug("HDF5 files of %s failed here", ctx.target, exc_info=True)
            suspects.extend(i for i in here if results[i] is None)
    for chunk, future in submitted:
        try:
            for result in future.result():
                arrived(result)
        except Exception:  # a worker died (BrokenProcessPool) or a result did not come back: retry alone
            log.debug("chunk of %d files of %s failed", len(chunk), ctx.target, exc_info=True)
            suspects.extend(chunk)
    for index in suspects:  # one file per task, one at a time: the file whose worker dies alone is the cause
        try:
            results[index] = pool.submit(_scan_chunk, job([index])).result()[0]
        except BrokenProcessPool:
            results[index] = _crashed(index, artifacts[index], _DIED)
        except Exception as exc:
            log.debug("%s failed alone", artifacts[index].location, exc_info=True)
            results[index] = _crashed(index, artifacts[index], f"{type(exc).__name__}: {exc}")
    _replay(ctx, artifacts, results)


_DIED = "the worker process scanning it died (a crash in native code, or killed, e.g. out of memory)"


def _crashed(index: int, artifact: Artifact, why: str) -> FileResult:
    return FileResult(index, [CRASH.finding(artifact.location, f"not scanned: {why}")])


def _replay(ctx: ScanContext, artifacts: list[Artifact], results: list[FileResult | None]) -> None:
    """Add the files' results to ``ctx`` in file order, as one walk would have (module docstring)."""
    budgets = ctx.options.budgets
    tracker = ctx.tracker
    for index, result in enumerate(results):
        assert result is not None
        if (
            tracker.bytes_read + result.bytes_read > budgets.max_bytes
            or tracker.members + result.members > budgets.max_members
        ):  # the target runs out here: walk the rest in this process, from where it does
            for artifact in artifacts[index:]:
                walk_top(ctx, artifact)
            return
        drop: set[int] = set()
        for budget, at in result.budgets:
            if budget in ctx._budgets_reported:
                drop.add(at)
            ctx._budgets_reported.add(budget)
        again: dict[int, tuple[int, list[Finding]]] = {}
        for seen in result.observed:
            if seen.value_args is not None:  # observe_value: a value an earlier file reported is not again
                from ..secrets import inspect_value

                found, values = inspect_value(*seen.value_args, ctx.secret_values)
                again[seen.start] = (seen.end, found)
                ctx.secret_values.update(values)
            else:
                ctx.secret_values.update(seen.values)
        ctx.findings.extend(_edited(result.findings, drop, again))
        ctx.references.extend(result.references)
        for root in result.import_roots:
            ctx.add_import_root(root)
        tracker.bytes_read += result.bytes_read
        tracker.members += result.members


def _edited(findings: list[Finding], drop: set[int], again: dict[int, tuple[int, list[Finding]]]) -> list[Finding]:
    """``findings`` without the indexes in ``drop``, each span ``[start, end)`` of ``again`` replaced."""
    out: list[Finding] = []
    i = 0
    while i < len(findings):
        if i in again:
            end, found = again[i]
            out.extend(found)
            if end > i:
                i = end
                continue
        if i not in drop:
            out.append(findings[i])
        i += 1
    return out
