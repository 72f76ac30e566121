"""Reading mlgate verdicts back from S3 object tags (no writes: the admission webhook imports this).

A verdict on an object is signed over the object's URI (``object_name``), its
ETag, the model digest and the verdict (``docs/s3.md``); a verdict copied onto
other content, or left on an object that changed, does not verify and counts as
no verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlgate.analyzers.core.policy import Verdict

from ..verdicts.tags import VerdictCheck, check_verdict
from .grouping import S3Model, S3ObjectRef


def object_name(bucket: str, key: str) -> str:
    """The name a verdict signature covers for one object."""
    return f"s3://{bucket}/{key}"


def read_tags(client: Any, bucket: str, key: str, version_id: str | None = None) -> dict[str, str]:
    params: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version_id:
        params["VersionId"] = version_id
    return {t["Key"]: t["Value"] for t in client.get_object_tagging(**params).get("TagSet", ())}


def object_verdict(signing_key: bytes, bucket: str, obj: S3ObjectRef, tags: Mapping[str, str]) -> VerdictCheck:
    """Do ``tags`` carry a valid verdict signed for ``obj`` at its current ETag, and which?"""
    return check_verdict(signing_key, object_name(bucket, obj.key), obj.etag, tags)


def model_verdict(client: Any, signing_key: bytes, model: S3Model) -> Verdict | None:
    """The model's verdict when every object carries a valid one for the model's current digest, else None.

    A changed, added or removed object changes the digest, and an overwritten
    object (or a new version) has no tags: either way the model has no verdict
    until it is scanned again.
    """
    digest = model.digest()
    verdicts = set()
    for obj in model.objects:
        signed = object_verdict(signing_key, model.bucket, obj, read_tags(client, model.bucket, obj.key)).signed
        if signed is None or signed.digest != digest:
            return None
        verdicts.add(signed.verdict)
    return verdicts.pop() if len(verdicts) == 1 else None
