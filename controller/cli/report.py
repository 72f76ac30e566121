"""``mlgate report models:/NAME/VERSION`` (or ``s3://BUCKET/MODEL_ROOT``): print a verdict's full report.

Reads the subject's ``mlgate.report`` tag, loads the document from where the controller kept it
(the configured report store, the version's run, the state dir, or the bucket's reports prefix),
checks its hash, and prints it as text, JSON or the same HTML page the controller serves, with the
registry's live state (does the verdict still verify, which exceptions are valid now).
Exit 0 when the verdict is approved, 1 otherwise, 2 when there is no report to show.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from mlgate.analyzers.core.policy import PolicyError, load_policy

from ..config.settings import ConfigError, ControllerConfig, load_config
from ..reports import ReportKeeper
from ..reports.html import render_report
from ..reports.text import render_document_text
from .check import parse_model_uri
from .main import EXIT_OK, EXIT_QUARANTINED, UsageError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="print the full report of a model version's (or S3 model's) current verdict",
        description="Print the report the controller kept for models:/NAME/VERSION, models:/NAME@ALIAS or "
        "s3://BUCKET/MODEL_ROOT.",
    )
    parser.add_argument("uri", metavar="REF", help="models:/NAME/VERSION, models:/NAME@ALIAS or s3://BUCKET/ROOT")
    parser.add_argument("--format", choices=("text", "json", "html"), default="text")
    parser.add_argument("--config", metavar="FILE", help="controller configuration (registry, key, report store)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .controller import report_keeper

    try:
        config = load_config(args.config)
        key = config.key()
        policy = load_policy(config.policy or None)
    except (ConfigError, PolicyError) as exc:
        raise UsageError(str(exc)) from None
    keeper = report_keeper(config, key, policy)
    try:
        if args.uri.startswith("s3://"):
            document = _s3_document(keeper, config, args.uri)
        else:
            document = _mlflow_document(keeper, config, args.uri)
    except LookupError as exc:
        raise UsageError(str(exc).strip("'\"")) from None
    if args.format == "json":
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    elif args.format == "html":
        sys.stdout.write(render_report(document, "/reports", "?format=json", document.get("live")))
    else:
        sys.stdout.write(render_document_text(document))
    live = document.get("live") or {}
    return EXIT_OK if live.get("state") == "approved" else EXIT_QUARANTINED


def _mlflow_document(keeper: ReportKeeper, config: ControllerConfig, uri: str) -> dict[str, Any]:
    from mlflow import MlflowClient

    from .check import _lookup

    name, version, alias = parse_model_uri(uri)
    client = MlflowClient(tracking_uri=config.tracking_uri, registry_uri=config.registry_uri)
    mv = _lookup(client, uri, name, version, alias)
    return keeper.mlflow_document(name, str(mv.version), client)


def _s3_document(keeper: ReportKeeper, config: ControllerConfig, uri: str) -> dict[str, Any]:
    import boto3

    bucket, _, root = uri.removeprefix("s3://").partition("/")
    configured = {b.bucket: b for b in config.buckets}
    cfg = configured.get(bucket)
    client = boto3.client("s3", endpoint_url=(cfg.endpoint_url if cfg else "") or None)
    keeper.register_bucket(bucket, client, cfg.reports_prefix if cfg else ".mlgate/reports/")
    return keeper.s3_document(bucket, root)
