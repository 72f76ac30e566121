"""Scan one S3 model in place: every object is an artifact read through ranged GETs.

Nothing is downloaded up front: analyzers open each object through
``S3Object.open()`` and fetch only what they read (``controller/s3/reader.py``).
The content hash of each object in the digest manifest is its ETag, the id
the listing gives for free; reads are pinned to the version the first GET
returned. The report's ``bytes_read`` is the number of bytes actually fetched
from S3, which is what ``mlgate_scanned_bytes_total{source="s3"}`` counts (for a scan
whose reads failed, ``S3Source`` hands the session's count to the runtime on the exception).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mlgate.analyzers.core.artifact import Artifact
from mlgate.analyzers.core.policy import Policy
from mlgate.analyzers.core.report import TargetReport, build_report
from mlgate.analyzers.core.walker import ScanContext, ScanOptions, scan_artifacts
from mlgate.analyzers.signatures import SignatureCheck, unsigned, verify_signature

from ..resolver.interface import Origin, Resolver
from ..runtime.logging_json import fields
from ..scanning import resolve_dependencies
from .grouping import S3Model
from .reader import ReadSession, S3Object

log = logging.getLogger("mlgate.s3")


@dataclass
class ScannedModel:
    """A finished scan: the report, the objects as read (with their pinned versions), the read session."""

    model: S3Model
    objects: list[S3Object]
    session: ReadSession
    report: TargetReport


def scan_model(
    client: Any, model: S3Model, policy: Policy, resolver: Resolver | None = None, session: ReadSession | None = None
) -> ScannedModel:
    """Scan ``model`` under ``policy`` (``resolver``: the dependency resolver, default from the environment).

    S3 failures are in ``session.errors``: such a report must not be recorded.
    """
    session = session or ReadSession()
    objects = [S3Object(client, model.bucket, ref.key, ref.size, ref.etag, session) for ref in model.objects]
    etags: dict[str, str] = {}
    artifacts = []
    for ref, obj in zip(model.objects, objects, strict=True):
        name = model.name_of(ref)
        etags[name] = ref.etag
        artifacts.append(Artifact(location=name, name=name, opener=obj.open, size=ref.size))
    ctx = ScanContext(model.uri, ScanOptions(budgets=policy.budgets))
    scan = scan_artifacts(artifacts, ctx, content_hash=lambda artifact: etags[artifact.location])
    signature = _check_signature(artifacts, policy)
    scan.findings.extend(signature.findings)
    origin = Origin(members=frozenset(etags))
    report = build_report(scan, policy, resolve_dependencies(scan, policy, origin, resolver))
    report = replace(
        report, bytes_read=session.bytes_fetched, signer=signature.signer, signature_file=signature.signature_file
    )
    total = sum(ref.size for ref in model.objects)
    log.info(
        "s3 model read",
        extra=fields(
            source="s3",
            target=model.uri,
            count=len(objects),
            bytes=session.bytes_fetched,
            size=total,
            requests=session.requests,
            duration_s=round(scan.duration_s, 3),
        ),
    )
    return ScannedModel(model, objects, session, report)


def _check_signature(artifacts: list[Artifact], policy: Policy) -> SignatureCheck:
    """The model-signature check (docs/signatures.md). Verifying hashes every byte, so the objects are
    streamed into a private temporary folder only when the model carries a signature or the policy
    requires one; otherwise the result is the "unsigned" finding and nothing more is read."""
    wanted = policy.signatures
    if wanted.signature_file not in {a.name for a in artifacts}:
        return unsigned(wanted)  # info, or high when the policy requires a signature
    with tempfile.TemporaryDirectory(prefix="mlgate-sig-") as tmp:
        root = Path(tmp)
        for artifact in artifacts:
            dest = (root / artifact.name).resolve()
            if not dest.is_relative_to(root.resolve()):
                continue  # an escaping name is an archive-slip finding already; never written outside
            dest.parent.mkdir(parents=True, exist_ok=True)
            with artifact.open() as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
        return verify_signature(root, wanted)
