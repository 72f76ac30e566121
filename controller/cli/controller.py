"""``mlgate controller [--config F] [--demo] [--once]``: run the admission controller.

With no configuration it watches the embedded sqlite registry in the state dir
(``./mlgate-demo`` or ``$MLGATE_HOME``); ``--demo`` seeds it with demo models
first; ``--once`` runs one reconcile pass, waits for its scans, prints a summary
table (MLflow versions, S3 models) and exits 0 only when every version and every
object of every source carries a verdict (1 otherwise); a source whose pass fails
is named on stderr at once.
``build_controller`` wires a configuration into a ``Runtime`` (tests use it).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from mlgate.analyzers.core.policy import Policy, PolicyError, load_policy

from ..config.environment import set_library_defaults
from ..config.settings import ConfigError, ControllerConfig, ensure_state_dir, load_config
from ..mlflow.server_plugin import set_controller_token
from ..mlflow.source import MLflowSource
from ..mlflow.webhooks import WebhookReceiver
from ..reports import LocalReportStore, ReportKeeper, S3ReportStore, local_fallback
from ..resolver import ResolverRegistry, default_resolver
from ..runtime.engine import Leadership, Runtime
from ..runtime.http_server import HttpServer
from ..runtime.interface import Source
from ..runtime.logging_json import configure, fields
from ..runtime.metrics import REGISTRY, configure_metrics
from ..s3.source import bucket_sources
from .main import EXIT_OK, EXIT_QUARANTINED, UsageError

log = logging.getLogger("mlgate.controller")

_SUMMARY_METRICS = ("mlgate_scans_total", "mlgate_findings_total", "mlgate_promotions_blocked_total")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "controller",
        help="watch MLflow registries, tag verdicts, gate promotions, export metrics",
        description="Watch model registries: scan every new model version, tag it approved or quarantined "
        "(signed), revert unapproved promotions, serve /metrics, /healthz, /readyz.",
    )
    parser.add_argument("--config", metavar="FILE", help="controller configuration (YAML, or TOML by .toml suffix)")
    parser.add_argument("--demo", action="store_true", help="first seed the embedded registry with demo models")
    parser.add_argument(
        "--once", action="store_true", help="one reconcile pass, wait for its scans, print a summary, exit"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="with --once: give up after this long (default 600)",
    )
    parser.add_argument(
        "--leader-elect",
        action="store_true",
        help="reconcile only while holding the Kubernetes Lease (POD_NAMESPACE, POD_NAME)",
    )
    parser.set_defaults(func=run)


@dataclass
class Controller:
    """A wired controller: the runtime and the MLflow source it drives (None when disabled)."""

    config: ControllerConfig
    runtime: Runtime
    mlflow: MLflowSource | None
    webhook: WebhookReceiver | None
    reports: ReportKeeper | None = None


def build_controller(
    config: ControllerConfig,
    key: bytes,
    policy: Policy,
    with_http: bool = True,
    leadership: Leadership | None = None,
    mlflow_client: Any = None,
) -> Controller:
    """Sources, runtime, HTTP routes and the webhook receiver for ``config``."""
    set_controller_token(config.token())
    sources: list[Source] = []
    mlflow_source = None
    reports = report_keeper(config, key, policy)
    if config.mlflow.enabled:
        mlflow_source = MLflowSource(
            config, key, policy, client=mlflow_client, resolver=_resolver(config), reports=reports
        )
        reports.mlflow_client = mlflow_source.client
        sources.append(mlflow_source)
    sources.extend(_bucket_sources(config, key, policy, reports))
    http = None
    event_sources: dict[str, tuple[str, ...]] = {}
    if mlflow_source is not None and config.webhook.enabled and config.webhook.secret:
        from ..mlflow.webhooks import EVENT_SOURCE, REJECT_REASONS

        event_sources[EVENT_SOURCE] = REJECT_REASONS
    if config.buckets:
        from ..s3.events import EVENT_SOURCE as SQS_SOURCE
        from ..s3.events import REJECT_REASONS as SQS_REASONS

        event_sources[SQS_SOURCE] = SQS_REASONS
    configure_metrics(sorted({s.name for s in sources}), event_sources, created_series=config.http.created_series)
    if with_http and config.http.enabled:
        try:
            http = HttpServer(config.http.host, config.http.port, config.http.tls_cert_file, config.http.tls_key_file)
        except OSError as exc:  # ssl.SSLError included: a missing or bad certificate pair
            raise ConfigError(f"http.tls_cert_file / http.tls_key_file cannot be loaded: {exc}") from None
    runtime = Runtime(
        sources,
        config.backoff,
        workers=config.workers,
        poll_interval=config.mlflow.poll_interval_seconds,
        http=http,
        leadership=leadership,
        state_dir=config.state_path,
    )
    receiver = None
    if http is not None and mlflow_source is not None and config.webhook.enabled and config.webhook.secret:
        receiver = WebhookReceiver(
            config.webhook.secret.encode(),
            runtime.enqueue,
            mlflow_source.is_own_write,
            max_skew=config.webhook.max_skew_seconds,
        )
        http.add_route("POST", config.webhook.path, receiver.handle)
    if http is not None:
        reports.install(http)
    return Controller(config, runtime, mlflow_source, receiver, reports)


def report_keeper(config: ControllerConfig, key: bytes, policy: Policy) -> ReportKeeper:
    """Where verdict reports go: ``reports.store`` when set, else the run / next to the S3 model."""
    store = None
    where = config.reports.store
    if where.startswith("s3://"):
        import boto3

        bucket, _, prefix = where.removeprefix("s3://").partition("/")
        store = S3ReportStore(boto3.client("s3"), bucket, prefix)
    elif where:
        store = LocalReportStore(Path(where))
    return ReportKeeper(policy, key, local_fallback(config.state_path), store=store)


def _resolver(config: ControllerConfig) -> ResolverRegistry:
    """The dependency resolver, pointed at the watched registry."""
    return default_resolver(tracking_uri=config.tracking_uri, registry_uri=config.registry_uri)


def _bucket_sources(config: ControllerConfig, key: bytes, policy: Policy, reports: Any = None) -> list[Source]:
    """S3 sources for ``config.buckets``."""
    return list(bucket_sources(config, key, policy, reports)) if config.buckets else []


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
        # The embedded registry, its signing key, MLflow downloads and local reports all live there.
        ensure_state_dir(config.state_path)
        key = config.key()
        policy = load_policy(config.policy or None)
    except (ConfigError, PolicyError) as exc:
        raise UsageError(str(exc)) from None
    if args.leader_elect and args.once:
        raise UsageError("--leader-elect and --once do not go together")
    if args.demo and not config.embedded:
        raise UsageError("--demo seeds only the embedded registry: unset MLFLOW_TRACKING_URI and mlflow.tracking_uri")
    verbose = getattr(args, "verbose", 0)
    level = logging.DEBUG if verbose > 1 else logging.INFO if (verbose or not args.once) else logging.ERROR
    configure(level, json_lines=config.log_format == "json")
    set_library_defaults({"MLFLOW_LOGGING_LEVEL": "DEBUG" if verbose > 1 else "WARNING"})  # read when mlflow loads
    try:
        controller = build_controller(config, key, policy, with_http=not args.once)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    if args.demo:
        _seed_demo(controller, config)
    if args.once:
        return _run_once(controller, args.timeout, sys.stdout)
    return _serve(controller, args.leader_elect)


def _seed_demo(controller: Controller, config: ControllerConfig) -> None:
    from ..mlflow.demo import seed

    if controller.mlflow is None:
        raise UsageError("--demo needs the MLflow source (mlflow.enabled is false)")
    try:
        seed(controller.mlflow.client, config.state_path / "artifacts")
    except Exception as exc:  # noqa: BLE001 - a seeding failure is one line for the user
        raise UsageError(f"could not seed the demo registry at {config.tracking_uri}: {exc}") from None


def _run_once(controller: Controller, timeout: float, out: TextIO, err: TextIO | None = None) -> int:
    """One pass over every source; exit 0 only when every version and object carries a verdict."""
    runtime = controller.runtime
    err = err if err is not None else sys.stderr
    reported: set[tuple[str, str]] = set()

    def pass_failed(source: str, error: str) -> None:  # the same line /readyz gives, at once
        if (source, error) not in reported:
            reported.add((source, error))
            err.write(f"mlgate controller: source {source} not ready: {error} (retrying until --timeout)\n")
            err.flush()

    runtime.on_pass_failed = pass_failed
    try:
        ok = runtime.run_once(timeout)
    finally:
        runtime.stop()
    failing = runtime.sync_errors()
    if not ok and failing:
        detail = "; ".join(f"source {name}: {error}" for name, error in failing.items())
        raise UsageError(f"could not finish a reconcile pass within {timeout:g} s ({detail})")
    missing = 0
    if controller.mlflow is not None:
        rows = controller.mlflow.inventory()
        missing = sum(1 for r in rows if r.verdict == "none")
        _print_table(
            out,
            ["MODEL", "VERSION", "VERDICT", "TOP FINDINGS"],
            [[r.model, r.version, r.verdict, r.top or "-"] for r in rows],
        )
    for name, source in runtime.sources.items():
        inventory = getattr(source, "inventory", None)
        if source is controller.mlflow or inventory is None:
            continue
        try:
            s3_rows = inventory()
        except Exception as exc:  # noqa: BLE001 - an unlistable source leaves its models unknown: not a success
            err.write(f"mlgate controller: source {name}: could not list its models: {exc}\n")
            missing += 1
            continue
        missing += sum(1 for r in s3_rows if r.verdict == "none")
        out.write("\n")
        _print_table(
            out,
            ["BUCKET", "MODEL", "OBJECTS", "VERDICT"],
            [[r.bucket, r.model, str(r.objects), r.verdict] for r in s3_rows],
        )
    scanned = len([r for r in runtime.results if r.verdict != "error"])
    errors = len([r for r in runtime.results if r.verdict == "error"])
    out.write(f"\nscanned {scanned} version(s) this run, {errors} error(s), {missing} without a verdict\n\n")
    _print_metrics(out)
    return EXIT_OK if missing == 0 and ok else EXIT_QUARANTINED


def _print_table(out: TextIO, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=False)]
    for row in [header, *rows]:
        out.write("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip() + "\n")


def _print_metrics(out: TextIO) -> None:
    from prometheus_client import generate_latest

    for line in generate_latest(REGISTRY).decode().splitlines():
        if line.startswith(_SUMMARY_METRICS):
            out.write(line + "\n")


def _serve(controller: Controller, leader_elect: bool) -> int:
    runtime = controller.runtime

    def stop(_signum: int, _frame: object) -> None:
        runtime.request_stop()

    signal.signal(signal.SIGTERM, stop)
    shards = None
    if leader_elect:
        # One Lease per shard (one shard: the single leader's Lease); losing one stops that shard's
        # work, not the process (controller/runtime/shards.py explains why).
        from ..runtime.leader import LeaderElectionError, LeaderSettings
        from ..runtime.shards import LeasedShards

        try:
            settings = LeaderSettings.from_env()
            shards = LeasedShards(settings, settings.shards)
            runtime.leadership = shards
            shards.start()
        except LeaderElectionError as exc:
            raise UsageError(str(exc)) from None
    runtime.start()  # also starts the event consumers (S3 -> SQS) of every source, on every replica
    if runtime.http is not None:
        log.info("serving /metrics, /healthz, /readyz", extra=fields(url=runtime.http.url))
    try:
        runtime.wait()
    except KeyboardInterrupt:
        pass
    finally:
        runtime.stop()
        if shards is not None:
            shards.stop()  # after the workers: release the Leases so the shards move at once
    return EXIT_OK
