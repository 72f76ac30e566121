"""Every environment variable mlgate reads or sets, in one place (standard library only).

Readers take an optional mapping so tests and callers can pass their own; nothing else in
mlgate reads ``os.environ``. The controller's settings file overrides
(``MLGATE_<SECTION>__<KEY>``, ``MLGATE_HOME``, ...) are read by ``settings.load_config`` from
the mapping ``current()`` returns.

Variables read:

* verdict key and controller token: ``MLGATE_SIGNING_KEY``, ``MLGATE_SIGNING_KEY_FILE``,
  ``MLGATE_CONTROLLER_TOKEN`` (controller, MLflow plugin, ``mlgate check``, admission server);
* registries and stores: ``MLFLOW_TRACKING_URI``, ``MLFLOW_REGISTRY_URI``,
  ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` (plus the standard AWS variables boto3 reads),
  ``HF_HUB_CACHE`` / ``HF_HOME`` / ``XDG_CACHE_HOME`` (the Hugging Face hub cache);
* admission server defaults: ``MLGATE_TLS_CERT``, ``MLGATE_TLS_KEY``, ``MLGATE_ADMISSION_POLICY``;
* leader election: ``POD_NAMESPACE``, ``POD_NAME`` (or ``HOSTNAME``), ``MLGATE_LEASE_NAME``,
  ``MLGATE_LEASE_DURATION``, ``MLGATE_RENEW_DEADLINE``, ``MLGATE_RETRY_PERIOD``, ``MLGATE_SHARDS``;
* output: ``NO_COLOR``.

Variables set (only when unset, for the libraries mlgate drives): the MLflow client's retry,
timeout and progress-bar knobs, and ``HF_HUB_OFFLINE=1`` before huggingface_hub is imported.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up, issue 19)
if TYPE_CHECKING:
    from pathlib import Path  # loaded by hub_cache_dir only: ``mlgate scan`` imports this module

MLFLOW_CLIENT_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # progress bars on stderr would break JSON logs
}


def current(environ: Mapping[str, str] | None = None) -> Mapping[str, str]:
    """``environ`` when given, else the process environment."""
    return os.environ if environ is None else environ


def signing_key_sources(environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(inline key, key file): ``MLGATE_SIGNING_KEY``, ``MLGATE_SIGNING_KEY_FILE``."""
    env = current(environ)
    return env.get("MLGATE_SIGNING_KEY", ""), env.get("MLGATE_SIGNING_KEY_FILE", "")


def controller_token(environ: Mapping[str, str] | None = None) -> str:
    return current(environ).get("MLGATE_CONTROLLER_TOKEN", "")


def mlflow_uris(environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(tracking URI, registry URI) from ``MLFLOW_TRACKING_URI`` / ``MLFLOW_REGISTRY_URI``."""
    env = current(environ)
    return env.get("MLFLOW_TRACKING_URI", ""), env.get("MLFLOW_REGISTRY_URI", "")


def s3_endpoint_url(environ: Mapping[str, str] | None = None) -> str | None:
    env = current(environ)
    return env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None


def hub_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The hub cache folder huggingface_hub would use with this environment."""
    from pathlib import Path

    env = current(environ)
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"]).expanduser()
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "hub"
    xdg = env.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def admission_defaults(environ: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """Defaults for ``mlgate admission-server`` flags."""
    env = current(environ)
    return {
        "tls_cert": env.get("MLGATE_TLS_CERT", "/etc/mlgate/tls/tls.crt"),
        "tls_key": env.get("MLGATE_TLS_KEY", "/etc/mlgate/tls/tls.key"),
        "policy": env.get("MLGATE_ADMISSION_POLICY"),
        "signing_key_file": env.get("MLGATE_SIGNING_KEY_FILE"),
        "tracking_uri": env.get("MLFLOW_TRACKING_URI"),
        "registry_uri": env.get("MLFLOW_REGISTRY_URI"),
        "s3_endpoint_url": s3_endpoint_url(env),
    }


def pod_identity(environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(namespace, pod name) from the downward API variables; empty when unset."""
    env = current(environ)
    return env.get("POD_NAMESPACE", ""), env.get("POD_NAME") or env.get("HOSTNAME") or ""


def lease_overrides(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Lease settings given in the environment, by ``LeaderSettings`` field name (raw strings)."""
    env = current(environ)
    names = {
        "name": "MLGATE_LEASE_NAME",
        "lease_duration": "MLGATE_LEASE_DURATION",
        "renew_deadline": "MLGATE_RENEW_DEADLINE",
        "retry_period": "MLGATE_RETRY_PERIOD",
        "shards": "MLGATE_SHARDS",
    }
    return {field: env[var] for field, var in names.items() if env.get(var)}


def named(variable: str, environ: Mapping[str, str] | None = None) -> str:
    """A variable whose name the user chose (``mlgate mlflow register-webhook --secret-env NAME``)."""
    return current(environ).get(variable, "")


def colour_allowed(environ: Mapping[str, str] | None = None) -> bool:
    """False when ``NO_COLOR`` is set (https://no-color.org)."""
    return "NO_COLOR" not in current(environ)


def terminal_columns(environ: Mapping[str, str] | None = None) -> int:
    """``shutil.get_terminal_size().columns`` without importing shutil (``cli/parser.py``): ``COLUMNS``
    when a positive number, else the width of the terminal on stdout, else 80."""
    try:
        columns = int(current(environ)["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns > 0:
        return columns
    try:
        columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        columns = 0
    return columns or 80


def set_library_defaults(values: Mapping[str, str]) -> None:
    """Set variables the libraries mlgate drives read, unless the user already set them."""
    for name, value in values.items():
        os.environ.setdefault(name, value)


def force(name: str, value: str) -> None:
    """Set a variable unconditionally (a safety setting the user must not undo, e.g. ``HF_HUB_OFFLINE``)."""
    os.environ[name] = value
