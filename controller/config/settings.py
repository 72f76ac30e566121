"""Controller configuration: a YAML or TOML file validated into typed dataclasses, plus environment overrides.

Every mistake is reported as one ``ConfigError`` line naming the key
(``controller.yaml: mlflow.page_size: expected a whole number, got 'ten'``).
Precedence, lowest first: built-in defaults, the file, then environment:

* ``MLGATE_HOME`` (state dir), ``MLGATE_SIGNING_KEY`` (the verdict key itself),
  ``MLGATE_WEBHOOK_SECRET``, ``MLGATE_CONTROLLER_TOKEN``;
* ``MLFLOW_TRACKING_URI`` / ``MLFLOW_REGISTRY_URI`` when the file names no registry;
* any key as ``MLGATE_<SECTION>__<KEY>`` (``MLGATE_MLFLOW__PAGE_SIZE=50``,
  ``MLGATE_WORKERS=4``), converted to the key's type.

With no registry anywhere, the controller runs against the embedded default:
a sqlite registry at ``<state_dir>/mlflow.db`` with artifacts under
``<state_dir>/artifacts`` and a verdict key generated once into
``<state_dir>/signing.key``.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlgate.analyzers.core.policy import SignaturePolicy

from ..verdicts.signing import SigningKeyError, derive_controller_token, load_signing_key
from .buckets import BucketConfig
from .interface import ConfigError, build_settings, signature_override, tomllib

DEFAULT_STATE_DIR = "mlgate-demo"
ENV_PREFIX = "MLGATE_"


class StoreChecksums(enum.Enum):
    """Where the digest takes an S3 object's sha256 from when the store reports a full-object SHA-256
    (``ChecksumSHA256`` of an object uploaded in one part; docs/controller.md, Sizing)."""

    TRUST = "trust"  # use the store's checksum: no byte is read for the digest (S3 verified it on upload)
    RECOMPUTE = "recompute"  # always hash the bytes in mlgate (one more read of each object through the store)


@dataclass(frozen=True)
class MLflowConfig:
    """Which registry to watch and how."""

    enabled: bool = True
    tracking_uri: str = ""  # empty: MLFLOW_TRACKING_URI, else the embedded sqlite registry
    registry_uri: str = ""  # empty: MLFLOW_REGISTRY_URI, else tracking_uri
    model_name_like: str = ""  # SQL LIKE pattern restricting the watched models (empty: all)
    page_size: int = 200
    poll_interval_seconds: float = 30.0
    full_resync_seconds: float = 600.0
    watermark_skew_seconds: float = 300.0
    verify_digests_seconds: float = 0.0  # >0: re-download and re-hash verdicted versions this often
    verify_listings_seconds: float = 0.0  # re-list approved versions' artifacts this often (0: every pass)
    artifacts_destination: str = ""  # the server's --artifacts-destination, to list proxied artifacts in place
    revert_unapproved_aliases: bool = True
    gate_stages: bool = True  # move unapproved Staging/Production versions back to stage None
    max_download_bytes: int = 20 << 30
    max_download_files: int = 20_000
    # trust: an S3 object's full-object SHA-256 checksum stands for its sha256; recompute: mlgate hashes every byte
    store_checksums: StoreChecksums = StoreChecksums.TRUST
    # [signatures] override for this registry (docs/signatures.md); empty: the scan policy's section
    signatures: SignaturePolicy | None = field(
        default=None, metadata={"build": signature_override("mlflow.signatures")}
    )
    sign_approved_key_file: str = ""  # EC private key (PEM): sign approved versions (docs/signatures.md)


@dataclass(frozen=True)
class WebhookConfig:
    """The MLflow webhook receiver (served on the HTTP server)."""

    enabled: bool = True
    path: str = "/webhooks/mlflow"
    secret: str = ""  # MLGATE_WEBHOOK_SECRET; empty disables the receiver
    max_skew_seconds: float = 300.0


@dataclass(frozen=True)
class HttpConfig:
    """Where /metrics, /healthz, /readyz and the webhook receiver listen."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 9464
    tls_cert_file: str = ""
    tls_key_file: str = ""
    created_series: bool = False  # export the *_created series of counters and histograms


@dataclass(frozen=True)
class ReportsConfig:
    """Where the full report of each verdict is kept (served at /reports; docs/reports.md)."""

    store: str = ""  # "" : MLflow run artifacts / next to S3 models; "s3://bucket/prefix/" or a local folder


