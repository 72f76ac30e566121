"""An MLflow version's artifacts opened where they live, for a scan in place (no local copy).

``open_store`` maps the artifact repository MLflow resolves for a version's
download URI onto readers the analyzers use like local files:

* local and mounted file stores (``LocalArtifactRepository``): the files are
  opened in place, read-only;
* S3-compatible stores (``S3ArtifactRepository``): each object is an
  ``S3Object`` of the S3 source (``controller/s3/reader.py``): ranged GETs in
  16 KiB blocks, a byte-bounded block cache shared by the version's objects,
  reads pinned to the version (or ETag) the ``HEAD`` returned;
* the ``mlflow-artifacts:`` proxy (``HttpArtifactRepository``): the same
  block reader over HTTP ``Range`` requests against the server's artifact
  endpoint; when the server ignores ``Range`` (a 200 answer) the block is cut
  out of the streamed body instead (costlier, still never stored).

Unknown repository types return ``None``: the caller downloads as before.

Content hashes for the digest manifest (sha256 hex per file, the same value a
download would give, so verdicts stay comparable across the two paths):
the ``ChecksumSHA256`` the S3 store reports for an object uploaded in one part
(S3 verifies it on upload; a multipart upload's SHA-256 is composite, over its parts),
unless the caller asks for its own hash (``trust_checksums=False``: the
``mlflow.store_checksums: recompute`` setting, for stores that do not verify what they report);
otherwise sha256 computed in one pass over the file's bytes, never written
anywhere: local files read from disk in ``PART``-byte reads; S3 objects and proxied artifacts up
to ``PARALLEL_MIN`` bytes in one streamed GET (pinned to the scanned version
or ETag), larger ones as ``PART``-byte ranged GETs fetched by ``WORKERS``
threads and hashed in order (``ranged_sha256``: memory at most
``(WORKERS + 1) * PART``; a proxy that ignores ``Range`` falls back to one
streamed GET). ``digest_bytes`` counts what hashing fetched. A remote file the
scan read whole (every block still in the session's cache: small files) is hashed
from those very bytes, with no second GET (``_cached_sha256``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import posixpath
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

from mlgate.analyzers.core.artifact import Artifact, SliceStream

from ..resolver.interface import Origin
from ..runtime.logging_json import fields
from ..s3.reader import ReadSession, S3Object, S3ReadError, _Cursor, classify

log = logging.getLogger("mlgate.mlflow")

_CHUNK = 1 << 20
_HTTP_RETRIES = 2
PART = 8 << 20  # one ranged GET of the digest pass
WORKERS = 4  # ranged GETs in flight per file
PARALLEL_MIN = 2 * PART  # smaller files: one streamed GET
_PART_ATTEMPTS = 3
SMALL_FILE = 16 << 20  # a signature file read whole


class RangesIgnored(Exception):
    """The server answered a ranged GET with the whole body: ranges cannot be fetched in parallel."""


def ranged_sha256(
    size: int,
    fetch: Callable[[int, int], bytes],
    count: Callable[[int], None],
    part: int | None = None,
    workers: int | None = None,
) -> str:
    """sha256 of ``size`` bytes fetched as consecutive ``part``-byte ranges (``fetch(start, length)``)
    by ``workers`` threads and hashed in order; at most ``workers + 1`` parts are held at once.
    A failed fetch cancels the parts not yet started and is raised."""
    part, workers = part or PART, workers or WORKERS
    h = hashlib.sha256()
    offsets = iter(range(0, size, part))
    pending: deque[Future[bytes]] = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="mlgate-digest") as pool:

        def submit() -> None:
            start = next(offsets, None)
            if start is not None:
                pending.append(pool.submit(fetch, start, min(part, size - start)))

        try:
            for _ in range(workers):
                submit()
            while pending:
                data = pending.popleft().result()
                submit()
                h.update(data)  # hashlib releases the GIL: the next parts keep arriving meanwhile
                count(len(data))
        finally:
            for future in pending:
                future.cancel()
    return h.hexdigest()


@dataclass
class Store:
    """The artifacts of one version, opened in place, and how their content hashes are computed."""

    kind: str  # local | s3 | http
    artifacts: list[Artifact]
    session: ReadSession
    root: Path | None = None  # local stores: the folder, for resolving relative references
    _hashers: dict[str, Callable[[], str]] = field(default_factory=dict)
    digest_bytes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _hashes: dict[str, str] = field(default_factory=dict)  # computed content hashes, reused by signatures

    def content_hash(self, artifact: Artifact) -> str:
        """sha256 hex of the artifact's bytes (store checksum or one pass over the bytes), computed once."""
        known = self._hashes.get(artifact.location)
        if known is None:
            known = self._hashes[artifact.location] = self._hashers[artifact.location]()
        return known

    def read_small(self, location: str, limit: int = SMALL_FILE) -> bytes | None:
        """The bytes of the artifact at ``location`` (a signature file), None when the version has none;
        at most ``limit + 1`` bytes (a larger file is no signature bundle, and fails to parse as one)."""
        artifact = next((a for a in self.artifacts if a.location == location), None)
        if artifact is None:
            return None
        with artifact.open() as stream:
            return bytes(stream.read(limit + 1))

    def origin(self) -> Origin:
        if self.root is not None:
            return Origin.for_path(self.root)
        return Origin(members=frozenset(a.location for a in self.artifacts))

    def bytes_read(self, scanned: int) -> int:
        """Bytes fetched from the store by the scan (local stores: what the analyzers read)."""
        return scanned if self.kind == "local" else self.session.bytes_fetched

    def _count(self, n: int) -> None:
        with self._lock:
            self.digest_bytes += n


