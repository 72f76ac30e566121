"""Verdicts on S3 objects: docs/contracts.md §3 tags, reading them back, and the quarantine modes.

Tags: ``mlgate.verdict``, ``mlgate.digest``, ``mlgate.scanned_at`` (plus
``mlgate.scanner``, ``mlgate.findings`` and ``mlgate.signature``, as on MLflow
versions, ``controller/verdicts/tags.py``) on every object of a scanned model,
pinned to the scanned version. The signature covers the object's URI, its
ETag, the model digest and the verdict, so a verdict copied onto other content,
or left on an object that changed, does not verify and counts as no verdict.
S3 allows 10 tags per object (key 128, value 256 characters, letters, digits,
spaces and ``+ - = . _ : / @``): mlgate's tags always go on, values are made
S3-safe, and the object's other tags are kept while they fit (any dropped one
is logged).

Quarantine (``BucketConfig.quarantine``):

* ``tag``: the tags alone; a bucket policy denies reads of anything not
  tagged approved (``examples/s3-bucket-policy.json``).
* ``move``: copy each object (managed copy: multipart above the threshold, so
  over 5 GB too) to ``<quarantine_prefix><bucket>/<digest>/<key>`` in the
  quarantine bucket with the original bucket, key and version in its metadata
  and the verdict tags (plus a legal hold when that bucket has Object Lock),
  then delete the source: in a versioned bucket the scanned version and every
  older version and delete marker of the key (a plain delete would leave the
  data readable), never a version written after the scan; in an unversioned
  bucket a conditional delete (``If-Match`` the scanned ETag).
* ``legal-hold``: the tags plus an Object Lock legal hold on each scanned
  version, so the evidence cannot be deleted (needs Object Lock on the bucket).
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from mlgate.analyzers.core.policy import Verdict
from mlgate.analyzers.core.report import TargetReport

from ..config.buckets import BucketConfig, QuarantineMode
from ..runtime.logging_json import fields
from ..verdicts.tags import REPORT, build_tags, is_reserved
from .errors import error_code, http_status
from .grouping import S3Model
from .object_tags import object_name, read_tags
from .reader import S3Object

log = logging.getLogger("mlgate.s3")

MAX_TAGS = 10
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
_TAG_UNSAFE = re.compile(r"[^\w\s+\-=.:/@]")
COPY_CONFIG = TransferConfig(multipart_threshold=1 << 30, multipart_chunksize=512 << 20)
"""Managed copy: one CopyObject up to 1 GiB, UploadPartCopy in 512 MiB parts above (CopyObject stops at 5 GB)."""


class ObjectChanged(Exception):
    """An object changed between the scan and the action; the model must be looked at again."""


@dataclass(frozen=True)
class Applied:
    """What ``apply`` did, for logs."""

    tagged: int
    moved: int = 0
    held: int = 0


def tag_value(value: str) -> str:
    """``value`` made acceptable to S3: disallowed characters become spaces, at most 256 characters."""
    return " ".join(_TAG_UNSAFE.sub(" ", value).split())[:MAX_TAG_VALUE]


def verdict_tags(signing_key: bytes, bucket: str, key: str, etag: str, report: TargetReport) -> dict[str, str]:
    """The mlgate tags for one object of the model ``report`` is about."""
    tags = build_tags(signing_key, object_name(bucket, key), etag, report)
    return {k: tag_value(v) for k, v in tags.items()}


def merge_tags(
    existing: Iterable[Mapping[str, str]], ours: Mapping[str, str]
) -> tuple[list[dict[str, str]], list[str]]:
    """(tag set to write, keys of the object's own tags dropped for lack of room)."""
    others = [dict(Key=t["Key"], Value=t["Value"]) for t in existing if not is_reserved(t["Key"])]
    room = MAX_TAGS - len(ours)
    tag_set = [{"Key": k[:MAX_TAG_KEY], "Value": v} for k, v in ours.items()] + others[:room]
    return tag_set, [t["Key"] for t in others[room:]]


class VerdictWriter:
    """Writes a model's verdict to its bucket and applies the configured quarantine mode."""

    def __init__(
        self, client: Any, cfg: BucketConfig, signing_key: bytes, copy_config: TransferConfig = COPY_CONFIG
    ) -> None:
        self._client = client
        self._cfg = cfg
        self._key = signing_key
        self._copy_config = copy_config
        self._lock_enabled: dict[str, bool] = {}

    def apply(self, model: S3Model, objects: list[S3Object], report: TargetReport, report_tag: str = "") -> Applied:
        """Tag every object (scanned version), then quarantine per mode. Raises ``ObjectChanged``.

        ``report_tag``: where the full report is kept (``mlgate.report``), added to every object's tags.
        """
        for obj in objects:
            self._pin(obj)
        tags = {obj.key: verdict_tags(self._key, model.bucket, obj.key, obj.etag, report) for obj in objects}
        if report_tag:
            for ours in tags.values():
                ours[REPORT] = tag_value(report_tag)
        for obj in objects:
            self._tag(obj, tags[obj.key])
        if report.verdict is not Verdict.QUARANTINED:
            return Applied(tagged=len(objects))
        return self.quarantine(objects, report.digest, tags)

    def quarantine(self, objects: list[S3Object], digest: str, tags: Mapping[str, Mapping[str, str]]) -> Applied:
        """Apply the quarantine mode to objects tagged quarantined (idempotent: reconcile retries it).

        ``tags`` maps each key to the verdict tags its quarantined copy carries.
        """
        mode = self._cfg.quarantine
        if mode is QuarantineMode.LEGAL_HOLD:
            for obj in objects:
                self._pin(obj)
                self._hold(obj.bucket, obj.key, obj.version_id)
            return Applied(tagged=len(objects), held=len(objects))
        if mode is QuarantineMode.MOVE:
            for obj in objects:
                self._pin(obj)
                self._copy_out(obj, digest, tags[obj.key])
            for obj in objects:
                self._delete_source(obj)
            return Applied(tagged=len(objects), moved=len(objects))
        return Applied(tagged=len(objects))

    def destination(self, bucket: str, key: str, digest: str) -> str:
        """Where a quarantined object is copied: deterministic, so a retried move overwrites its own copy.

        ``<quarantine_prefix><bucket>/<digest>/<key>`` with the model digest's full hex (docs/s3.md).
        """
        hexdigest = digest.partition(":")[2] or "unknown"
        return f"{self._cfg.quarantine_prefix}{bucket}/{hexdigest}/{key}"

    # -- internals ------------------------------------------------------------------------------

    def _pin(self, obj: S3Object) -> None:
        """Learn the version of an object the scan never had to GET (empty objects)."""
        if obj.version_id is not None:
            return
        try:
            head = self._client.head_object(Bucket=obj.bucket, Key=obj.key, IfMatch=f'"{obj.etag}"')
        except ClientError as exc:
            if http_status(exc) in (404, 412):
                raise ObjectChanged(f"{obj.uri}: changed or deleted after the scan") from None
            raise
        version = head.get("VersionId")
        obj.version_id = version if version and version != "null" else None

    def _tag(self, obj: S3Object, ours: Mapping[str, str]) -> None:
        existing = read_tags(self._client, obj.bucket, obj.key, obj.version_id)
        tag_set, dropped = merge_tags(({"Key": k, "Value": v} for k, v in existing.items()), ours)
        if dropped:
            log.warning(
                "object tags dropped to make room for the verdict (S3 allows 10)",
                extra=fields(source="s3", target=obj.uri, reason=" ".join(dropped)),
            )
        params: dict[str, Any] = {"Bucket": obj.bucket, "Key": obj.key, "Tagging": {"TagSet": tag_set}}
        if obj.version_id:
            params["VersionId"] = obj.version_id
        self._client.put_object_tagging(**params)
        if obj.version_id:
            return
        # Unversioned: tags go to whatever object holds the key now. If it was replaced after the
        # scan, take the verdict back off the newcomer (its own event brings it to a scan).
        head = self._client.head_object(Bucket=obj.bucket, Key=obj.key)
        if str(head.get("ETag", "")).strip('"') != obj.etag:
            current = read_tags(self._client, obj.bucket, obj.key)
            kept = [{"Key": k, "Value": v} for k, v in current.items() if not is_reserved(k)]
            if kept:
                self._client.put_object_tagging(Bucket=obj.bucket, Key=obj.key, Tagging={"TagSet": kept})
            else:
                self._client.delete_object_tagging(Bucket=obj.bucket, Key=obj.key)
            raise ObjectChanged(f"{obj.uri}: replaced after the scan")

    def _hold(self, bucket: str, key: str, version_id: str | None) -> None:
        params: dict[str, Any] = {"Bucket": bucket, "Key": key, "LegalHold": {"Status": "ON"}}
        if version_id:
            params["VersionId"] = version_id
        self._client.put_object_legal_hold(**params)

    def _copy_out(self, obj: S3Object, digest: str, tags: Mapping[str, str]) -> None:
        dest_bucket = self._cfg.quarantine_destination
        dest_key = self.destination(obj.bucket, obj.key, digest)
        source: dict[str, str] = {"Bucket": obj.bucket, "Key": obj.key}
        if obj.version_id:
            source["VersionId"] = obj.version_id
        metadata = {
            "mlgate-source-bucket": obj.bucket,
            "mlgate-source-key": urllib.parse.quote(obj.key, safe="/"),
            "mlgate-source-version": obj.version_id or "",
            "mlgate-source-etag": obj.etag,
        }
        extra = {
            "Metadata": metadata,
            "MetadataDirective": "REPLACE",
            "Tagging": urllib.parse.urlencode(tags),
            "TaggingDirective": "REPLACE",
            "CopySourceIfMatch": f'"{obj.etag}"',
        }
        try:
            self._client.copy(source, dest_bucket, dest_key, ExtraArgs=extra, Config=self._copy_config)
        except ClientError as exc:
            if http_status(exc) in (404, 412):
                raise ObjectChanged(f"{obj.uri}: changed before it could be moved") from None
            raise
        if self._object_lock(dest_bucket):
            self._hold(dest_bucket, dest_key, None)
        log.info(
            "quarantined object copied", extra=fields(source="s3", target=obj.uri, url=f"s3://{dest_bucket}/{dest_key}")
        )

    def _delete_source(self, obj: S3Object) -> None:
        if not obj.version_id:
            try:
                self._client.delete_object(Bucket=obj.bucket, Key=obj.key, IfMatch=f'"{obj.etag}"')
            except ClientError as exc:
                if http_status(exc) in (404, 412):
                    raise ObjectChanged(f"{obj.uri}: replaced before it could be deleted") from None
                raise
            return
        for version in self._versions_to_delete(obj):
            self._client.delete_object(Bucket=obj.bucket, Key=obj.key, VersionId=version)

    def _versions_to_delete(self, obj: S3Object) -> list[str]:
        """The scanned version, then every older version and delete marker of the key (newest first)."""
        found, out = False, []
        paginator = self._client.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=obj.bucket, Prefix=obj.key):
            entries = [*page.get("Versions", ()), *page.get("DeleteMarkers", ())]
            entries.sort(key=lambda v: v["LastModified"], reverse=True)
            for entry in entries:
                if entry["Key"] != obj.key:
                    continue
                found = found or entry["VersionId"] == obj.version_id
                if found:
                    out.append(entry["VersionId"])
        return out

    def _object_lock(self, bucket: str) -> bool:
        if bucket not in self._lock_enabled:
            self._lock_enabled[bucket] = object_lock_enabled(self._client, bucket)
        return self._lock_enabled[bucket]


