"""Content digests: ``sha256`` over the sorted manifest of artifact paths and content hashes.

The same manifest function serves local files (hashed here), MLflow artifacts
and S3 objects (whose sources supply their own content hashes), so one model
has one digest wherever it is scanned from.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable

_CHUNK = 1 << 20


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def manifest_digest(entries: Iterable[tuple[str, str]]) -> str:
    """``sha256:<hex>`` over lines ``<path>\\t<content hash>\\n`` sorted by path."""
    h = hashlib.sha256()
    for path, content_hash in sorted(entries):
        h.update(f"{path}\t{content_hash}\n".encode())
    return f"sha256:{h.hexdigest()}"
