"""Prometheus metrics (docs/contracts.md §4). One registry for the process; labels stay low-cardinality.

Never put a model name, version or object key in a label: those go to logs and events.

``configure_metrics`` runs once at start-up (controller, admission server): it turns the
``*_created`` series off unless configured on (``http.created_series``), and creates every
labelled series the alerts read at 0 for the configured sources, so the first increment after
a restart is an increase Prometheus can see (a series born at 1 has no increase).
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, disable_created_metrics

from mlgate.analyzers.core.report import version

# Off by default (they double the series count and no alert uses them); configure_metrics decides at start-up.
disable_created_metrics()

REGISTRY = CollectorRegistry(auto_describe=True)

SCANS = Counter(
    "mlgate_scans",
    "Scans finished, by source and verdict (approved|quarantined|error).",
    ["source", "verdict"],
    registry=REGISTRY,
)
FINDINGS = Counter(
    "mlgate_findings", "Findings reported, by severity and rule id.", ["severity", "rule"], registry=REGISTRY
)
SCAN_DURATION = Histogram(
    "mlgate_scan_duration_seconds",
    "Wall time of one model scan.",
    ["source"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
    registry=REGISTRY,
)
SCANNED_BYTES = Counter("mlgate_scanned_bytes", "Bytes actually read while scanning.", ["source"], registry=REGISTRY)
QUEUE_DEPTH = Gauge("mlgate_queue_depth", "Scan requests waiting for a worker.", registry=REGISTRY)
LAST_SYNC = Gauge(
    "mlgate_last_successful_sync_timestamp_seconds",
    "Unix time of the last complete reconcile pass.",
    ["source"],
    registry=REGISTRY,
)
LEADER = Gauge("mlgate_leader", "1 when this replica holds the reconcile lease.", registry=REGISTRY)
ADMISSION_REQUESTS = Counter(
    "mlgate_admission_requests", "Kubernetes admission reviews answered.", ["kind", "allowed"], registry=REGISTRY
)
EVENTS_RECEIVED = Counter(
    "mlgate_events_received", "Events (webhooks, SQS messages) received.", ["source"], registry=REGISTRY
)
EVENTS_REJECTED = Counter(
    "mlgate_events_rejected", "Events rejected, by reason.", ["source", "reason"], registry=REGISTRY
)
PROMOTIONS_BLOCKED = Counter(
    "mlgate_promotions_blocked", "Promotions (alias/stage) refused or reverted.", ["source"], registry=REGISTRY
)
EXCEPTIONS_APPLIED = Counter(
    "mlgate_exceptions_applied",
    "Uses of a reviewed, signed per-version exception (a verdict or promotion that rests on one), by layer.",
    ["source"],
    registry=REGISTRY,
)
SHARDS = Gauge("mlgate_shards", "Shards model names are spread over (configured).", registry=REGISTRY)
SHARDS_OWNED = Gauge("mlgate_shards_owned", "Shards this replica owns (holds the Lease of).", registry=REGISTRY)
REQUESTS_NOT_OWNED = Counter(
    "mlgate_requests_not_owned",
    "Reconcile work left to the owner of its shard (queued or dequeued after the shard moved away).",
    ["source"],
    registry=REGISTRY,
)
_BYTE_BUCKETS = tuple(float(2**n) for n in range(20, 37, 2))  # 1 MiB .. 64 GiB
SCAN_PEAK_MEMORY = Histogram(
    "mlgate_scan_peak_memory_bytes",
    "Highest resident memory of the process while one scan ran (sampled; concurrent scans share it).",
    ["source"],
    buckets=_BYTE_BUCKETS,
    registry=REGISTRY,
)
SCAN_PEAK_STATE_DIR = Histogram(
    "mlgate_scan_peak_state_dir_bytes",
    "Highest disk usage of the state directory while one scan ran (sampled).",
    ["source"],
    buckets=_BYTE_BUCKETS,
    registry=REGISTRY,
)
STATE_DIR_BYTES = Gauge("mlgate_state_dir_bytes", "Disk usage of the state directory now.", registry=REGISTRY)
BUILD_INFO = Info("mlgate_build", "mlgate build information.", registry=REGISTRY)
BUILD_INFO.info({"version": version()})

SCAN_VERDICTS = ("approved", "quarantined", "error")


def configure_metrics(
    sources: Iterable[str] = (),
    event_sources: dict[str, Iterable[str]] | None = None,
    admission_kinds: Iterable[str] = (),
    created_series: bool = False,
) -> None:
    """Start-up: ``_created`` series on or off, and every labelled series the alerts use at 0.

    ``sources`` are the scan sources (``mlflow``, ``s3``), ``event_sources`` maps an event
    source label to its rejection reasons, ``admission_kinds`` are the admission ``kind`` labels.
    """
    from prometheus_client import disable_created_metrics, enable_created_metrics

    if created_series:
        enable_created_metrics()
    else:
        disable_created_metrics()
    for source in sources:
        for verdict in SCAN_VERDICTS:
            SCANS.labels(source=source, verdict=verdict)
        SCAN_DURATION.labels(source=source)
        SCANNED_BYTES.labels(source=source)
        SCAN_PEAK_MEMORY.labels(source=source)
        SCAN_PEAK_STATE_DIR.labels(source=source)
        REQUESTS_NOT_OWNED.labels(source=source)
        LAST_SYNC.labels(source=source)
        PROMOTIONS_BLOCKED.labels(source=source)
    for source, reasons in (event_sources or {}).items():
        EVENTS_RECEIVED.labels(source=source)
        for reason in reasons:
            EVENTS_REJECTED.labels(source=source, reason=reason)
    for kind in admission_kinds:
        for allowed in ("true", "false"):
            ADMISSION_REQUESTS.labels(kind=kind, allowed=allowed)
