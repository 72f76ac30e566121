"""``mlgate check models:/name@alias`` (or ``models:/name/version``): is this target approved?

Exit 0 only when the version carries a validly signed ``approved`` verdict and its
artifacts still list as they did at scan time (the signed ``mlgate.listing``
fingerprint, re-taken by listing, no download); 1 for anything else that is not
approved: quarantined, no valid verdict, artifacts changed, or no such model,
version or alias; 2 on usage errors (bad URI, bad configuration) and when the
registry cannot be asked at all. ``--verify-digest`` also downloads the artifacts
and checks they still hash to the signed digest. Meant for CI/CD steps that
deploy a model: ``mlgate check models:/fraud@champion && deploy``.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

from mlgate.analyzers.core.policy import PolicyError, load_policy

from ..config.settings import ConfigError, load_config
from ..verdicts.gate import promotion_decision
from .main import EXIT_OK, EXIT_QUARANTINED, UsageError

_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[^/@]+))$")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check",
        help="exit 0 only when a model version carries a valid approved verdict",
        description="Check the mlgate verdict of models:/NAME/VERSION or models:/NAME@ALIAS in the registry.",
    )
    parser.add_argument("uri", metavar="MODEL_URI", help="models:/NAME/VERSION or models:/NAME@ALIAS")
    parser.add_argument("--config", metavar="FILE", help="controller configuration (registry, signing key)")
    parser.add_argument(
        "--verify-digest",
        action="store_true",
        help="download the artifacts and check they still match the signed digest",
    )
    parser.set_defaults(func=run)


def parse_model_uri(uri: str) -> tuple[str, str | None, str | None]:
    """(name, version, alias) of a ``models:/`` URI; raises UsageError otherwise."""
    match = _MODEL_URI.match(uri)
    if not match:
        raise UsageError(f"expected models:/NAME/VERSION or models:/NAME@ALIAS, got {uri!r}")
    return match["name"], match["version"], match["alias"]


def run(args: argparse.Namespace) -> int:
    name, version, alias = parse_model_uri(args.uri)
    try:
        config = load_config(args.config)
        key = config.key()
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=config.tracking_uri, registry_uri=config.registry_uri)
    mv = _lookup(client, args.uri, name, version, alias)
    if mv is None:
        print(f"{args.uri}: refused: no such model version or alias")
        return EXIT_QUARANTINED
    version = str(mv.version)
    tags = dict(mv.tags or {})
    source = _source(config, key, client)
    decision = promotion_decision(
        key,
        name,
        version,
        tags,
        count_as="check",
        current_listing=lambda mode: source.current_listing(name, version, mode),
    )
    where = f"{args.uri} (version {version})" if alias else args.uri
    if not decision.allowed:
        print(f"{where}: refused: {decision.message.removeprefix('mlgate: ')}")
        return EXIT_QUARANTINED
    signed = decision.signed
    assert signed is not None  # promotion_decision allowed it
    if args.verify_digest:
        actual = _current_digest(source, name, version)
        if actual != signed.digest:
            print(f"{where}: refused: artifacts changed since the scan (signed {signed.digest}, now {actual})")
            return EXIT_QUARANTINED
    excepted = f" with reviewed exception(s) {', '.join(signed.exceptions)}" if signed.exceptions else ""
    print(f"{where}: approved{excepted} ({signed.digest}, scanned {signed.scanned_at} by {signed.scanner})")
    return EXIT_OK


def _lookup(client: Any, uri: str, name: str, version: str | None, alias: str | None) -> Any:
    """The model version, None when the model, version or alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        if alias is not None:
            return client.get_model_version_by_alias(name, alias)
        return client.get_model_version(name, version)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise UsageError(f"{uri}: registry error: {' '.join(str(exc.message).split())[:200]}") from None


def _source(config: Any, key: bytes, client: Any) -> Any:
    """The MLflow source, for its artifact listing and download (nothing is started)."""
    from ..mlflow.source import MLflowSource

    try:
        policy = load_policy(config.policy or None)
    except PolicyError as exc:
        raise UsageError(str(exc)) from None
    return MLflowSource(config, key, policy, client=client)


def _current_digest(source: Any, name: str, version: str) -> str:
    """The digest of the artifacts now; ``cannot download: ...`` when they cannot be read (never equal)."""
    try:
        return source.current_digest(name, version)
    except Exception as exc:  # noqa: BLE001 - any download failure is one line for the user
        print(f"models:/{name}/{version}: cannot download artifacts: {exc}", file=sys.stderr)
        return "unknown (download failed)"
