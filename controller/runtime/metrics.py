"""Prometheus metrics (docs/contracts.md §4). One registry for the process; labels stay low-cardinality.

Never put a model name, version or object key in a label: those go to logs and events.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, disable_created_metrics

from mlgate.analyzers.core.report import version

disable_created_metrics()  # no *_created series: they double the series count and no alert uses them

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
BUILD_INFO = Info("mlgate_build", "mlgate build information.", registry=REGISTRY)
BUILD_INFO.info({"version": version()})