def open_store(
    repo: Any, files: list[tuple[str, int]], session: ReadSession | None = None, trust_checksums: bool = True
) -> Store | None:
    """``repo``'s ``files`` (relative path, listed size) as in-place artifacts, or ``None`` when
    the repository type has no in-place reader (the caller downloads). ``trust_checksums=False``: an S3
    object's sha256 is always computed from its bytes, never taken from the checksum the store reports."""
    from mlflow.store.artifact.http_artifact_repo import HttpArtifactRepository
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository
    from mlflow.store.artifact.s3_artifact_repo import S3ArtifactRepository

    session = session or ReadSession()
    while getattr(repo, "repo", None) is not None:  # models:/ and runs:/ wrap the real store
        repo = repo.repo
    if isinstance(repo, LocalArtifactRepository):
        return _local(Path(repo.artifact_dir), files, session)
    if isinstance(repo, S3ArtifactRepository):
        return _s3(repo, files, session, trust_checksums)
    if isinstance(repo, HttpArtifactRepository):
        return _http(repo, files, session)
    return None


def _local(root: Path, files: list[tuple[str, int]], session: ReadSession) -> Store:
    store = Store("local", [], session, root=root)
    real_root = root.resolve()
    for rel, _ in files:
        path = root / rel
        if not path.resolve().is_relative_to(real_root):
            raise OSError(f"artifact {rel} resolves outside the artifact folder")
        store.artifacts.append(Artifact.from_file(str(path), rel))

        def digest(p: Path = path) -> str:
            store._count(p.stat().st_size)
            return _file_sha256(p)

        store._hashers[rel] = digest
    return store


def _file_sha256(path: Path) -> str:
    """sha256 of a local file in ``PART``-byte reads: few GIL hand-offs, so other threads of the
    controller (workers, the HTTP server) cannot slow the hashing loop down to their switch interval."""
    h = hashlib.sha256()
    buf = bytearray(PART)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def _s3(repo: Any, files: list[tuple[str, int]], session: ReadSession, trust_checksums: bool = True) -> Store:
    bucket, prefix = repo.parse_s3_compliant_uri(repo.artifact_uri)
    client = repo._get_s3_client()
    store = Store("s3", [], session)
    for rel, _ in files:
        key = posixpath.join(prefix, rel) if prefix else rel
        head = client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        version = head.get("VersionId")
        obj = S3Object(
            client,
            bucket,
            key,
            int(head["ContentLength"]),
            str(head.get("ETag", "")),
            session,
            version_id=version if version and version != "null" else None,
        )
        store.artifacts.append(Artifact(location=rel, name=rel, opener=obj.open, size=obj.size))
        if trust_checksums:
            store._hashers[rel] = lambda o=obj, h=head: _cached_sha256(o) or _s3_sha256(store, o, h)
        else:
            store._hashers[rel] = lambda o=obj, h=head: _recomputed_sha256(store, o, h)
    return store


