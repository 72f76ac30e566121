"""``mlgate admission-server``: serve the Kubernetes admission webhook (TLS) and its metrics.

Every replica runs it (no leader election needed: answering is stateless). It reads verdicts from the
MLflow registry (``MLFLOW_TRACKING_URI`` and the usual MLflow credential variables) and from S3 object
tags (standard AWS environment or IRSA), and never writes anything. On SIGTERM it reports not-ready,
keeps answering for ``--shutdown-grace`` seconds while Kubernetes removes the endpoint, then stops.
"""

from __future__ import annotations

import argparse
import logging
import math
import signal
import threading
import time

from ..admission.review import AdmissionPolicyError, load_admission_policy
from ..admission.verdict_lookup import DEFAULT_MAX_OBJECTS, build_lookup
from ..config.environment import admission_defaults, set_library_defaults, signing_key_sources
from ..config.settings import ConfigError, ControllerConfig
from .main import EXIT_OK, UsageError

log = logging.getLogger("mlgate.admission")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "admission-server",
        help="serve the Kubernetes admission webhook that denies unapproved models",
        description="Answer AdmissionReview v1 requests over TLS: allow a serving workload only when every model "
        "it names is approved by mlgate (signed MLflow verdict or approved S3 object tags).",
    )
    env = admission_defaults()
    parser.add_argument("--listen", default="0.0.0.0", help="address to listen on (default: all)")
    parser.add_argument("--port", type=int, default=8443, help="webhook HTTPS port (default: 8443)")
    parser.add_argument(
        "--tls-cert",
        default=env["tls_cert"],
        metavar="FILE",
        help="serving certificate (PEM), re-read when it changes",
    )
    parser.add_argument("--tls-key", default=env["tls_key"], metavar="FILE", help="serving key (PEM)")
    parser.add_argument("--metrics-port", type=int, default=9091, help="plain-HTTP /metrics port; 0 disables it")
    parser.add_argument(
        "--metrics-created-series",
        action="store_true",
        help="also export the *_created series of counters (off by default)",
    )
    parser.add_argument(
        "--policy",
        default=env["policy"],
        metavar="FILE",
        help="admission policy TOML ([admission] table); default: deny everything unverified",
    )
    parser.add_argument(
        "--signing-key-file",
        default=env["signing_key_file"],
        metavar="FILE",
        help="file holding the verdict signing key (the controller's HMAC key)",
    )
    parser.add_argument("--tracking-uri", default=env["tracking_uri"], help="MLflow tracking URI")
    parser.add_argument("--registry-uri", default=env["registry_uri"], help="MLflow registry URI if different")
    parser.add_argument(
        "--s3-endpoint-url",
        default=env["s3_endpoint_url"],
        help="S3 endpoint for S3-compatible stores",
    )
    parser.add_argument(
        "--max-prefix-objects",
        type=int,
        default=DEFAULT_MAX_OBJECTS,
        help=f"deny s3:// prefixes holding more objects than this (default: {DEFAULT_MAX_OBJECTS})",
    )
    parser.add_argument("--shutdown-grace", type=float, default=3.0, help="seconds to keep answering after SIGTERM")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..admission.server import AdmissionWebhook, serve
    from ..runtime.http_server import HttpServer

    try:
        policy = load_admission_policy(args.policy)
    except AdmissionPolicyError as exc:
        raise UsageError(str(exc)) from None
    inline_key, _ = signing_key_sources()
    if not args.signing_key_file and not inline_key:
        raise UsageError(
            "--signing-key-file (or MLGATE_SIGNING_KEY_FILE, or MLGATE_SIGNING_KEY) is required "
            "to check verdict signatures"
        )
    if not args.tracking_uri:
        raise UsageError("--tracking-uri (or MLFLOW_TRACKING_URI) is required")
    try:  # the controller's own key reading, so both sides always agree on the key bytes
        key = ControllerConfig(signing_key=inline_key, signing_key_file=args.signing_key_file or "").key()
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    # The MLflow client retries for minutes by default; an admission answer has seconds.
    set_library_defaults(
        {
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, math.ceil(policy.lookup_timeout))),
        }
    )
    lookup = build_lookup(
        args.tracking_uri,
        args.registry_uri,
        key,
        args.s3_endpoint_url,
        timeout=policy.lookup_timeout,
        max_objects=args.max_prefix_objects,
    )
    from ..admission.review import KNOWN_KINDS
    from ..runtime.metrics import configure_metrics

    configure_metrics(
        admission_kinds=sorted(KNOWN_KINDS | {"other"}),
        created_series=getattr(args, "metrics_created_series", False),
    )
    metrics = None
    if args.metrics_port:
        metrics = HttpServer(args.listen, args.metrics_port, name="mlgate-admission-metrics")
        try:
            metrics.start()
        except OSError as exc:
            raise UsageError(f"cannot serve metrics on {args.listen}:{args.metrics_port}: {exc}") from None
    webhook = AdmissionWebhook(lookup, policy)
    try:
        server = serve(args.listen, args.port, args.tls_cert, args.tls_key, webhook)
    except (OSError, ValueError) as exc:
        if metrics is not None:
            metrics.stop()
        raise UsageError(f"cannot start the admission server on {args.listen}:{args.port}: {exc}") from None
    log.warning("admission webhook listening on https://%s:%d/validate", args.listen, server.port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    webhook.ready.clear()
    time.sleep(max(0.0, args.shutdown_grace))
    server.stop()
    if metrics is not None:
        metrics.stop()
    return EXIT_OK
