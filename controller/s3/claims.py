"""Scan claims: at most one replica scans a given model at a time.

Replicas compete for SQS messages, and one model of several files produces
several messages, so two replicas can hold events for the same model. Before
scanning, a replica creates ``<claims_prefix><sha256(model uri)>`` with a
conditional write (``If-None-Match: *``): S3 lets exactly one creator win. The
loser leaves the model to the winner, who re-lists it after recording its
verdict and scans again if it changed meanwhile. The claim is deleted
(``If-Match`` its ETag) when the scan is recorded or fails; a claim older than
``claim_ttl_seconds`` belongs to a replica that died and is taken over.
Claims only ever save work: correctness rests on the verdict tags.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import json
import logging
import os
import socket
import uuid
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from ..runtime.logging_json import fields
from .errors import error_code, http_status

log = logging.getLogger("mlgate.s3")

_LOST = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412", "409"})


@dataclass(frozen=True)
class Claim:
    key: str
    etag: str
    version_id: str | None = None  # in a versioned bucket the claim's version is deleted, leaving no trace


def default_owner() -> str:
    """``host-pid-random``: unique per process."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class Claims:
    """Claims stored in ``bucket`` under ``prefix``."""

    def __init__(self, client: Any, bucket: str, prefix: str, ttl_seconds: float, owner: str | None = None) -> None:
        self._client = client
        self._bucket = bucket
        self._prefix = prefix
        self._ttl = ttl_seconds
        self.owner = owner or default_owner()

    def key_for(self, model_uri: str) -> str:
        return f"{self._prefix}{hashlib.sha256(model_uri.encode()).hexdigest()[:40]}"

    def acquire(self, model_uri: str) -> Claim | None:
        """The claim on ``model_uri``, or None while another replica holds a live one."""
        key = self.key_for(model_uri)
        body = json.dumps(
            {"owner": self.owner, "model": model_uri, "claimed_at": dt.datetime.now(dt.timezone.utc).isoformat()}
        ).encode()
        for _ in range(3):
            try:
                response = self._client.put_object(
                    Bucket=self._bucket, Key=key, Body=body, IfNoneMatch="*", ContentType="application/json"
                )
                return Claim(key, str(response.get("ETag", "")).strip('"'), response.get("VersionId"))
            except ClientError as exc:
                if not _lost(exc):
                    raise
            held = self._holder(key)
            if held is None:
                continue  # released between our write and our look: try again
            if held[1] < self._ttl:
                return None
            log.warning("taking over an abandoned scan claim", extra=fields(source="s3", target=model_uri))
            self._delete(held[0])
        return None

    def release(self, claim: Claim) -> None:
        """Delete our claim (never someone else's: its version, or ``If-Match`` its ETag)."""
        self._delete(claim)

    def _holder(self, key: str) -> tuple[Claim, float] | None:
        """(the live claim, its age in seconds by the server's clock), or None when there is none."""
        try:
            head = self._client.head_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if http_status(exc) == 404:
                return None
            raise
        server_now = _server_time(head) or dt.datetime.now(dt.timezone.utc)
        modified = head["LastModified"]
        if modified.tzinfo is None:
            modified = modified.replace(tzinfo=dt.timezone.utc)
        age = (server_now - modified).total_seconds()
        return Claim(key, str(head.get("ETag", "")).strip('"'), head.get("VersionId")), age

    def _delete(self, claim: Claim) -> None:
        target: dict[str, str] = {"Bucket": self._bucket, "Key": claim.key}
        if claim.version_id and claim.version_id != "null":
            target["VersionId"] = claim.version_id
        else:
            target["IfMatch"] = f'"{claim.etag}"'
        try:
            self._client.delete_object(**target)
        except ClientError as exc:
            if not _lost(exc) and http_status(exc) != 404:
                raise


def _lost(exc: ClientError) -> bool:
    return error_code(exc) in _LOST or str(http_status(exc) or "") in _LOST


def _server_time(response: dict[str, Any]) -> dt.datetime | None:
    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    if not date:
        return None
    try:
        when = email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)