def object_lock_enabled(client: Any, bucket: str) -> bool:
    try:
        conf = client.get_object_lock_configuration(Bucket=bucket)
    except ClientError as exc:
        if error_code(exc) == "ObjectLockConfigurationNotFoundError":
            return False
        raise
    return conf.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"


def preflight(client: Any, cfg: BucketConfig) -> list[str]:
    """Problems that would make this bucket's quarantine mode fail, one line each (empty: fine)."""
    problems = []
    try:
        client.head_bucket(Bucket=cfg.bucket)
    except ClientError as exc:
        return [f"bucket {cfg.bucket}: cannot be reached ({error_code(exc) or exc})"]
    if cfg.quarantine is QuarantineMode.LEGAL_HOLD and not object_lock_enabled(client, cfg.bucket):
        problems.append(f"bucket {cfg.bucket}: quarantine: legal-hold needs Object Lock enabled on the bucket")
    if cfg.quarantine is QuarantineMode.MOVE and cfg.quarantine_destination != cfg.bucket:
        try:
            client.head_bucket(Bucket=cfg.quarantine_destination)
        except ClientError as exc:
            code = error_code(exc) or exc
            problems.append(
                f"bucket {cfg.bucket}: quarantine_bucket {cfg.quarantine_destination} cannot be reached ({code})"
            )
    return problems