@dataclass(frozen=True)
class BackoffConfig:
    """Retry delays after a registry error: doubling from initial to max, with jitter."""

    initial_seconds: float = 1.0
    max_seconds: float = 60.0
    max_scan_attempts: int = 5  # after this, the version waits for the next reconcile pass


@dataclass(frozen=True)
class ControllerConfig:
    state_dir: str = ""
    signing_key: str = ""  # MLGATE_SIGNING_KEY; never put it in a committed file
    signing_key_file: str = ""
    controller_token: str = ""  # MLGATE_CONTROLLER_TOKEN; default derived from the signing key
    policy: str = ""  # policy TOML file; empty: the default policy
    workers: int = 2
    log_format: str = "json"  # json | text
    mlflow: MLflowConfig = field(default_factory=MLflowConfig)
    webhook: WebhookConfig = field(default_factory=WebhookConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    backoff: BackoffConfig = field(default_factory=BackoffConfig)
    reports: ReportsConfig = field(default_factory=ReportsConfig)
    buckets: tuple[BucketConfig, ...] = field(default=(), metadata={"build": lambda raw, where: _buckets(raw, where)})

    # -- derived values -------------------------------------------------------------------------

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir or DEFAULT_STATE_DIR)

    @property
    def embedded(self) -> bool:
        """True when no registry was configured: use the local sqlite registry in the state dir."""
        return not self.mlflow.tracking_uri

    @property
    def tracking_uri(self) -> str:
        return self.mlflow.tracking_uri or embedded_registry_uri(self.state_path)

    @property
    def registry_uri(self) -> str:
        return self.mlflow.registry_uri or self.tracking_uri

    def key(self) -> bytes:
        """The verdict signing key (generated and persisted for the embedded default)."""
        try:
            key = load_signing_key(self.signing_key, self.signing_key_file)
        except SigningKeyError as exc:
            raise ConfigError(str(exc)) from None
        if key is not None:
            return key
        if self.embedded:
            return _demo_key(self.state_path / "signing.key")
        raise ConfigError(
            "no verdict signing key: set MLGATE_SIGNING_KEY or signing_key_file (the MLflow plugin needs the same key)"
        )

    def token(self) -> str:
        """The secret the controller presents to the MLflow gate plugin (X-Mlgate-Controller-Token)."""
        return self.controller_token or derive_controller_token(self.key())


def embedded_registry_uri(state_dir: Path) -> str:
    return f"sqlite:///{state_dir.resolve() / 'mlflow.db'}"


def load_config(path: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None) -> ControllerConfig:
    """Read ``path`` (YAML, or TOML when it ends in .toml), apply ``environ``, validate. Raises ``ConfigError``."""
    env = os.environ if environ is None else environ
    where = "configuration"
    data: dict[str, Any] = {}
    if path is not None:
        where = str(path)
        data = _read_file(Path(path))
    data = _apply_env(data, env)
    config = build_settings(ControllerConfig, data, where, "")
    config = _named_env(config, env)
    _check(config, where)
    return config


# -- file reading --------------------------------------------------------------------------------


