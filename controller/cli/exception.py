"""``mlgate exception add|list|revoke models:/NAME/VERSION``: reviewed, signed per-version exceptions.

``add`` binds an acceptance of one rule (at a location glob) to the version's scanned digest, signed
with the controller's verdict key, and writes it as the ``mlgate.exception.<id>`` tag with the
controller token (the MLflow gate plugin refuses ``mlgate.*`` tags from anyone else). ``revoke``
re-signs it as revoked (the tag stays, for the audit trail). Both then decide the version again,
as the controller would (``--no-rescan``: leave that to the running controller, which notices the
change on its next pass or on the tag webhook). ``list`` shows every exception and whether it is
valid for the version's content now. Workflow: docs/exceptions.md.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from mlgate.analyzers.core.findings import CATALOGUE
from mlgate.analyzers.core.policy import PolicyError, load_policy
from mlgate.analyzers.core.registry import load_all

from ..config.settings import ConfigError, ControllerConfig, load_config
from ..verdicts.exceptions import MAX_REASON, decode, new_exception, read_exceptions, revoke
from ..verdicts.tags import check_verdict
from .check import _lookup, parse_model_uri
from .main import EXIT_OK, EXIT_QUARANTINED, UsageError

_RULE = re.compile(r"^MLG-[A-Z0-9]{2,8}-\d{3}$")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "exception",
        help="grant, list or revoke reviewed exceptions for one model version",
        description="Reviewed exceptions: accept one rule at one location for one version's content, signed.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    add = actions.add_parser("add", help="accept a rule at a location for this version's scanned content")
    add.add_argument("uri", metavar="MODEL_URI", help="models:/NAME/VERSION (or @ALIAS, resolved now)")
    add.add_argument("--rule", required=True, help="the rule id to accept, e.g. MLG-PKL-012")
    add.add_argument("--location", default="*", metavar="GLOB", help="finding location glob (default: anywhere)")
    add.add_argument("--reason", required=True, help="why this finding is acceptable (kept with the exception)")
    add.add_argument("--reviewer", required=True, metavar="NAME", help="who reviewed it")
    lst = actions.add_parser("list", help="list the exceptions of a version and whether each applies")
    lst.add_argument("uri", metavar="MODEL_URI")
    lst.add_argument("--format", choices=("text", "json"), default="text")
    rev = actions.add_parser("revoke", help="revoke an exception (kept, re-signed as revoked)")
    rev.add_argument("uri", metavar="MODEL_URI")
    rev.add_argument("id", metavar="ID", help="the exception id (see `mlgate exception list`)")
    rev.add_argument("--reviewer", required=True, metavar="NAME", help="who revokes it")
    for sub in (add, lst, rev):
        sub.add_argument("--config", metavar="FILE", help="controller configuration (registry, signing key)")
    for sub in (add, rev):
        sub.add_argument("--no-rescan", action="store_true", help="only write the tag; the controller decides later")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    action = getattr(args, "action", None)
    if action is None:
        raise UsageError("expected one of: mlgate exception add | list | revoke")
    name, version, alias = parse_model_uri(args.uri)
    try:
        config = load_config(args.config)
        key = config.key()
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    from mlflow import MlflowClient

    from ..mlflow.server_plugin import set_controller_token

    set_controller_token(config.token())  # the gate plugin accepts mlgate.* tags only with it
    client = MlflowClient(tracking_uri=config.tracking_uri, registry_uri=config.registry_uri)
    mv = _lookup(client, args.uri, name, version, alias)
    version = str(mv.version)
    tags = dict(mv.tags or {})
    where = f"models:/{name}/{version}"
    if action == "list":
        return _list(key, name, version, tags, args.format)
    signed = check_verdict(key, name, version, tags).signed
    if action == "add":
        if signed is None:
            raise UsageError(f"{where}: has no valid mlgate verdict yet; an exception binds to the scanned digest")
        rule = args.rule.strip().upper()
        if not _RULE.match(rule):
            raise UsageError(f"--rule: expected a rule id like MLG-PKL-012, got {args.rule!r}")
        load_all()
        if rule not in CATALOGUE:
            raise UsageError(f"--rule: {rule} is not a rule mlgate has (docs/rules.md lists them)")
        if not args.reason.strip() or len(args.reason) > MAX_REASON:
            raise UsageError(f"--reason: required, at most {MAX_REASON} characters")
        exc = new_exception(key, name, version, signed.digest, rule, args.location, args.reason.strip(), args.reviewer)
        _set_tag(client, name, version, exc.tag, exc.encode(), where)
        print(f"{where}: exception {exc.id} added: {rule} at {exc.location} for {signed.digest}")
    else:
        value = tags.get(f"mlgate.exception.{args.id}")
        exc = decode(value) if value else None
        if exc is None:
            raise UsageError(f"{where}: no exception {args.id!r} (see mlgate exception list {where})")
        if exc.revoked:
            raise UsageError(f"{where}: exception {args.id} is already revoked")
        revoked = revoke(key, name, version, exc, args.reviewer)
        _set_tag(client, name, version, revoked.tag, revoked.encode(), where)
        print(f"{where}: exception {exc.id} revoked by {args.reviewer}")
    if args.no_rescan:
        return EXIT_OK
    return _decide_again(config, key, client, name, version)


def _set_tag(client: Any, name: str, version: str, tag: str, value: str, where: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.set_model_version_tag(name, version, tag, value)
    except MlflowException as exc:
        message = " ".join(str(exc.message).split())[:200]
        raise UsageError(f"{where}: registry refused the exception tag: {message}") from None


def _list(key: bytes, name: str, version: str, tags: dict[str, str], fmt: str) -> int:
    signed = check_verdict(key, name, version, tags).signed
    digest = signed.digest if signed else ""
    states = read_exceptions(key, name, version, digest, tags)
    if fmt == "json":
        doc = {"model": f"models:/{name}/{version}", "digest": digest, "exceptions": [s.to_dict() for s in states]}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return EXIT_OK
    if not states:
        print(f"models:/{name}/{version}: no exceptions")
    for state in states:
        e = state.exception
        if e is None:
            print(f"{state.tag}: {state.status}")
            continue
        used = " (decides the current verdict)" if signed and e.id in signed.exceptions else ""
        print(f"{e.id}  {state.status}{used}  {e.rule} at {e.location}  by {e.reviewer} {e.created_at}: {e.reason}")
    return EXIT_OK


def _decide_again(config: ControllerConfig, key: bytes, client: Any, name: str, version: str) -> int:
    """Scan and record the version now, exactly as the controller's MLflow source does."""
    from ..mlflow.source import SOURCE, MLflowSource, version_key
    from ..runtime.interface import ScanRequest
    from .controller import report_keeper

    try:
        policy = load_policy(config.policy or None)
    except PolicyError as exc:
        raise UsageError(str(exc)) from None
    reports = report_keeper(config, key, policy)
    source = MLflowSource(config, key, policy, client=client, reports=reports)
    request = ScanRequest(SOURCE, version_key(name, version), "exception", force=True)
    scanned = source.scan(request)
    if scanned is not None:
        source.record(request, scanned)
    tags = dict(client.get_model_version(name, version).tags or {})
    signed = check_verdict(key, name, version, tags).signed
    if signed is None:
        print(f"models:/{name}/{version}: no valid verdict after the scan", file=sys.stderr)
        return EXIT_QUARANTINED
    note = f" with exception(s) {', '.join(signed.exceptions)}" if signed.exceptions else ""
    print(f"models:/{name}/{version}: {signed.verdict.value}{note} ({signed.digest})")
    return EXIT_OK if signed.approved else EXIT_QUARANTINED
