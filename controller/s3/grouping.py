"""Which S3 objects make one model: paginated listing and the grouping rule.

The rule (docs/s3.md, "Model grouping"): a *model directory* is a key prefix
ending in ``/`` that directly holds a marker file (``MLmodel``,
``config.json``, ``saved_model.pb``... ``BucketConfig.model_markers``). Each
object belongs to the **outermost** model directory above it, because loaders
load everything below that directory (an MLflow model that bundles a Hugging
Face folder is one model, not two). An object under no model directory is a
model on its own. Folder placeholders (keys ending in ``/``) and the
controller's own prefixes (claims, in-bucket quarantine) are never models.

The listing (reconcile) and a single key's lookup (events) apply the same rule,
so both name the same model: ``(bucket, root)`` where ``root`` is the model
directory or the single object's key.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from mlgate.analyzers.core.digest import manifest_digest

from ..config.buckets import BucketConfig

FOLDER_PAGE = 1000
"""Entries of one folder listing when looking for markers; a bigger folder is probed by marker name."""


@dataclass(frozen=True)
class S3ObjectRef:
    """One listed object (its current version)."""

    key: str
    size: int
    etag: str  # without quotes
    last_modified: dt.datetime | None = None


@dataclass(frozen=True)
class S3Model:
    """The objects of one model. ``root`` ends in ``/`` for a model directory, else it is the object's key."""

    bucket: str
    root: str
    objects: tuple[S3ObjectRef, ...]

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.root}"

    @property
    def is_directory(self) -> bool:
        return self.root.endswith("/") or self.root == ""

    def name_of(self, obj: S3ObjectRef) -> str:
        """The object's path inside the model: relative to the directory, or the single object's file name."""
        if self.is_directory:
            return obj.key[len(self.root) :]
        return PurePosixPath(obj.key).name or obj.key

    def digest(self) -> str:
        """docs/contracts.md §3 ``mlgate.digest``: sha256 over the manifest of relative paths and ETags."""
        return manifest_digest((self.name_of(o), o.etag) for o in self.objects)

    def fingerprint(self) -> tuple[tuple[str, str, str], ...]:
        """What the listing says about the model; a change (even a same-bytes re-upload) means "look again"."""
        return tuple((o.key, o.etag, o.last_modified.isoformat() if o.last_modified else "") for o in self.objects)


def list_objects(client: Any, bucket: str, prefix: str, page_size: int = 1000) -> Iterator[S3ObjectRef]:
    """Every object under ``prefix``, page by page (ListObjectsV2: at most 1000 keys a page)."""
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": page_size}):
        for item in page.get("Contents", ()):
            yield S3ObjectRef(
                key=item["Key"],
                size=int(item.get("Size", 0)),
                etag=str(item.get("ETag", "")).strip('"'),
                last_modified=item.get("LastModified"),
            )


def group_models(cfg: BucketConfig, objects: Iterable[S3ObjectRef]) -> list[S3Model]:
    """Group listed objects into models by the marker rule (objects outside ``cfg``'s prefixes are dropped)."""
    kept = [o for o in objects if _is_content(cfg, o.key)]
    markers = set(cfg.model_markers)
    roots = {_parent(o.key) for o in kept if PurePosixPath(o.key).name in markers}
    roots = {r for r in roots if cfg.watches(r) is not None}  # a marker above the watched prefix does not count
    members: dict[str, list[S3ObjectRef]] = {}
    singles: list[S3Model] = []
    for obj in sorted(kept, key=lambda o: o.key):
        root = next((d for d in _ancestors(obj.key, "") if d in roots), None)  # outermost first
        if root is None:
            singles.append(S3Model(cfg.bucket, obj.key, (obj,)))
        else:
            members.setdefault(root, []).append(obj)
    dirs = [S3Model(cfg.bucket, r, tuple(objs)) for r, objs in members.items()]
    return sorted(dirs + singles, key=lambda m: m.root)


def discover(client: Any, cfg: BucketConfig) -> Iterator[S3Model]:
    """Every model under the bucket's watched prefixes (the authoritative listing)."""
    for prefix in cfg.prefixes:
        yield from group_models(cfg, list_objects(client, cfg.bucket, prefix))


def resolve(client: Any, cfg: BucketConfig, key: str) -> S3Model | None:
    """The model that ``key`` (an object key, or a model directory ending in ``/``) belongs to now.

    Walks the key's parent directories from the outermost watched one inwards and
    stops at the first that holds a marker; else the key alone is the model.
    ``None`` when the key is outside the watched prefixes, reserved, or gone.
    """
    prefix = cfg.watches(key)
    if prefix is None:
        return None
    for directory in _ancestors(key, prefix):
        if _holds_marker(client, cfg, directory):
            return _single_group(cfg, list_objects(client, cfg.bucket, directory), directory)
    if key.endswith("/"):
        return None  # a directory that no longer holds a marker is not a model
    first = next(iter(list_objects(client, cfg.bucket, key, page_size=1)), None)  # the key sorts first
    if first is None or first.key != key or not _is_content(cfg, key):
        return None
    return S3Model(cfg.bucket, key, (first,))


def _single_group(cfg: BucketConfig, objects: Iterable[S3ObjectRef], root: str) -> S3Model | None:
    kept = tuple(sorted((o for o in objects if _is_content(cfg, o.key)), key=lambda o: o.key))
    return S3Model(cfg.bucket, root, kept) if kept else None


def _holds_marker(client: Any, cfg: BucketConfig, directory: str) -> bool:
    """True when ``directory`` directly holds one of the marker files.

    One delimiter listing for an ordinary folder; a folder with more than a page of entries
    (a flat bucket) is asked for each marker by name instead of being paged through.
    """
    markers = set(cfg.model_markers)
    page = client.list_objects_v2(Bucket=cfg.bucket, Prefix=directory, Delimiter="/", MaxKeys=FOLDER_PAGE)
    if any(item["Key"][len(directory) :] in markers for item in page.get("Contents", ())):
        return True
    if not page.get("IsTruncated"):
        return False
    for marker in cfg.model_markers:
        found = client.list_objects_v2(Bucket=cfg.bucket, Prefix=directory + marker, MaxKeys=1).get("Contents", ())
        if found and found[0]["Key"] == directory + marker:
            return True
    return False


def _ancestors(key: str, prefix: str) -> list[str]:
    """Directories above ``key`` (and ``key`` itself if it is one) that lie inside ``prefix``, outermost first."""
    parts = key.split("/")
    dirs = ["/".join(parts[:i]) + "/" for i in range(1, len(parts))]
    if prefix == "":
        dirs.insert(0, "")
    return [d for d in dirs if d.startswith(prefix)]


def _parent(key: str) -> str:
    head, sep, _ = key.rpartition("/")
    return head + sep


def _is_content(cfg: BucketConfig, key: str) -> bool:
    return not key.endswith("/") and cfg.watches(key) is not None