def _cached_sha256(obj: S3Object) -> str | None:
    """sha256 of ``obj`` from the blocks the scan fetched (pinned to one ETag or version), when every
    block is still cached and they add up to its size; None otherwise (the caller fetches)."""
    session, h, total = obj.session, hashlib.sha256(), 0
    if obj.size <= 0 or obj.size > session.cache_bytes:
        return None
    for block in range(-(-obj.size // session.block_size)):
        data = session.cached(obj._id, block)
        if data is None:
            return None
        h.update(data)
        total += len(data)
    return h.hexdigest() if total == obj.size else None


def _store_checksum(head: dict[str, Any]) -> str | None:
    """The object's sha256 (hex) as the store reports it: a single-part, full-object ``ChecksumSHA256``."""
    checksum = head.get("ChecksumSHA256")
    single_part = "-" not in str(head.get("ETag", "")) and not head.get("PartsCount")
    if (
        checksum
        and single_part  # a multipart upload's SHA-256 is over its parts' checksums (S3 has no full-object SHA-256)
        and head.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT"
        and "-" not in str(checksum)
    ):
        try:
            return base64.b64decode(checksum).hex()
        except (binascii.Error, ValueError):
            return None
    return None


def _recomputed_sha256(store: Store, obj: S3Object, head: dict[str, Any]) -> str:
    """mlgate's own sha256 of ``obj`` whatever the store reports; a reported checksum that differs is logged
    (the store's metadata does not describe its content: corruption, or a writer who set it)."""
    own = _cached_sha256(obj) or _s3_sha256(store, obj, {})
    reported = _store_checksum(head)
    if reported is not None and reported != own:
        log.warning(
            "store checksum differs from the content",
            extra=fields(target=obj.uri, reason=f"the store reports sha256 {reported}, the content's is {own}"),
        )
    return own


def _s3_sha256(store: Store, obj: S3Object, head: dict[str, Any]) -> str:
    trusted = _store_checksum(head)
    if trusted is not None:
        return trusted
    params = _pinned(obj)
    if obj.size >= PARALLEL_MIN and WORKERS > 1:
        return ranged_sha256(obj.size, lambda start, length: _s3_part(obj, params, start, length), store._count)
    try:
        with _own_hash(obj.client):
            body = obj.client.get_object(**params)["Body"]
        h = hashlib.sha256()
        for chunk in body.iter_chunks(_CHUNK):
            h.update(chunk)
            store._count(len(chunk))
    except Exception as exc:  # noqa: BLE001 - any failure to hash is a failed scan, retried later
        raise S3ReadError(f"{obj.uri}: hashing failed: {type(exc).__name__}: {exc}", "transient") from None
    return h.hexdigest()


_hashing = threading.local()


@contextmanager
def _own_hash(client: Any) -> Iterator[None]:
    """GETs made inside are for mlgate's own sha256: botocore does not check them against the checksum the store
    reports (it would refuse, with ``FlexibleChecksumError``, exactly the objects whose reported checksum is not
    their content's, which ``store_checksums: recompute`` exists to hash). Other GETs of the client (the
    scan's, MLflow's downloads) keep their validation."""
    client.meta.events.register("before-call.s3.GetObject", _skip_validation, unique_id="mlgate-own-sha256")
    _hashing.active = True
    try:
        yield
    finally:
        _hashing.active = False


def _skip_validation(context: dict[str, Any], **_: Any) -> None:
    if getattr(_hashing, "active", False):
        context.get("checksum", {}).pop("response_algorithms", None)


def _pinned(obj: S3Object) -> dict[str, Any]:
    """GET parameters naming the object as the scan saw it (its version, else its ETag)."""
    params: dict[str, Any] = {"Bucket": obj.bucket, "Key": obj.key}
    if obj.version_id:
        params["VersionId"] = obj.version_id
    elif obj.etag:
        params["IfMatch"] = f'"{obj.etag}"'
    return params


def _s3_part(obj: S3Object, params: dict[str, Any], start: int, length: int) -> bytes:
    """One range of the digest pass (not counted as scan bytes; retried when the body is cut)."""
    from botocore.exceptions import BotoCoreError, ClientError

    problem = ""
    for _ in range(_PART_ATTEMPTS):
        try:
            with _own_hash(obj.client):
                resp = obj.client.get_object(**params, Range=f"bytes={start}-{start + length - 1}")
            data = resp["Body"].read()
        except ClientError as exc:
            raise S3ReadError(f"{obj.uri}: hashing failed: {exc}", classify(exc)) from None
        except BotoCoreError as exc:
            problem = f"{type(exc).__name__}: {exc}"
            continue
        if len(data) == length:
            return data
        problem = f"expected {length} bytes at {start}, got {len(data)}"
    raise S3ReadError(f"{obj.uri}: hashing failed: {problem}", "transient")


class HttpObject(S3Object):
    """One artifact behind the ``mlflow-artifacts:`` proxy, read with HTTP ``Range`` requests."""

    def __init__(self, creds: Any, endpoint: str, size: int, session: ReadSession) -> None:
        self.creds = creds
        self.endpoint = endpoint
        self.size = size
        self.session = session
        self.etag = ""
        self.version_id = None
        self.ranges_ignored = False
        self._id = id(self)

    @property
    def uri(self) -> str:
        return f"{self.creds.host}{self.endpoint}"

    def open(self) -> BinaryIO:
        return SliceStream(cast(BinaryIO, _Cursor(self)), 0, self.size)  # type: ignore[return-value]

    def _request(self, headers: dict[str, str] | None = None) -> Any:
        from mlflow.utils.rest_utils import http_request

        try:
            resp = http_request(
                self.creds, self.endpoint, "GET", stream=True, extra_headers=headers, max_retries=_HTTP_RETRIES
            )
        except Exception as exc:  # noqa: BLE001 - connection failures of any kind
            raise self.session.failed(S3ReadError(f"{self.uri}: {type(exc).__name__}: {exc}", "transient")) from None
        if resp.status_code in (404, 410, 412, 416):
            raise self.session.failed(S3ReadError(f"{self.uri}: HTTP {resp.status_code}", "changed"))
        if resp.status_code in (401, 403):
            raise self.session.failed(S3ReadError(f"{self.uri}: HTTP {resp.status_code}", "denied"))
        if resp.status_code not in (200, 206):
            raise self.session.failed(S3ReadError(f"{self.uri}: HTTP {resp.status_code}", "transient"))
        etag = str(resp.headers.get("ETag", ""))
        if etag and not self.etag:
            self.etag = etag
        elif etag and etag != self.etag:
            raise self.session.failed(S3ReadError(f"{self.uri}: replaced during the scan", "changed"))
        return resp

    def _get_range(self, start: int, length: int) -> bytes:
        resp = self._request({"Range": f"bytes={start}-{start + length - 1}"})
        try:
            if resp.status_code == 206:
                data = resp.raw.read(length + 1, decode_content=True)
                self.session.counted(len(data))
            else:  # Range ignored: cut the block out of the streamed body
                self.ranges_ignored = True
                data = self._cut(resp, start, length)
        finally:
            resp.close()
        if len(data) != length:
            raise self.session.failed(S3ReadError(f"{self.uri}: expected {length} bytes, got {len(data)}", "changed"))
        return data

    def _cut(self, resp: Any, start: int, length: int) -> bytes:
        pos, out = 0, bytearray()
        fetched = 0
        for chunk in resp.iter_content(_CHUNK):
            fetched += len(chunk)
            end = pos + len(chunk)
            if end > start:
                out += chunk[max(0, start - pos) : start + length - pos]
            pos = end
            if len(out) >= length:
                break
        self.session.counted(fetched)
        return bytes(out[:length])

    def sha256(self, count: Callable[[int], None]) -> str:
        """sha256 of the artifact: parallel ranged GETs for large ones, else (or when the server
        ignores ``Range``) one streamed GET."""
        if self.size >= PARALLEL_MIN and WORKERS > 1 and not self.ranges_ignored:
            try:
                return ranged_sha256(self.size, self._part, count)
            except RangesIgnored:
                self.ranges_ignored = True
        return self._streamed_sha256(count)

    def _part(self, start: int, length: int) -> bytes:
        resp = self._request({"Range": f"bytes={start}-{start + length - 1}"})
        try:
            if resp.status_code != 206:
                raise RangesIgnored()
            try:
                data = resp.raw.read(length + 1, decode_content=True)
            except Exception as exc:  # noqa: BLE001 - a cut stream is a failed scan, retried later
                raise self.session.failed(S3ReadError(f"{self.uri}: hashing failed: {exc}", "transient")) from None
        finally:
            resp.close()
        if len(data) != length:
            raise self.session.failed(S3ReadError(f"{self.uri}: expected {length} bytes, got {len(data)}", "changed"))
        return data

    def _streamed_sha256(self, count: Callable[[int], None]) -> str:
        resp = self._request()
        h = hashlib.sha256()
        try:
            for chunk in resp.iter_content(_CHUNK):
                h.update(chunk)
                count(len(chunk))
        except Exception as exc:  # noqa: BLE001 - a cut stream is a failed scan, retried later
            raise self.session.failed(S3ReadError(f"{self.uri}: hashing failed: {exc}", "transient")) from None
        finally:
            resp.close()
        return h.hexdigest()


def _http(repo: Any, files: list[tuple[str, int]], session: ReadSession) -> Store:
    creds = repo._host_creds
    store = Store("http", [], session)
    for rel, size in files:
        obj = HttpObject(creds, posixpath.join("/", rel), size, session)
        store.artifacts.append(Artifact(location=rel, name=rel, opener=obj.open, size=size))
        store._hashers[rel] = lambda o=obj: _cached_sha256(o) or o.sha256(store._count)
    return store
