"""Content digests: ``sha256`` over the sorted manifest of artifact paths and content hashes.

The same manifest function serves local files (hashed here), MLflow artifacts
and S3 objects (whose sources supply their own content hashes), so one model
has one digest wherever it is scanned from. Local files are hashed streaming
(``hashlib.file_digest``, or a 1 MiB ``readinto`` loop before Python 3.11) on a
thread pool: hashlib releases the GIL, so several files hash in parallel and
the hashing overlaps the (GIL-bound) analysis running meanwhile.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor

_CHUNK = 1 << 20
UNREADABLE = "unreadable"
"""Content hash recorded for a file that could not be read (the manifest still names it)."""


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, streamed."""
    with open(path, "rb", buffering=0) as fh:
        if hasattr(hashlib, "file_digest"):
            return hashlib.file_digest(fh, "sha256").hexdigest()
        h = hashlib.sha256()
        buf = bytearray(_CHUNK)
        view = memoryview(buf)
        while n := fh.readinto(buf):
            h.update(view[:n])
        return h.hexdigest()


def _hash_or_unreadable(path: str | os.PathLike[str]) -> str:
    try:
        return file_sha256(path)
    except OSError:
        return UNREADABLE


def hash_workers() -> int:
    """Threads used to hash files: one per core (hashing is CPU-bound C code), at most 8."""
    return max(1, min(8, os.cpu_count() or 1))


class FileHasher:
    """Hash local files in the background; ``result(key)`` waits for one file's hex sha256.

    Use as a context manager: leaving it cancels hashing not yet started (a scan that failed).
    """

    def __init__(self, files: Mapping[str, str | os.PathLike[str]], workers: int | None = None) -> None:
        self._pool = ThreadPoolExecutor(max_workers=min(workers or hash_workers(), max(1, len(files))))
        # Largest first, so one big file does not start last and hold up the end of the scan.
        order = sorted(files, key=lambda k: -_size(files[k]))
        self._futures: dict[str, Future[str]] = {k: self._pool.submit(_hash_or_unreadable, files[k]) for k in order}

    def result(self, key: str) -> str:
        return self._futures[key].result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> FileHasher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def files_manifest_digest(files: Mapping[str, str | os.PathLike[str]]) -> str:
    """``manifest_digest`` of local files keyed by their relative path, hashed in parallel."""
    with FileHasher(files) as hasher:
        return manifest_digest((key, hasher.result(key)) for key in files)


def _size(path: str | os.PathLike[str]) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def manifest_digest(entries: Iterable[tuple[str, str]]) -> str:
    """``sha256:<hex>`` over lines ``<path>\\t<content hash>\\n`` sorted by path."""
    h = hashlib.sha256()
    for path, content_hash in sorted(entries):
        h.update(f"{path}\t{content_hash}\n".encode())
    return f"sha256:{h.hexdigest()}"