def _read_file(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"configuration file {path} is not UTF-8 text") from None
    try:
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else yaml.safe_load(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"configuration file {path} is not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"configuration file {path}: expected a mapping of settings at the top level")
    return data


# -- environment ---------------------------------------------------------------------------------

_NAMED_ENV = {
    "MLGATE_HOME": "state_dir",
    "MLGATE_SIGNING_KEY": "signing_key",
    "MLGATE_CONTROLLER_TOKEN": "controller_token",
}


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Overlay ``MLGATE_<SECTION>__<KEY>`` variables (strings, converted later by type)."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    top = {f.name: f for f in dataclasses.fields(ControllerConfig)}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name in _NAMED_ENV:
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        if parts[0] not in top:
            continue  # other MLGATE_* variables (canary dir, test knobs) are not settings
        if len(parts) == 1:
            out[parts[0]] = value
        elif len(parts) == 2:
            section = out.setdefault(parts[0], {})
            if not isinstance(section, dict):
                raise ConfigError(f"{name}: {parts[0]} is not a section")
            section[parts[1]] = value
        else:
            raise ConfigError(f"{name}: expected MLGATE_<SECTION>__<KEY>")
    return out


def _named_env(config: ControllerConfig, env: Mapping[str, str]) -> ControllerConfig:
    changes: dict[str, Any] = {attr: env[var] for var, attr in _NAMED_ENV.items() if env.get(var)}
    config = dataclasses.replace(config, **changes)
    mlflow = config.mlflow
    if not mlflow.tracking_uri and env.get("MLFLOW_TRACKING_URI"):
        mlflow = dataclasses.replace(mlflow, tracking_uri=env["MLFLOW_TRACKING_URI"])
    if not mlflow.registry_uri and env.get("MLFLOW_REGISTRY_URI"):
        mlflow = dataclasses.replace(mlflow, registry_uri=env["MLFLOW_REGISTRY_URI"])
    webhook = config.webhook
    if env.get("MLGATE_WEBHOOK_SECRET"):
        webhook = dataclasses.replace(webhook, secret=env["MLGATE_WEBHOOK_SECRET"])
    return dataclasses.replace(config, mlflow=mlflow, webhook=webhook)


def _buckets(raw: Any, where: str) -> tuple[Any, ...]:
    """Bucket sources, each a typed ``BucketConfig``."""
    if raw in (None, []):
        return ()
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: buckets: expected a list of bucket settings")
    return tuple(BucketConfig.from_mapping(item, where, f"buckets[{i}].") for i, item in enumerate(raw))


def _check(config: ControllerConfig, where: str) -> None:
    positive = {
        "workers": config.workers,
        "mlflow.page_size": config.mlflow.page_size,
        "mlflow.poll_interval_seconds": config.mlflow.poll_interval_seconds,
        "mlflow.full_resync_seconds": config.mlflow.full_resync_seconds,
        "mlflow.max_download_bytes": config.mlflow.max_download_bytes,
        "mlflow.max_download_files": config.mlflow.max_download_files,
        "webhook.max_skew_seconds": config.webhook.max_skew_seconds,
        "backoff.initial_seconds": config.backoff.initial_seconds,
        "backoff.max_seconds": config.backoff.max_seconds,
        "backoff.max_scan_attempts": config.backoff.max_scan_attempts,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{where}: {key}: must be greater than 0, got {value}")
    for key, value in (
        ("mlflow.watermark_skew_seconds", config.mlflow.watermark_skew_seconds),
        ("mlflow.verify_digests_seconds", config.mlflow.verify_digests_seconds),
        ("mlflow.verify_listings_seconds", config.mlflow.verify_listings_seconds),
    ):
        if value < 0:
            raise ConfigError(f"{where}: {key}: must not be negative, got {value}")
    if config.mlflow.page_size > 10_000:
        raise ConfigError(f"{where}: mlflow.page_size: at most 10000 (MLflow's default search limit)")
    if not 0 <= config.http.port <= 65535:
        raise ConfigError(f"{where}: http.port: expected 0..65535, got {config.http.port}")
    if config.log_format not in ("json", "text"):
        raise ConfigError(f'{where}: log_format: expected "json" or "text", got {config.log_format!r}')
    if bool(config.http.tls_cert_file) != bool(config.http.tls_key_file):
        raise ConfigError(f"{where}: http: tls_cert_file and tls_key_file go together")
    if not config.webhook.path.startswith("/"):
        raise ConfigError(f"{where}: webhook.path: must start with '/', got {config.webhook.path!r}")
    if config.backoff.max_seconds < config.backoff.initial_seconds:
        raise ConfigError(f"{where}: backoff.max_seconds: must be at least backoff.initial_seconds")
    if config.signing_key and config.signing_key_file:
        raise ConfigError(f"{where}: signing_key and signing_key_file: set only one")
    if config.policy and not Path(config.policy).is_file():
        raise ConfigError(f"{where}: policy: no such file: {config.policy}")


# -- keys ----------------------------------------------------------------------------------------


def _read_key_file(path: Path) -> bytes:
    try:
        return load_signing_key(key_file=path) or b""
    except SigningKeyError as exc:
        raise ConfigError(str(exc)) from None


def ensure_state_dir(path: Path) -> None:
    """Create the state directory if needed and check that files can be written in it.

    Raises ``ConfigError`` naming the directory and the settings that move it (a read-only root
    filesystem with the state dir left at its default is the usual cause).
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path, prefix=".mlgate-write-check-"):
            pass
    except OSError as exc:
        raise ConfigError(_state_dir_error(path, exc)) from None


def _state_dir_error(path: Path, exc: OSError) -> str:
    return (
        f"state directory {path.absolute()} is not writable ({exc.strerror or exc}): "
        "point MLGATE_HOME (or state_dir in the configuration file) at a writable directory"
    )


def _demo_key(path: Path) -> bytes:
    """The embedded default's key: generated once, kept in the state dir with owner-only permissions."""
    if path.is_file():
        return _read_key_file(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first
        return _read_key_file(path)
    except OSError as exc:
        raise ConfigError(_state_dir_error(path.parent, exc)) from None
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32) + "\n")
    return _read_key_file(path)
