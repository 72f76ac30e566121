"""Listing a model version's artifacts where they live, for the listing fingerprint (``verdicts/listing.py``).

Used by the controller (at scan time and on every reconcile pass), ``mlgate check`` and the
MLflow server plugin: one listing, never a download. Where the listing comes from:

* ``s3://`` (also an ``mlflow-artifacts:`` URI whose server destination is ``s3://``): ListObjectsV2
  through MLflow's own S3 client settings (``MLFLOW_S3_ENDPOINT_URL``, the AWS environment);
  stamp = ETag and LastModified;
* a local path or ``file://``: ``os.stat``; stamp = mtime and ctime in nanoseconds;
* anything else MLflow can list (the ``mlflow-artifacts`` proxy, ``http(s)``): MLflow's
  artifact repository ``list_artifacts``, path and size only (mode ``proxy``).

``destination`` maps ``mlflow-artifacts:/path`` to the physical store (the server's
``--artifacts-destination``; the plugin knows it, the controller only when configured with
``mlflow.artifacts_destination``). A fingerprint is always re-taken in the mode it was recorded in.
MLflow and boto3 are imported inside the functions (the plugin imports this module lazily too).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from ..verdicts.listing import ListingEntry, fingerprint


class ListingError(Exception):
    """The artifacts cannot be listed in the requested mode; one line for a person."""


def physical_uri(uri: str, destination: str | None) -> str:
    """``uri`` with an ``mlflow-artifacts:`` location mapped onto ``destination`` when one is known."""
    parsed = urlparse(uri)
    if parsed.scheme != "mlflow-artifacts" or not destination:
        return uri
    rel = posixpath.normpath(unquote(parsed.path).lstrip("/"))
    if rel.startswith("..") or rel.startswith("/"):
        raise ListingError(f"artifact location {uri!r} escapes the artifact destination")
    return destination.rstrip("/") + ("" if rel == "." else "/" + rel)


def best_mode(uri: str) -> str:
    """The strongest mode available for a physical location."""
    scheme = urlparse(uri).scheme
    if scheme == "s3":
        return "s3"
    if scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt"):
        return "file"
    return "proxy"


def take_fingerprint(
    uri: str,
    mode: str | None = None,
    destination: str | None = None,
    repo_factory: Callable[[str], Any] | None = None,
) -> str:
    """The listing fingerprint of the artifacts under ``uri`` (in ``mode``, or the best one available)."""
    physical = physical_uri(uri, destination)
    available = best_mode(physical)
    mode = mode or available
    if mode == "s3":
        if available != "s3":
            raise ListingError(f"verdict was bound to an S3 listing, but the artifacts are at {physical}")
        return fingerprint("s3", _s3_entries(physical))
    if mode == "file":
        if available != "file":
            raise ListingError(f"verdict was bound to a file-system listing, but the artifacts are at {physical}")
        return fingerprint("file", _file_entries(physical))
    if mode == "proxy":
        factory = repo_factory or _default_repo
        return fingerprint("proxy", _repo_entries(factory(physical)))
    raise ListingError(f"unknown listing mode {mode!r}")


def _default_repo(uri: str) -> Any:
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    return get_artifact_repository(uri)


def _local_root(uri: str) -> Path:
    parsed = urlparse(uri)
    return Path(unquote(parsed.path) if parsed.scheme == "file" else uri)


def _file_entries(uri: str) -> Iterator[ListingEntry]:
    root = _local_root(uri)
    if root.is_file():
        st = root.stat()
        yield ListingEntry(root.name, st.st_size, f"{st.st_mtime_ns}.{st.st_ctime_ns}")
        return
    if not root.is_dir():
        raise ListingError(f"artifact location {uri} does not exist")
    for dirpath, dirnames, filenames in os.walk(root, onerror=_raise):
        dirnames.sort()
        for filename in filenames:
            path = Path(dirpath) / filename
            st = path.lstat()
            yield ListingEntry(path.relative_to(root).as_posix(), st.st_size, f"{st.st_mtime_ns}.{st.st_ctime_ns}")


def _raise(exc: OSError) -> None:
    raise ListingError(f"cannot list {exc.filename}: {exc.strerror or exc}")


def _s3_entries(uri: str) -> Iterator[ListingEntry]:
    from mlflow.store.artifact.s3_artifact_repo import S3ArtifactRepository

    repo = S3ArtifactRepository(uri)
    bucket, prefix = repo.parse_s3_compliant_uri(uri)
    prefix = prefix.rstrip("/")
    try:
        client = repo._get_s3_client()  # MLflow's own endpoint, credential and signature settings
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=f"{prefix}/" if prefix else ""):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                rel = key[len(prefix) + 1 :] if prefix else key
                if not rel or rel.endswith("/"):
                    continue
                modified = obj.get("LastModified")
                stamp = f"{obj.get('ETag', '')}@{modified.isoformat() if modified is not None else ''}"
                yield ListingEntry(rel, int(obj.get("Size", 0)), stamp)
    except ListingError:
        raise
    except Exception as exc:  # noqa: BLE001 - botocore errors of any kind are one line for a person
        raise ListingError(f"cannot list s3://{bucket}/{prefix}: {type(exc).__name__}: {exc}") from None


def _repo_entries(repo: Any, path: str = "") -> Iterator[ListingEntry]:
    try:
        infos = list(repo.list_artifacts(path or None))
    except Exception as exc:  # noqa: BLE001 - any store error is one line for a person
        raise ListingError(f"cannot list artifacts: {type(exc).__name__}: {exc}") from None
    for info in infos:
        if info.is_dir:
            yield from _repo_entries(repo, info.path)
        else:
            yield ListingEntry(info.path, int(info.file_size or 0))
