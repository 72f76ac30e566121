"""Promotion gate decisions, and the controller's fallback when the MLflow plugin is absent: alias revert.

``promotion_decision`` is the one rule every layer applies (the MLflow server
plugin, ``mlgate check``, the alias guard): a version may be promoted only when
its tags carry a validly signed ``approved`` verdict (``verdict_tags.check_verdict``) and, where
the caller can list the artifacts (plugin, ``mlgate check``), the listing taken now matches the
signed ``mlgate.listing`` fingerprint recorded at scan time (``verdicts/listing.py``).

``AliasGuard`` is the detective layer for registries without the plugin: an alias
pointing at a version without such a verdict is moved back to the last approved
version the guard recorded (registered-model tag ``mlgate.alias.<alias>``, value
``<version>;<hmac>``), or deleted when there is none; versions in the Staging or
Production stage without approval are moved back to stage None.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from ..runtime.logging_json import fields
from ..runtime.metrics import PROMOTIONS_BLOCKED
from .exceptions import exceptions_problem, note_use, valid_exceptions
from .listing import decode_listing, listing_mode
from .signing import sign_verdict, verify_verdict
from .tags import LISTING, PREFIX, SignedVerdict, check_verdict

log = logging.getLogger("mlgate.gate")

PROMOTED_STAGES = frozenset({"Staging", "Production"})  # canonical names (MLflow's get_canonical_stage)
ALIAS_RECORD_PREFIX = f"{PREFIX}alias."
# Alias records are signed with the verdict HMAC in their own domain: the "verdict" field is
# never approved/quarantined, so a record signature can never pass as a verdict signature.
_RECORD_DOMAIN = "alias-record"


@dataclass(frozen=True)
class GateDecision:
    allowed: bool
    message: str
    signed: SignedVerdict | None = None  # the valid verdict the decision rests on, if any


def promotion_decision(
    key: bytes,
    name: str,
    version: str,
    tags: Mapping[str, str] | None,
    count_as: str | None = None,
    current_listing: Callable[[str], str] | None = None,
) -> GateDecision:
    """May ``models:/name/version`` be promoted (alias, Staging/Production)?

    An approval that rests on reviewed exceptions stands only while each of them is still there, validly
    signed for this version and digest, and unrevoked. ``count_as`` (the layer: plugin, check) counts and
    logs the use of those exceptions when the answer is yes. ``current_listing(mode)`` (optional) lists
    the version's artifacts now in the recorded fingerprint mode and returns the fingerprint; it may
    raise (any exception refuses).
    """
    where = f"models:/{name}/{version}"
    signed = check_verdict(key, name, version, tags).signed
    if signed is None:
        return GateDecision(
            False,
            f"mlgate: {where} has no valid mlgate verdict (not scanned yet, or its verdict tags "
            "are not signed by the controller); promotion refused",
        )
    if not signed.approved:
        summary = f" ({signed.findings})" if signed.findings else ""
        return GateDecision(False, f"mlgate: {where} is quarantined{summary}; promotion refused", signed)
    if current_listing is not None:
        problem = listing_problem(key, name, version, tags or {}, signed, current_listing)
        if problem:
            return GateDecision(False, f"mlgate: {where} {problem}; promotion refused", signed)
    if signed.exceptions:
        problem = exceptions_problem(key, name, version, signed.digest, signed.exceptions, tags or {})
        if problem:
            return GateDecision(False, f"mlgate: {where}: {problem}; promotion refused", signed)
        if count_as:
            for exc in valid_exceptions(key, name, version, signed.digest, tags or {}):
                if exc.id in signed.exceptions:
                    note_use(count_as, where, exc, "an approval resting on it was honoured")
        listed = ", ".join(signed.exceptions)
        return GateDecision(
            True,
            f"mlgate: {where} approved with reviewed exception(s) {listed} ({signed.digest}, "
            f"scanned {signed.scanned_at})",
            signed,
        )
    return GateDecision(True, f"mlgate: {where} approved ({signed.digest}, scanned {signed.scanned_at})", signed)


def listing_problem(
    key: bytes,
    name: str,
    version: str,
    tags: Mapping[str, str],
    signed: SignedVerdict,
    current_listing: Callable[[str], str],
) -> str | None:
    """Why the verdict no longer describes the artifacts (None when the listing still matches)."""
    recorded = decode_listing(key, name, version, signed.digest, tags.get(LISTING))
    if recorded is None:
        return (
            "has no signed artifact listing bound to its verdict (scanned by an older mlgate, or the tag "
            "was altered); the controller rescans it"
        )
    mode = listing_mode(recorded) or ""
    try:
        now = current_listing(mode)
    except Exception as exc:  # noqa: BLE001 - cannot confirm the content: fail closed
        return f"cannot be confirmed unchanged: listing its artifacts failed ({' '.join(str(exc).split())[:200]})"
    if now != recorded:
        return (
            f"artifacts changed since the scan ({mode} listing no longer matches the signed one); "
            "the verdict no longer applies and the controller rescans it"
        )
    return None


def alias_record_key(alias: str) -> str:
    return f"{ALIAS_RECORD_PREFIX}{alias}"


def encode_alias_record(key: bytes, name: str, alias: str, version: str) -> str:
    return f"{version};{sign_verdict(key, name, version, f'alias:{alias}', _RECORD_DOMAIN)}"


def decode_alias_record(key: bytes, name: str, alias: str, value: str | None) -> str | None:
    """The recorded last-approved version for ``alias``, or None when absent or not validly signed."""
    if not value or ";" not in value:
        return None
    version, signature = value.split(";", 1)
    if verify_verdict(key, name, version, f"alias:{alias}", _RECORD_DOMAIN, signature):
        return version
    return None


class RegistryWriter(Protocol):
    """The registry operations the guard needs (``MlflowClient`` has them all)."""

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None: ...
    def delete_registered_model_alias(self, name: str, alias: str) -> None: ...
    def set_registered_model_tag(self, name: str, key: str, value: str) -> None: ...
    def transition_model_version_stage(self, name: str, version: str, stage: str) -> object: ...


class AliasGuard:
    """Keeps aliases and stages on approved versions; counts every reverted promotion."""

    def __init__(self, key: bytes, writer: RegistryWriter, source: str = "mlflow") -> None:
        self._key = key
        self._writer = writer
        self._source = source

    def check_aliases(
        self,
        name: str,
        aliases: Mapping[str, str],
        model_tags: Mapping[str, str],
        version_tags: Callable[[str], Mapping[str, str] | None],
    ) -> int:
        """Check every alias of model ``name``; returns how many were reverted.

        ``version_tags(version)`` returns a version's tags (None when the version is gone).
        """
        reverted = 0
        for alias, target in sorted(aliases.items()):
            target = str(target)
            decision = promotion_decision(self._key, name, target, version_tags(target))
            record_key = alias_record_key(alias)
            recorded = decode_alias_record(self._key, name, alias, model_tags.get(record_key))
            if decision.allowed:
                if recorded != target:
                    self._writer.set_registered_model_tag(
                        name, record_key, encode_alias_record(self._key, name, alias, target)
                    )
                continue
            restore = None
            if recorded and recorded != target:
                if promotion_decision(self._key, name, recorded, version_tags(recorded)).allowed:
                    restore = recorded
            if restore:
                self._writer.set_registered_model_alias(name, alias, restore)
                action = f"alias moved back to approved version {restore}"
            else:
                self._writer.delete_registered_model_alias(name, alias)
                action = "alias deleted (no earlier approved version recorded)"
            PROMOTIONS_BLOCKED.labels(source=self._source).inc()
            log.warning(
                "promotion reverted: %s; %s",
                decision.message,
                action,
                extra=fields(source=self._source, model=name, version=target, alias=alias, event="alias"),
            )
            reverted += 1
        return reverted

    def check_stage(self, name: str, version: str, stage: str | None, tags: Mapping[str, str] | None) -> bool:
        """Move an unapproved Staging/Production version back to stage None; True when it did."""
        if stage not in PROMOTED_STAGES:
            return False
        decision = promotion_decision(self._key, name, version, tags)
        if decision.allowed:
            return False
        with warnings.catch_warnings():  # stages are deprecated in MLflow, but old clients still promote with them
            warnings.simplefilter("ignore", FutureWarning)
            self._writer.transition_model_version_stage(name, version, "None")
        PROMOTIONS_BLOCKED.labels(source=self._source).inc()
        log.warning(
            "promotion reverted: %s; stage %s moved back to None",
            decision.message,
            stage,
            extra=fields(source=self._source, model=name, version=version, event="stage"),
        )
        return True
