"""The ``Source`` protocol: what the runtime needs from a place models live (MLflow registry, S3 bucket).

A source is level-triggered. The runtime calls ``reconcile_once()`` periodically
(only on the leader); it returns every item that lacks a valid verdict, and may
also repair state it owns (the MLflow source reverts unapproved aliases there).
Events (webhooks, SQS) are hints: they only create ``ScanRequest``s, which the
runtime's workers hand back to the same source:

    scanned = source.scan(request)        # None: nothing to do (already verdicted, gone)
    if scanned is not None:
        source.record(request, scanned)   # write the verdict (tags, quarantine move)

``Scanned`` carries the report plus whatever the source needs to record it
(the S3 source's pinned object versions and its scan claim), so ``record`` gets
exactly what its own ``scan`` produced, with no lookup on the side.

Optional: ``start_events(process, stop) -> list[Thread]`` starts event consumers
(on every replica) that call ``process(request)`` (the runtime's synchronous
scan + record + metrics) and end when the ``stop`` event is set.

``scan`` and ``record`` may raise ``SourceUnavailable`` for a transient outage: the runtime retries
the request with backoff and never drops it. Any other exception counts as a
failed scan (``mlgate_scans_total{verdict="error"}``), is retried a few times,
and the next reconcile pass finds the item again. ``scan`` and ``record`` must
be idempotent and safe to call from several worker threads at once. The runtime
exports the scan metrics (scans, findings, duration, bytes); sources do not. A
scan that fails after reading (S3 ranged GETs, then a failed read) marks its
exception with ``with_bytes_read`` so those bytes are counted too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar, runtime_checkable

from mlgate.analyzers.core.report import TargetReport

# Priorities: lower runs first. Promotion checks are cheap and time-critical; event-driven
# scans beat the backlog found by a reconcile pass.
PRIORITY_GATE = 0
PRIORITY_EVENT = 1
PRIORITY_RECONCILE = 2


class SourceUnavailable(Exception):
    """The source cannot be reached right now (connection refused, 5xx, malformed answer): retry later."""


_E = TypeVar("_E", bound=BaseException)


def with_bytes_read(exc: _E, bytes_read: int) -> _E:
    """``exc``, marked with the bytes its scan read before failing (``failed_bytes_read`` gives them back)."""
    exc.bytes_read = bytes_read  # type: ignore[attr-defined]
    return exc


def failed_bytes_read(exc: BaseException) -> int:
    """The bytes a failed scan read, as marked by ``with_bytes_read`` (0 when unmarked)."""
    value = getattr(exc, "bytes_read", 0)
    return value if isinstance(value, int) else 0


@dataclass(frozen=True)
class ScanRequest:
    """One unit of work for a source. ``key`` identifies the item within the source, e.g.
    ``("version", "fraud", "3")``, ``("alias", "fraud", "champion")`` or ``(bucket, prefix)``;
    requests with the same (source, key) are merged while queued."""

    source: str
    key: tuple[str, ...]
    reason: str = "reconcile"  # reconcile | webhook | event | verify | demo ...
    priority: int = PRIORITY_RECONCILE
    force: bool = False  # rescan even when a valid verdict is present (digest verification)
    attempt: int = field(default=0, compare=False)

    @property
    def subject(self) -> str:
        """Human-readable identity for logs: ``fraud/3``."""
        return "/".join(self.key[1:]) if len(self.key) > 1 else self.key[0]


@dataclass
class Scanned:
    """A finished scan, handed back to the source that made it."""

    report: TargetReport
    state: object = None  # the source's own data for ``record`` (opaque to the runtime)


@runtime_checkable
class Source(Protocol):
    """A place models live. ``name`` is the low-cardinality ``source`` metric label (``mlflow``, ``s3``)."""

    name: str

    def reconcile_once(self) -> list[ScanRequest]:
        """One pass over the source: requests for every item lacking a valid verdict."""
        ...

    def scan(self, request: ScanRequest) -> Scanned | None:
        """Fetch and scan the item; ``None`` when there is nothing to do."""
        ...

    def record(self, request: ScanRequest, scanned: Scanned) -> None:
        """Write the verdict of ``scanned`` (from this source's ``scan``) back to the source."""
        ...


Enqueue = Callable[[ScanRequest], None]
"""How event receivers hand work to the runtime (``Runtime.enqueue``)."""
