"""Settings of one watched S3 bucket (``buckets:`` in the controller configuration).

``BucketConfig`` is a typed, frozen dataclass; every mistake is reported as one
``ConfigError`` line naming the key (``controller.yaml: buckets[0].quarantine:
expected one of tag, move, legal-hold, got 'delete'``). Build it from a mapping
with ``BucketConfig.from_mapping``; constructing it directly validates too.

Example (YAML)::

    buckets:
      - bucket: ml-models
        prefixes: [teams/]
        queue_url: https://sqs.eu-west-1.amazonaws.com/123456789012/mlgate-events
        quarantine: move              # tag | move | legal-hold
        quarantine_bucket: ml-quarantine
        quarantine_prefix: quarantine/
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Any

from mlgate.analyzers.core.policy import SignaturePolicy

from .interface import InvalidSetting, build_settings, show_value, signature_override

DEFAULT_MARKERS: tuple[str, ...] = (
    "MLmodel",  # MLflow model directory
    "config.json",  # Hugging Face transformers (and many others)
    "adapter_config.json",  # PEFT adapters
    "saved_model.pb",  # TensorFlow SavedModel
    "saved_model.pbtxt",
    "model_index.json",  # diffusers pipelines
    "modules.json",  # sentence-transformers
    "keras_metadata.pb",  # Keras 2 SavedModel
    "params.json",  # Meta Llama checkpoints
)
"""File names that make their directory one model (see docs/s3.md, "Model grouping")."""

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


DEFAULT_SETTLE_SECONDS = 10.0
"""Quiet period before a model folder is scanned (``settle_seconds``); see docs/s3.md, "Uploads in progress"."""


class QuarantineMode(enum.Enum):
    """What happens to the objects of a quarantined model (beyond the verdict tags, always written)."""

    TAG = "tag"  # tags only; the bucket policy denies reads of anything not tagged approved
    MOVE = "move"  # copy to the quarantine bucket/prefix, then delete the source versions
    LEGAL_HOLD = "legal-hold"  # tags + an Object Lock legal hold on each scanned version


@dataclass(frozen=True)
class BucketConfig:
    """One watched bucket: where models are, where events come from, what quarantine does."""

    bucket: str
    prefixes: tuple[str, ...] = ("",)  # key prefixes watched ("" = the whole bucket); must not nest
    queue_url: str = ""  # SQS queue receiving this bucket's event notifications (empty: listing only)
    quarantine: QuarantineMode = QuarantineMode.TAG
    quarantine_bucket: str = ""  # move: destination bucket (empty: this bucket)
    quarantine_prefix: str = "quarantine/"  # move: destination prefix; never scanned when in this bucket
    model_markers: tuple[str, ...] = DEFAULT_MARKERS
    settle_seconds: float = field(default_factory=lambda: DEFAULT_SETTLE_SECONDS)
    # a model folder is scanned once none of its objects changed for this long (uploads in progress)
    complete_marker: str = ""  # if set: a model folder is scanned only once this file exists in it
    endpoint_url: str = ""  # S3-compatible endpoint (empty: AWS, or AWS_ENDPOINT_URL)
    region: str = ""  # empty: the standard AWS environment
    claims_bucket: str = ""  # where replicas' scan claims live (empty: this bucket, under claims_prefix)
    claims_prefix: str = ".mlgate/claims/"  # never scanned when the claims live in this bucket
    reports_prefix: str = ".mlgate/reports/"  # verdict reports, next to each model's path; never scanned
    claim_ttl_seconds: float = 900.0  # a claim older than this is abandoned and may be taken over
    visibility_timeout_seconds: int = 300  # SQS: held (and extended) while a message's scans run
    retry_delay_seconds: int = 30  # SQS: a failed message becomes visible again after this
    wait_time_seconds: int = 20  # SQS long polling
    max_messages: int = 10  # SQS: messages per receive (1..10)
    # [signatures] override for this bucket (docs/signatures.md); empty: the scan policy's section
    signatures: SignaturePolicy | None = field(default=None, metadata={"build": signature_override("signatures")})

    def __post_init__(self) -> None:
        _validate(self)

    @classmethod
    def from_mapping(cls, data: Any, where: str = "configuration", label: str = "buckets[0].") -> BucketConfig:
        """Build from a parsed YAML/TOML mapping (``config.build_settings``); ``label`` prefixes key names in errors."""
        return build_settings(cls, data, where, label)

    # -- derived --------------------------------------------------------------------------------

    @property
    def quarantine_destination(self) -> str:
        """The bucket quarantined copies go to."""
        return self.quarantine_bucket or self.bucket

    @property
    def claims_location(self) -> str:
        """The bucket scan claims are written to."""
        return self.claims_bucket or self.bucket

    def reserved_prefixes(self) -> tuple[str, ...]:
        """Key prefixes of this bucket the controller writes itself, never scanned as models."""
        out = [self.claims_prefix] if self.claims_location == self.bucket else []
        out.append(self.reports_prefix)
        if self.quarantine is QuarantineMode.MOVE and self.quarantine_destination == self.bucket:
            out.append(self.quarantine_prefix)
        return tuple(out)

    def watches(self, key: str) -> str | None:
        """The watched prefix ``key`` falls under, or None (outside every prefix, or reserved)."""
        if any(key.startswith(p) for p in self.reserved_prefixes()):
            return None
        return next((p for p in self.prefixes if key.startswith(p)), None)


def _validate(cfg: BucketConfig) -> None:
    """Raise ``InvalidSetting`` for the first mistake in ``cfg``."""
    _bucket_name(cfg.bucket, "bucket")
    if not isinstance(cfg.quarantine, QuarantineMode):
        raise InvalidSetting("quarantine", f"expected a QuarantineMode, got {show_value(cfg.quarantine)}")
    if not cfg.prefixes:
        raise InvalidSetting("prefixes", 'at least one prefix ("" watches the whole bucket)')
    for prefix in cfg.prefixes:
        if prefix.startswith("/"):
            raise InvalidSetting("prefixes", f"S3 keys do not start with '/': {prefix!r}")
    if len(set(cfg.prefixes)) != len(cfg.prefixes):
        raise InvalidSetting("prefixes", f"listed twice: {_first_duplicate(cfg.prefixes)!r}")
    for a in cfg.prefixes:
        for b in cfg.prefixes:
            if a != b and b.startswith(a):
                raise InvalidSetting("prefixes", f"{b!r} is inside {a!r}; list only the outer one")
    if cfg.queue_url and not cfg.queue_url.startswith(("https://", "http://")):
        raise InvalidSetting("queue_url", f"expected an SQS queue URL (https://sqs...), got {cfg.queue_url!r}")
    if cfg.quarantine_bucket:
        _bucket_name(cfg.quarantine_bucket, "quarantine_bucket")
    if cfg.claims_bucket:
        _bucket_name(cfg.claims_bucket, "claims_bucket")
    if cfg.quarantine is not QuarantineMode.MOVE and cfg.quarantine_bucket:
        raise InvalidSetting("quarantine_bucket", f"only used with quarantine: move (mode is {cfg.quarantine.value})")
    if cfg.quarantine is QuarantineMode.MOVE and cfg.quarantine_destination == cfg.bucket:
        if not cfg.quarantine_prefix.strip("/"):
            raise InvalidSetting("quarantine_prefix", "required when quarantined objects stay in the watched bucket")
    if not cfg.claims_prefix.strip("/") or not cfg.claims_prefix.endswith("/"):
        raise InvalidSetting("claims_prefix", f"expected a folder-like prefix ending in '/', got {cfg.claims_prefix!r}")
    if not cfg.reports_prefix.strip("/") or not cfg.reports_prefix.endswith("/"):
        raise InvalidSetting(
            "reports_prefix", f"expected a folder-like prefix ending in '/', got {cfg.reports_prefix!r}"
        )
    for reserved in cfg.reserved_prefixes():
        for prefix in cfg.prefixes:
            if prefix.startswith(reserved):
                raise InvalidSetting("prefixes", f"{prefix!r} is inside the controller's own prefix {reserved!r}")
    if not cfg.model_markers:
        raise InvalidSetting("model_markers", "at least one marker file name")
    for marker in cfg.model_markers:
        if not marker or "/" in marker:
            raise InvalidSetting("model_markers", f"expected file names without '/', got {marker!r}")
    if cfg.settle_seconds < 0:
        raise InvalidSetting("settle_seconds", f"must be 0 or more, got {cfg.settle_seconds}")
    if "/" in cfg.complete_marker:
        raise InvalidSetting("complete_marker", f"expected a file name without '/', got {cfg.complete_marker!r}")
    positive = {
        "claim_ttl_seconds": cfg.claim_ttl_seconds,
        "visibility_timeout_seconds": cfg.visibility_timeout_seconds,
        "retry_delay_seconds": cfg.retry_delay_seconds,
        "max_messages": cfg.max_messages,
    }
    for key, value in positive.items():
        if value <= 0:
            raise InvalidSetting(key, f"must be greater than 0, got {value}")
    if cfg.visibility_timeout_seconds > 43_200:
        raise InvalidSetting("visibility_timeout_seconds", "at most 43200 (SQS maximum)")
    if cfg.retry_delay_seconds > 43_200:
        raise InvalidSetting("retry_delay_seconds", "at most 43200 (SQS maximum)")
    if not 0 <= cfg.wait_time_seconds <= 20:
        raise InvalidSetting("wait_time_seconds", f"expected 0..20 (SQS long polling), got {cfg.wait_time_seconds}")
    if cfg.max_messages > 10:
        raise InvalidSetting("max_messages", f"expected 1..10 (SQS maximum), got {cfg.max_messages}")
    if cfg.endpoint_url and not cfg.endpoint_url.startswith(("https://", "http://")):
        raise InvalidSetting("endpoint_url", f"expected an http(s) URL, got {cfg.endpoint_url!r}")


def _bucket_name(name: Any, key: str) -> None:
    if not isinstance(name, str) or not _BUCKET_NAME.match(name) or ".." in name:
        raise InvalidSetting(
            key,
            f"not a valid S3 bucket name: {show_value(name)} (3-63 characters: lower-case letters, digits, '.', '-')",
        )


def _first_duplicate(items: tuple[str, ...]) -> str:
    seen: set[str] = set()
    for item in items:
        if item in seen:
            return item
        seen.add(item)
    return ""  # pragma: no cover - only called when there is one
