"""Artifact-listing fingerprints: a verdict bound to the artifacts as they are now, checked without a download.

At scan time the controller lists a version's artifacts (before reading them) and records
``mlgate.listing`` = ``<fingerprint>;<hmac>``. The fingerprint is ``v1:<mode>:<sha256>`` over
the sorted (path, size, stamp) entries, where the stamp is what the store changes on every
write: ``s3`` the ETag and LastModified of each object, ``file`` the mtime and ctime in
nanoseconds, ``proxy`` (artifacts listed through MLflow's ``mlflow-artifacts`` proxy, which
shows no stamps) nothing beyond the size. The HMAC is the verdict HMAC in its own domain
(verdict field ``listing``, never approved/quarantined) over name, version and
``<digest>|<fingerprint>``, so the listing tag cannot be moved to another version or verdict,
and the existing verdict signature message stays as it was.

The MLflow server plugin, ``mlgate check`` and the controller's reconcile passes list the
artifacts again in the recorded mode and compare; any difference means the verdict no longer
describes the content (see ``verdicts/gate.py``). The full-content digest
(``--verify-digest``, ``verify_digests_seconds``) stays the exhaustive check: a writer who can
reset an object's stamps (a local file's mtime and ctime cannot be set back without root) and
keep its size is only caught there.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

from .signing import sign_verdict, verify_verdict

FORMAT = "v1"
MODES = ("s3", "file", "proxy")
_DOMAIN = "listing"


@dataclass(frozen=True)
class ListingEntry:
    """One artifact file as its store lists it."""

    path: str  # relative to the version's artifact root, '/'-separated
    size: int
    stamp: str = ""  # ETag + LastModified (s3), mtime_ns + ctime_ns (file), "" (proxy)


def fingerprint(mode: str, entries: Iterable[ListingEntry]) -> str:
    """``v1:<mode>:<sha256 hex>`` over the sorted entries (paths are unique within a listing)."""
    if mode not in MODES:
        raise ValueError(f"unknown listing mode {mode!r}")
    h = hashlib.sha256()
    for entry in sorted(entries, key=lambda e: e.path):
        h.update(json.dumps([entry.path, entry.size, entry.stamp], ensure_ascii=True).encode() + b"\n")
    return f"{FORMAT}:{mode}:{h.hexdigest()}"


def listing_mode(value: str) -> str | None:
    """The mode of a fingerprint (``s3``, ``file``, ``proxy``), None when it is not one of ours."""
    parts = value.split(":")
    if len(parts) == 3 and parts[0] == FORMAT and parts[1] in MODES:
        return parts[1]
    return None


def encode_listing(key: bytes, name: str, version: str, digest: str, value: str) -> str:
    """The ``mlgate.listing`` tag value: the fingerprint and its signature."""
    return f"{value};{sign_verdict(key, name, str(version), f'{digest}|{value}', _DOMAIN)}"


def decode_listing(key: bytes, name: str, version: str, digest: str, tag: str | None) -> str | None:
    """The recorded fingerprint when ``tag`` is validly signed for this version and digest, else None."""
    if not tag or ";" not in tag:
        return None
    value, signature = tag.rsplit(";", 1)
    if listing_mode(value) is None:
        return None
    if not verify_verdict(key, name, str(version), f"{digest}|{value}", _DOMAIN, signature):
        return None
    return value
