"""The controller runtime: a work queue, scan workers, one reconcile loop per source, backoff, readiness.

* ``WorkQueue``: priority queue of ``ScanRequest``s, merged by (source, key) while
  queued, with delayed retries; ``mlgate_queue_depth`` follows it.
* Workers call ``source.scan`` then ``source.record`` and export the scan metrics
  (sources only talk to their registry). ``SourceUnavailable`` is retried with
  backoff forever (no version is lost); other failures count as
  ``verdict="error"`` and are retried ``backoff.max_scan_attempts`` times, after
  which the next reconcile pass finds the item again.
* Reconcile loops run only while ``leadership.is_leader()`` (hook for the
  Kubernetes Lease in ``controller/runtime/leader.py``); failures back off exponentially.
* Sharding (``controller/runtime/shards.py``): when the leadership is an ``Ownership``, a sharded
  source (one with ``shard_key(request)`` and an ``owns`` attribute the runtime points at the
  ownership) reconciles while this replica owns any shard and only looks at the names it owns;
  requests whose ``shard_key`` names a shard owned elsewhere are left to its owner (counted in
  ``mlgate_requests_not_owned_total``): ``enqueue`` drops them, a lost shard's queued requests
  are dropped, and a worker checks ownership before each scan. Requests without a shard key
  (MLflow webhooks, alias checks) run where they arrive. A gained shard makes
  the next pass a full one (``source.resync()``) and runs it at once. Other sources (S3)
  reconcile on the leader, the owner of shard 0.
* ``/readyz`` says whether this replica can do its job: a follower always (it
  serves webhooks and events); the leader once every source's first reconcile
  pass succeeded, and not while a pass is failing (registry unreachable).
* Each scan runs under ``ResourceSampler``: the process's peak memory and the peak usage of the
  scans' scratch folder (``<state dir>/work``) become histograms; ``mlgate_state_dir_bytes`` (the
  whole state directory) is measured after reconcile passes, at most once a minute.
* Sources with a ``start_events(process, stop)`` method (SQS consumers) get it called on
  every replica; it returns its threads, which end when ``stop`` is set.
* Extra HTTP handlers (the admission webhook) are added with ``runtime.http.add_route``.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from mlgate.analyzers.core.report import TargetReport

from ..config.settings import BackoffConfig
from ..verdicts.tags import top_rules
from .http_server import HttpServer
from .interface import ScanRequest, Source, SourceUnavailable, failed_bytes_read
from .logging_json import fields
from .metrics import (
    FINDINGS,
    LAST_SYNC,
    LEADER,
    QUEUE_DEPTH,
    REQUESTS_NOT_OWNED,
    SCAN_DURATION,
    SCAN_PEAK_MEMORY,
    SCAN_PEAK_STATE_DIR,
    SCANNED_BYTES,
    SCANS,
    SHARDS,
    SHARDS_OWNED,
    STATE_DIR_BYTES,
)
from .resources import ResourceSampler, disk_usage
from .shards import shard_of

log = logging.getLogger("mlgate.runtime")


class Leadership(Protocol):
    """Who may run reconcile loops. ``controller/runtime/leader.py`` provides the Kubernetes Lease implementation."""

    def is_leader(self) -> bool: ...


def _sharded(source: object) -> bool:
    """A source that spreads its names over shards (see ``controller/runtime/shards.py``)."""
    return hasattr(source, "shard_key") and hasattr(source, "owns")


class AlwaysLeader:
    """Single-replica default."""

    def is_leader(self) -> bool:
        return True


def backoff_delay(attempt: int, settings: BackoffConfig, rand: Callable[[], float] = random.random) -> float:
    """Exponential backoff with +-20 % jitter: initial * 2**(attempt-1), capped at max."""
    base = min(settings.max_seconds, settings.initial_seconds * (2 ** max(0, attempt - 1)))
    return base * (0.8 + 0.4 * rand())


class WorkQueue:
    """Thread-safe priority queue of scan requests, merged by (source, key) while waiting.

    Due requests wait in a heap ordered by (priority, arrival); delayed retries wait in a
    heap ordered by due time and move over when due. Each identity has one live entry
    (its token); heap entries with an older token are stale and skipped.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._ready: list[tuple[int, int, tuple[str, tuple[str, ...]]]] = []
        self._delayed: list[tuple[float, int, tuple[str, tuple[str, ...]]]] = []
        self._pending: dict[tuple[str, tuple[str, ...]], tuple[ScanRequest, int]] = {}
        self._active: set[tuple[str, tuple[str, ...]]] = set()
        self._seq = itertools.count()
        self._closed = False

    @staticmethod
    def identity(request: ScanRequest) -> tuple[str, tuple[str, ...]]:
        return (request.source, request.key)

    def put(self, request: ScanRequest, delay: float = 0.0) -> bool:
        """Queue ``request`` (after ``delay`` seconds); False when merged into or dropped for an existing one."""
        ident = self.identity(request)
        with self._cond:
            if self._closed:
                return False
            if ident in self._active and request.reason == "reconcile" and not request.force and request.attempt == 0:
                # The running scan will write the verdict this pass is asking for. A retry of that
                # very scan (attempt > 0) is re-queued by its own worker and must not be dropped.
                return False
            current = self._pending.get(ident)
            if current is not None:
                old = current[0]
                merged = replace(old, priority=min(old.priority, request.priority), force=old.force or request.force)
                if merged == old and delay > 0.0:
                    return False  # already waiting; a retry must not postpone it
                request = replace(merged, attempt=max(old.attempt, request.attempt))
            token = next(self._seq)
            self._pending[ident] = (request, token)
            if delay > 0.0:
                heapq.heappush(self._delayed, (time.monotonic() + delay, token, ident))
            else:
                heapq.heappush(self._ready, (request.priority, token, ident))
            QUEUE_DEPTH.set(len(self._pending))
            self._cond.notify()
            return current is None

    def get(self, timeout: float | None = None) -> ScanRequest | None:
        """The next due request (marked active until ``done``), or None on timeout/close."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                while self._delayed and self._delayed[0][0] <= now:
                    _, token, ident = heapq.heappop(self._delayed)
                    live = self._pending.get(ident)
                    if live is not None and live[1] == token:
                        heapq.heappush(self._ready, (live[0].priority, token, ident))
                while self._ready:
                    _, token, ident = heapq.heappop(self._ready)
                    live = self._pending.get(ident)
                    if live is not None and live[1] == token:
                        del self._pending[ident]
                        self._active.add(ident)
                        QUEUE_DEPTH.set(len(self._pending))
                        return live[0]
                if deadline is not None and now >= deadline:
                    return None
                waits = [] if deadline is None else [deadline - now]
                if self._delayed:
                    waits.append(self._delayed[0][0] - now)
                self._cond.wait(max(min(waits), 0.001) if waits else None)
            return None

    def done(self, request: ScanRequest) -> None:
        with self._cond:
            self._active.discard(self.identity(request))
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is queued or running; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._active:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.5))
            return True

    def __len__(self) -> int:
        with self._cond:
            return len(self._pending)

    def discard(self, unwanted: Callable[[ScanRequest], bool]) -> int:
        """Drop every queued (not running) request ``unwanted`` selects; how many were dropped."""
        with self._cond:
            gone = [ident for ident, (request, _) in self._pending.items() if unwanted(request)]
            for ident in gone:
                del self._pending[ident]  # its heap entries are stale now and skipped
            QUEUE_DEPTH.set(len(self._pending))
            self._cond.notify_all()
            return len(gone)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


@dataclass
class ScanResult:
    """What a worker did with one request, kept for ``--once`` summaries."""

    source: str
    subject: str
    verdict: str  # approved | quarantined | error
    top: str


class Runtime:
    """Runs sources: reconcile loops, workers, HTTP server. See the module docstring."""

    def __init__(
        self,
        sources: Sequence[Source],
        backoff: BackoffConfig,
        workers: int = 2,
        poll_interval: float = 30.0,
        http: HttpServer | None = None,
        leadership: Leadership | None = None,
        state_dir: Path | None = None,
    ) -> None:
        self.sources = {s.name: s for s in sources}
        self.backoff = backoff
        self.workers = workers
        self.poll_interval = poll_interval
        self.http = http
        self.queue = WorkQueue()
        self.state_dir = state_dir
        self.resources = ResourceSampler(state_dir / "work" if state_dir is not None else None)
        self._state_dir_measured = -1e9
        self._wake = {name: threading.Event() for name in self.sources}
        for source in self.sources.values():
            if _sharded(source):
                source.owns = self.owns  # type: ignore[attr-defined]
        self._inflight: dict[str, int] = {}  # model names (shard keys) being scanned now
        self._inflight_lock = threading.Lock()
        self._leadership: Leadership = AlwaysLeader()
        self.leadership = leadership or AlwaysLeader()
        self.results: list[ScanResult] = []
        self._results_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._synced: dict[str, bool] = dict.fromkeys(self.sources, False)
        self._sync_error: dict[str, str] = {}
        self.on_pass_failed: Callable[[str, str], None] | None = None
        """Called with (source, error) when a reconcile pass fails (``--once`` prints it at once)."""
        if http is not None:
            http.add_route("GET", "/healthz", lambda _req: (200, "text/plain", b"ok\n"))
            http.add_route("GET", "/readyz", self._readyz)

    # -- ownership ------------------------------------------------------------------------------

    @property
    def leadership(self) -> Leadership:
        return self._leadership

    @leadership.setter
    def leadership(self, leadership: Leadership) -> None:
        self._leadership = leadership
        subscribe = getattr(leadership, "subscribe", None)
        if subscribe is not None:
            subscribe(self._shards_changed)
        if hasattr(leadership, "busy"):
            leadership.busy = self._busy_shard  # type: ignore[attr-defined]

    def _busy_shard(self, shard: int) -> bool:
        """Is a scan of a name of ``shard`` running here (a given-up shard is handed over after it)?"""
        shards = getattr(self._leadership, "shards", 1)
        with self._inflight_lock:
            return any(shard_of(name, shards) == shard for name in self._inflight)

    def owns(self, name: str) -> bool:
        """Does this replica own the shard of model ``name``? Without sharding: while it leads."""
        owns = getattr(self._leadership, "owns", None)
        return bool(owns(name)) if owns is not None else self._leadership.is_leader()

    def _reconciles(self, source: Source) -> bool:
        """Does this replica run ``source``'s reconcile loop now?"""
        if _sharded(source):
            owns_any = getattr(self._leadership, "owns_any", None)
            if owns_any is not None:
                return bool(owns_any())
        return self._leadership.is_leader()

    def _owned(self, request: ScanRequest) -> bool:
        """False for a request of a shard another replica owns (left to that owner)."""
        source = self.sources.get(request.source)
        if source is None or not _sharded(source):
            return True
        name = source.shard_key(request)  # type: ignore[attr-defined]
        return name is None or self.owns(name)

    def _shards_changed(self, gained: frozenset[int], lost: frozenset[int]) -> None:
        if lost:
            dropped = self.queue.discard(lambda r: not self._owned(r))
            if dropped:
                log.info("shards lost: queued work dropped", extra=fields(shards=sorted(lost), count=dropped))
        if gained:
            for name, source in self.sources.items():
                if _sharded(source):
                    resync = getattr(source, "resync", None)
                    if resync is not None:
                        resync()
                    self._wake[name].set()

    # -- public ---------------------------------------------------------------------------------

    def enqueue(self, request: ScanRequest) -> None:
        if request.source not in self.sources:
            raise ValueError(f"no source named {request.source!r}")
        if not self._owned(request):
            REQUESTS_NOT_OWNED.labels(source=request.source).inc()
            log.debug("request left to its shard's owner", extra=fields(source=request.source, target=request.subject))
            return
        self.queue.put(request)

    def ready(self) -> bool:
        """Can this replica do its job? A follower always can (it serves webhooks and events, and never
        reconciles); the leader (with shards: an owner of any shard) once the latest reconcile pass of
        every source it reconciles succeeded (False again while one is failing, e.g. while the
        registry is unreachable)."""
        active = [name for name, source in self.sources.items() if self._reconciles(source)]
        return all(self._synced[name] for name in active)

    def start(self, continuous: bool = True) -> None:
        """Start the HTTP server and workers; ``continuous`` also starts reconcile loops and event consumers."""
        if self.http is not None:
            self.http.start()
        for i in range(self.workers):
            self._spawn(f"mlgate-worker-{i}", self._worker_loop)
        if not continuous:
            return
        for source in self.sources.values():
            self._spawn(f"mlgate-reconcile-{source.name}", lambda s=source: self._reconcile_loop(s))
            start_events = getattr(source, "start_events", None)  # optional: see sources.py
            if start_events is not None:
                self._threads.extend(start_events(self.process, self._stop))

    def stop(self, timeout: float = 10.0) -> None:
        self.request_stop()
        self.queue.close()
        for thread in self._threads:
            thread.join(timeout)
        if self.http is not None:
            self.http.stop()

    def request_stop(self) -> None:
        """Ask ``wait`` to return (safe from a signal handler)."""
        self._stop.set()
        for wake in self._wake.values():  # reconcile loops sleep on these
            wake.set()

    def wait(self) -> None:
        """Block until ``stop`` (from a signal handler or another thread)."""
        while not self._stop.wait(1.0):
            pass

    def run_once(self, timeout: float = 600.0) -> bool:
        """One reconcile pass per source (retrying outages until ``timeout``), then drain the queue.

        Returns True when every pass succeeded and the queue drained in time.
        """
        deadline = time.monotonic() + timeout
        self.start(continuous=False)
        ok = all(self._reconcile_with_retries(s, deadline) for s in self.sources.values())
        drained = self.queue.wait_idle(max(0.0, deadline - time.monotonic()))
        return ok and drained

    # -- reconcile ------------------------------------------------------------------------------

    def reconcile_source(self, source: Source) -> int:
        """One pass: queue what it found, export the sync time. Raises what the source raised."""
        requests = source.reconcile_once()
        for request in requests:
            self.queue.put(request)
        LAST_SYNC.labels(source=source.name).set_to_current_time()
        self.measure_state_dir()
        self._synced[source.name] = True
        self._sync_error.pop(source.name, None)
        log.info(
            "reconcile pass done", extra=fields(source=source.name, count=len(requests), queue_depth=len(self.queue))
        )
        return len(requests)

    def measure_state_dir(self, every: float = 60.0) -> int:
        """Refresh ``mlgate_state_dir_bytes`` (at most once per ``every`` seconds: it walks the folder)."""
        if self.state_dir is None or time.monotonic() - self._state_dir_measured < every:
            return -1
        self._state_dir_measured = time.monotonic()
        used = disk_usage(self.state_dir)
        STATE_DIR_BYTES.set(used)
        return used

    def _reconcile_with_retries(self, source: Source, deadline: float) -> bool:
        attempt = 0
        while not self._stop.is_set():
            try:
                self.reconcile_source(source)
                return True
            except Exception as exc:  # noqa: BLE001 - any failure of a pass is retried, never fatal
                attempt += 1
                delay = self._pass_failed(source, exc, attempt)
                if time.monotonic() + delay > deadline:
                    return False
                self._stop.wait(delay)
        return False

    def _reconcile_loop(self, source: Source) -> None:
        attempt = 0
        wake = self._wake[source.name]
        while not self._stop.is_set():
            leader = self.leadership.is_leader()
            LEADER.set(1 if leader else 0)
            if not hasattr(self.leadership, "owned"):  # no shards: the one shard is the leader's
                SHARDS.set(1)
                SHARDS_OWNED.set(1 if leader else 0)
            if not self._reconciles(source):
                self._synced[source.name] = False  # a pass is due once this replica reconciles again
                wake.wait(1.0)
                wake.clear()
                continue
            try:
                self.reconcile_source(source)
                attempt = 0
                delay = self.poll_interval
            except Exception as exc:  # noqa: BLE001 - the loop must survive anything a registry answers
                attempt += 1
                delay = self._pass_failed(source, exc, attempt)
            wake.wait(delay)
            wake.clear()

    def sync_errors(self) -> dict[str, str]:
        """The last error of every source whose latest reconcile pass failed (what ``/readyz`` names)."""
        pending = [n for n, ok in self._synced.items() if not ok]
        return {n: self._sync_error.get(n, "first reconcile pass not finished") for n in pending}

    def _pass_failed(self, source: Source, exc: Exception, attempt: int) -> float:
        self._synced[source.name] = False
        self._sync_error[source.name] = f"{type(exc).__name__}: {exc}"
        if self.on_pass_failed is not None:
            self.on_pass_failed(source.name, self._sync_error[source.name])
        delay = backoff_delay(attempt, self.backoff)
        level = logging.WARNING if isinstance(exc, SourceUnavailable) else logging.ERROR
        log.log(
            level,
            "reconcile pass failed; retrying",
            exc_info=not isinstance(exc, SourceUnavailable),
            extra=fields(source=source.name, error=str(exc), attempt=attempt, retry_in_s=round(delay, 2)),
        )
        return delay

    def _readyz(self, _request: object) -> tuple[int, str, bytes]:
        if not any(self._reconciles(source) for source in self.sources.values()):
            return 200, "text/plain", b"ready (follower: serving webhooks and events)\n"
        if self.ready():
            return 200, "text/plain", b"ready\n"
        detail = "; ".join(f"{n}: {error}" for n, error in self.sync_errors().items())
        return 503, "text/plain", f"not ready: {detail}\n".encode()

    # -- workers --------------------------------------------------------------------------------

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _worker_loop(self) -> None:
        while not self._stop.is_set():
            request = self.queue.get(timeout=1.0)
            if request is None:
                continue
            source = self.sources[request.source]
            key = source.shard_key(request) if _sharded(source) else None  # type: ignore[attr-defined]
            if key is not None:  # counted before the ownership check: a shard given up meanwhile waits for it
                with self._inflight_lock:
                    self._inflight[key] = self._inflight.get(key, 0) + 1
            try:
                if self._owned(request):
                    self.process(request)
                else:  # its shard moved to another replica while it waited
                    REQUESTS_NOT_OWNED.labels(source=request.source).inc()
            finally:
                self.queue.done(request)
                if key is not None:
                    with self._inflight_lock:
                        self._inflight[key] -= 1
                        if not self._inflight[key]:
                            del self._inflight[key]

    def process(self, request: ScanRequest) -> bool:
        """Scan and record one request, with metrics and retries.

        True when the request is settled (nothing to do, or its verdict is recorded); False when it
        failed and was queued again or left for the next reconcile pass (event consumers keep their
        message then)."""
        source = self.sources[request.source]
        started = time.monotonic()
        extra = {"source": source.name, "target": request.subject, "attempt": request.attempt}
        report: TargetReport | None = None
        try:
            with self.resources.during() as peak:
                scanned = source.scan(request)
            if scanned is None:
                return True
            SCAN_PEAK_MEMORY.labels(source=source.name).observe(peak.memory)
            SCAN_PEAK_STATE_DIR.labels(source=source.name).observe(peak.state_dir)
            report = scanned.report
            source.record(request, scanned)
        except SourceUnavailable as exc:
            self._count_unrecorded_bytes(source.name, report, exc)
            delay = backoff_delay(request.attempt + 1, self.backoff)
            log.warning(
                "source unavailable; scan retried later",
                extra=fields(**extra, error=str(exc), retry_in_s=round(delay, 2)),
            )
            self.queue.put(replace(request, attempt=request.attempt + 1), delay=delay)
            return False
        except Exception as exc:  # one bad item must not stop the worker
            self._count_unrecorded_bytes(source.name, report, exc)
            SCANS.labels(source=source.name, verdict="error").inc()
            self._remember(source.name, request.subject, "error", f"{type(exc).__name__}: {exc}")
            if request.attempt + 1 < self.backoff.max_scan_attempts:
                delay = backoff_delay(request.attempt + 1, self.backoff)
                log.error(
                    "scan failed; retrying",
                    exc_info=True,
                    extra=fields(**extra, error=str(exc), retry_in_s=round(delay, 2)),
                )
                self.queue.put(replace(request, attempt=request.attempt + 1), delay=delay)
            else:
                log.error(
                    "scan failed; left for the next reconcile pass",
                    exc_info=True,
                    extra=fields(**extra, error=str(exc)),
                )
            return False
        self._observe(source.name, request, report, time.monotonic() - started)
        return True

    @staticmethod
    def _count_unrecorded_bytes(source: str, report: TargetReport | None, exc: BaseException) -> None:
        """Bytes a failed scan (or a scan whose verdict could not be recorded) read were still fetched."""
        read = report.bytes_read if report is not None else failed_bytes_read(exc)
        if read:
            SCANNED_BYTES.labels(source=source).inc(read)

    def _observe(self, source: str, request: ScanRequest, report: TargetReport, duration: float) -> None:
        verdict = report.verdict.value
        SCANS.labels(source=source, verdict=verdict).inc()
        SCAN_DURATION.labels(source=source).observe(duration)
        SCANNED_BYTES.labels(source=source).inc(report.bytes_read)
        for finding in report.findings:
            if finding.suppressed is None:
                FINDINGS.labels(severity=finding.severity.label, rule=finding.rule).inc()
        top = ", ".join(top_rules(report))
        self._remember(source, request.subject, verdict, top)
        level = logging.WARNING if verdict != "approved" else logging.INFO
        if request.key[0] == "version" and len(request.key) == 3:  # an MLflow model version
            model, version = request.key[1], request.key[2]
        else:  # e.g. an S3 model (bucket, key): a key is no version
            model, version = "/".join(request.key), None
        log.log(
            level,
            "scanned",
            extra=fields(
                source=source,
                target=request.subject,
                model=model or None,
                version=version,
                verdict=verdict,
                digest=report.digest,
                findings=top,
                duration_s=round(duration, 3),
                reason=request.reason,
            ),
        )

    def _remember(self, source: str, subject: str, verdict: str, top: str) -> None:
        with self._results_lock:
            self.results.append(ScanResult(source, subject, verdict, top))
