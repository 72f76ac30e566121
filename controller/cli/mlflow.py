"""``mlgate mlflow register-webhook``: point MLflow's webhooks at the controller's receiver.

Creates (or updates, by name) an MLflow webhook for ``model_version.created``,
``model_version_alias.created``, ``model_version_tag.set`` and
``model_version_tag.deleted`` with the shared secret the receiver verifies.
The MLflow *server* must allow the URL: ``MLFLOW_WEBHOOK_ALLOWED_SCHEMES``
(https only by default), ``MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true`` for in-cluster
addresses, and a fixed ``MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY``.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..config.environment import named
from ..config.settings import ConfigError, load_config
from ..mlflow.webhooks import EVENTS
from .main import EXIT_OK, UsageError

DEFAULT_NAME = "mlgate"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "mlflow", help="MLflow integration helpers", description="MLflow integration helpers."
    )
    commands = parser.add_subparsers(dest="mlflow_command", metavar="COMMAND")
    register = commands.add_parser(
        "register-webhook",
        help="create or update the MLflow webhook that notifies the controller",
        description="Create (or update by name) the MLflow webhook that sends model-version events to the "
        "controller's receiver. The secret comes from --secret-env (default MLGATE_WEBHOOK_SECRET) "
        "or the controller configuration.",
    )
    register.add_argument(
        "--url", required=True, help="receiver URL, e.g. https://mlgate.mlgate.svc:9464/webhooks/mlflow"
    )
    register.add_argument("--name", default=DEFAULT_NAME, help=f"webhook name in MLflow (default {DEFAULT_NAME})")
    register.add_argument("--config", metavar="FILE", help="controller configuration (registry URI, webhook secret)")
    register.add_argument(
        "--secret-env",
        default="MLGATE_WEBHOOK_SECRET",
        metavar="VAR",
        help="environment variable holding the shared secret",
    )
    register.set_defaults(func=run_register)
    parser.set_defaults(func=lambda _args: _missing_command(parser))


def _missing_command(parser: argparse.ArgumentParser) -> int:
    raise UsageError("mlgate mlflow: missing command (try: mlgate mlflow register-webhook --url URL)")


def run_register(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    secret = named(args.secret_env) or config.webhook.secret
    if not secret:
        raise UsageError(f"no webhook secret: set {args.secret_env} (the controller needs the same value)")
    if not args.url.startswith(("http://", "https://")):
        raise UsageError(f"--url must be an http(s) URL, got {args.url!r}")
    if config.embedded:
        raise UsageError("webhooks need an MLflow server: set MLFLOW_TRACKING_URI or mlflow.tracking_uri")
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=config.tracking_uri, registry_uri=config.registry_uri)
    try:
        hook = _upsert(client, args.name, args.url, secret)
    except MlflowException as exc:
        raise UsageError(_explain(" ".join(str(exc.message).split()))) from None
    print(f"webhook {hook.name} ({hook.webhook_id}) -> {hook.url} for {', '.join(EVENTS)}")
    print("the MLflow server calls it once its webhook cache expires (MLFLOW_WEBHOOK_CACHE_TTL, 60 s by default)")
    return EXIT_OK


def _upsert(client: Any, name: str, url: str, secret: str) -> Any:
    existing = None
    token = None
    while True:
        page = client.list_webhooks(max_results=100, page_token=token)
        existing = next((w for w in page if w.name == name), None)
        token = getattr(page, "token", None)
        if existing is not None or not token:
            break
    if existing is None:
        return client.create_webhook(
            name=name,
            url=url,
            events=list(EVENTS),
            secret=secret,
            description="mlgate controller: scan and gate model versions",
        )
    return client.update_webhook(existing.webhook_id, url=url, events=list(EVENTS), secret=secret, status="ACTIVE")


def _explain(message: str) -> str:
    if "scheme" in message.lower():
        return f"{message} (the MLflow server must list the scheme in MLFLOW_WEBHOOK_ALLOWED_SCHEMES)"
    if "resolve" in message.lower() or "private" in message.lower():
        return f"{message} (an in-cluster receiver needs MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true on the MLflow server)"
    return f"MLflow refused the webhook: {message}"
