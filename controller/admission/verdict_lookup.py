"""Verdict lookups for the admission webhook: is this registry version, or this S3 location, approved?

* ``models:/name/version``: the model version's ``mlgate.verdict`` tag must be ``approved`` and its
  ``mlgate.signature`` must be the controller's HMAC over (name, version, digest, verdict) (docs/contracts.md §2).
  A verdict without a valid signature counts as no verdict.
* ``s3://bucket/key``: every object the serving runtime would download must carry an approved verdict
  whose signature covers that object and its current ETag (docs/contracts.md §3, ``controller/s3/actions.py``):
  tags forged, copied from another object, or left on an object that changed since the scan count as no
  verdict. Which objects that is follows KServe's storage initializer: the exact object when ``key``
  names one, otherwise every object whose key starts with ``key`` (a raw prefix, not a folder:
  ``models/fraud`` also covers ``models/fraud-v2/``); folder markers and empty objects are skipped.

``VerdictLookup`` is the small protocol the admission handler needs; ``RegistryVerdicts`` implements it
with a real MLflow client and a real boto3 S3 client. Backend failures raise ``LookupFailed`` so the
handler can deny (fail closed) with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from ..s3.errors import error_code
from ..s3.grouping import S3ObjectRef, list_objects
from ..s3.object_tags import object_verdict, read_tags
from ..verdicts.exceptions import exceptions_problem, note_use, valid_exceptions
from ..verdicts.tags import FINDINGS, VerdictState, check_verdict

DEFAULT_MAX_OBJECTS = 256  # an S3 prefix with more objects than this is denied: too many to verify in time
TAG_READ_CONCURRENCY = 8
UNSIGNED = (
    "carries an mlgate verdict without a valid signature (forged, or written outside mlgate), "
    "which counts as not scanned"
)
UNSIGNED_OBJECT = (
    "carries an mlgate verdict without a valid signature for its current content (forged, copied "
    "from another object, or the object changed since the scan), which counts as not scanned"
)


@dataclass(frozen=True)
class Approval:
    """The answer for one reference: approved, or why not (one line for a person)."""

    approved: bool
    reason: str = ""


class LookupFailed(Exception):
    """The verdict source could not answer (unreachable, access denied, unexpected reply)."""


class VerdictLookup(Protocol):
    """What the admission handler needs to know about a model reference."""

    def registry_version(self, name: str, version: str) -> Approval:
        """Approval of one registered model version (signed verdict tag)."""
        ...

    def resolve_alias(self, name: str, alias: str) -> str | None:
        """The version an alias points at now, or ``None`` when the alias does not exist."""
        ...

    def s3_objects(self, bucket: str, key: str) -> Approval:
        """Approval of every object the serving runtime would download for ``s3://bucket/key``."""
        ...


