"""What ``mlgate scan`` accepts as a TARGET: a local path, or a model reference resolved like a dependency.

* ``models:/name/version``, ``models:/name@alias``, ``runs:/run_id/path``: the MLflow resolver
  (``resolver/mlflow.py``) downloads the artifacts into a private temporary folder, scanned and deleted;
* ``hf://org/name[@revision]``: the hub-cache resolver (``resolver/hf.py``), offline;
* ``s3://bucket/prefix/`` or ``s3://bucket/key``: the S3 resolver's lookup (``resolver/s3.py``) names
  the objects, which are scanned in place through ranged reads (``s3/scan.py``), as the S3 source does;
* anything else is a path.

Every reference goes through the same resolver registry the dependencies use
(``resolver.default_resolver``), so a reference means the same thing wherever mlgate meets it.
A reference that cannot be had raises ``TargetError``: one line naming the reference and the cause.
"""

from __future__ import annotations

import re

from ..scanning import scan_target

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up, issue 19)
if TYPE_CHECKING:
    from mlgate.analyzers.core.parallel import WorkerPool
    from mlgate.analyzers.core.policy import Policy
    from mlgate.analyzers.core.report import TargetReport

    from ..resolver import Resolver

_HF = re.compile(r"^hf://(?P<repo>[^@\s]+?)(?:@(?P<revision>[^@\s/]+))?/?$")
_MODELS = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[^/]+)|@(?P<alias>[^/@]+))(?:/.*)?$")
_RUNS = re.compile(r"^runs:/(?P<run>[^/]+)(?:/.*)?$")
_SCHEMES = ("models:", "runs:", "s3://", "hf://")


class TargetError(Exception):
    """A target reference that cannot be scanned; the message names the reference and the cause."""


def is_reference(target: str) -> bool:
    """True when ``target`` is a model reference rather than a local path."""
    return target.startswith(_SCHEMES)


def check_reference(target: str) -> None:
    """Raise ``TargetError`` when ``target`` is a reference of a known scheme with a malformed shape."""
    if target.startswith("models:") and not _MODELS.match(target):
        raise TargetError(f"{target}: expected models:/NAME/VERSION or models:/NAME@ALIAS")
    if target.startswith("runs:") and not _RUNS.match(target):
        raise TargetError(f"{target}: expected runs:/RUN_ID/PATH")
    if target.startswith("hf://") and not _HF.match(target):
        raise TargetError(f"{target}: expected hf://ORG/NAME or hf://ORG/NAME@REVISION")
    if target.startswith("s3://") and not target[len("s3://") :].partition("/")[0]:
        raise TargetError(f"{target}: expected s3://BUCKET/PREFIX/ or s3://BUCKET/KEY")


def scan_reference(
    target: str,
    policy: Policy,
    resolver: Resolver | None = None,
    compute_digest: bool = True,
    pool: WorkerPool | None = None,
) -> TargetReport:
    """Scan the model ``target`` names (not a path); its report's ``target`` is ``target`` as given.

    ``compute_digest`` hashes downloaded artifacts for the digest; an S3 model's digest comes from
    its ETags (no hashing), so it is always filled. ``pool`` walks a downloaded model's files on
    worker processes (``analyzers/core/parallel.py``)."""
    from mlgate.analyzers.core.references import Reference, RefKind

    from ..resolver import Origin, default_resolver

    check_reference(target)
    registry = resolver if resolver is not None else default_resolver()
    if target.startswith("s3://"):
        return _scan_s3(target, policy, registry)
    if target.startswith("hf://"):
        match = _HF.match(target)
        assert match is not None
        ref = Reference(RefKind.HF, match["repo"], location="", revision=match["revision"])
    else:
        ref = Reference(RefKind.MLFLOW, target, location="")
    resolution = registry.resolve(ref, Origin())
    try:
        if not resolution.resolved or resolution.path is None:
            raise TargetError(f"{target}: {resolution.reason or 'nothing to scan'}")
        if resolution.reason:
            import logging

            logging.getLogger("mlgate.cli").warning("%s: %s", target, resolution.reason)
        return scan_target(
            resolution.path, policy, label=target, resolver=registry, compute_digest=compute_digest, pool=pool
        )
    finally:
        resolution.release()


def _scan_s3(target: str, policy: Policy, registry: Resolver) -> TargetReport:
    from mlgate.analyzers.core.references import RefKind

    from ..resolver import ResolverRegistry
    from ..s3.grouping import S3Model
    from ..s3.reader import ReadSession
    from ..s3.scan import scan_model

    source = registry.sources.get(RefKind.S3) if isinstance(registry, ResolverRegistry) else None
    if source is None or not hasattr(source, "locate"):
        raise TargetError(f"{target}: no S3 resolver is configured")
    found = source.locate(target)
    if isinstance(found, str):
        raise TargetError(f"{target}: {found}")
    bucket, prefix, objects = found
    root = prefix or objects[0].key
    scanned = scan_model(source.client(), S3Model(bucket, root, tuple(objects)), policy, registry, ReadSession())
    if scanned.session.errors:
        first = scanned.session.errors[0]
        raise TargetError(f"{target}: S3 read failed: {first}")
    report = scanned.report
    report.target = target
    return report