class RegistryVerdicts:
    """``VerdictLookup`` over an MLflow registry client and a boto3 S3 client."""

    def __init__(
        self, mlflow_client: Any, signing_key: bytes, s3_client: Any = None, max_objects: int = DEFAULT_MAX_OBJECTS
    ) -> None:
        self._mlflow = mlflow_client
        self._key = signing_key
        self._s3 = s3_client
        self._max_objects = max_objects

    # --- MLflow --------------------------------------------------------------------------------

    def registry_version(self, name: str, version: str) -> Approval:
        from mlflow.exceptions import MlflowException

        try:
            model_version = self._mlflow.get_model_version(name, version)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return Approval(False, "no such model version in the registry")
            raise LookupFailed(f"MLflow registry error: {_first_line(exc.message)}") from None
        return registry_approval(
            self._key, model_version.name, str(model_version.version), dict(model_version.tags or {})
        )

    def resolve_alias(self, name: str, alias: str) -> str | None:
        from mlflow.exceptions import MlflowException

        try:
            return str(self._mlflow.get_model_version_by_alias(name, alias).version)
        except MlflowException as exc:
            if exc.error_code in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}:
                return None
            raise LookupFailed(f"MLflow registry error: {_first_line(exc.message)}") from None

    # --- S3 ------------------------------------------------------------------------------------

    def s3_objects(self, bucket: str, key: str) -> Approval:
        if self._s3 is None:
            raise LookupFailed("no S3 client is configured for s3:// references")
        objects: list[S3ObjectRef] = []
        for obj in self._victim_objects(bucket, key):
            objects.append(obj)
            if len(objects) > self._max_objects:
                return Approval(
                    False,
                    f"more than {self._max_objects} objects under this prefix: too many to "
                    "verify at admission; serve a narrower prefix",
                )
        if not objects:
            return Approval(False, "no object exists at this location")
        with ThreadPoolExecutor(max_workers=min(TAG_READ_CONCURRENCY, len(objects))) as pool:
            reasons = list(pool.map(lambda o: self._object_problem(bucket, o), objects))
        bad = [(o.key, r) for o, r in zip(objects, reasons, strict=True) if r]
        if not bad:
            return Approval(True)
        first_key, first_reason = bad[0]
        if len(objects) == 1:
            return Approval(False, first_reason)
        return Approval(
            False,
            f"{len(bad)} of {len(objects)} objects are not approved (first: s3://{bucket}/{first_key} {first_reason})",
        )

    def _victim_objects(self, bucket: str, key: str) -> Iterator[S3ObjectRef]:
        """The objects KServe's storage initializer downloads: the exact object, else the raw prefix."""
        from botocore.exceptions import ClientError

        try:
            for obj in list_objects(self._s3, bucket, key):
                if obj.key.endswith("/") or obj.size == 0:
                    continue  # folder markers and empty objects are never downloaded
                yield obj
                if obj.key == key:
                    return  # listed first (lexicographic order): KServe downloads only this object
        except ClientError as exc:
            code = error_code(exc)
            if code == "NoSuchBucket":
                return
            raise LookupFailed(f"S3 error listing s3://{bucket}/{key}: {code or exc}") from None

    def _object_problem(self, bucket: str, obj: S3ObjectRef) -> str:
        """Why one object is not approved; empty when it is."""
        from botocore.exceptions import ClientError

        try:
            tags = read_tags(self._s3, bucket, obj.key)
        except ClientError as exc:
            code = error_code(exc)
            if code in {"NoSuchKey", "404"}:
                return "disappeared while being verified"
            raise LookupFailed(f"S3 error reading tags of s3://{bucket}/{obj.key}: {code or exc}") from None
        return s3_problem(self._key, bucket, obj, tags)


def registry_approval(signing_key: bytes, name: str, version: str, tags: Mapping[str, str]) -> Approval:
    """Decide from a model version's tags (the registry's canonical name and version)."""
    check = check_verdict(signing_key, name, version, tags)
    state = check.state
    if state is VerdictState.APPROVED and check.signed is not None and check.signed.exceptions:
        signed = check.signed
        problem = exceptions_problem(signing_key, name, version, signed.digest, signed.exceptions, tags)
        if problem:
            return Approval(False, problem)
        for exc in valid_exceptions(signing_key, name, version, signed.digest, tags):
            if exc.id in signed.exceptions:
                note_use("admission", f"models:/{name}/{version}", exc, "an approval resting on it was honoured")
        return Approval(True)
    if state is VerdictState.APPROVED:
        return Approval(True)
    if state is VerdictState.QUARANTINED:
        findings = tags.get(FINDINGS)
        return Approval(False, "is quarantined by the mlgate security scan" + (f" ({findings})" if findings else ""))
    if state is VerdictState.UNSCANNED:
        return Approval(False, "has not been scanned yet (no mlgate verdict tag)")
    return Approval(False, UNSIGNED)


def s3_problem(signing_key: bytes, bucket: str, obj: S3ObjectRef, tags: Mapping[str, str]) -> str:
    """Why an object's tags do not approve its current content; empty when they do."""
    state = object_verdict(signing_key, bucket, obj, tags).state
    if state is VerdictState.APPROVED:
        return ""
    if state is VerdictState.QUARANTINED:
        return "is quarantined by the mlgate security scan"
    if state is VerdictState.UNSCANNED:
        return "has not been scanned yet (no mlgate.verdict tag)"
    return UNSIGNED_OBJECT


def build_lookup(
    tracking_uri: str | None,
    registry_uri: str | None,
    signing_key: bytes,
    s3_endpoint_url: str | None = None,
    timeout: float = 2.0,
    max_objects: int = DEFAULT_MAX_OBJECTS,
) -> RegistryVerdicts:
    """A ``RegistryVerdicts`` with clients tuned for admission: short timeouts, no retries."""
    import boto3
    from botocore.config import Config
    from mlflow import MlflowClient

    s3 = boto3.client(
        "s3",
        endpoint_url=s3_endpoint_url,
        config=Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1, "mode": "standard"}),
    )
    return RegistryVerdicts(
        MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri), signing_key, s3, max_objects
    )


def _first_line(text: str) -> str:
    return (text or "").strip().splitlines()[0][:300] if (text or "").strip() else "no detail"
