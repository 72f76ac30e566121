"""Ranged reads of S3 objects: a seekable stream over GETs, with a small block cache.

Analyzers read an object through ``S3Object.open()`` (a core ``SliceStream``
over the object's ranged reads) exactly like a local file.
Only the byte ranges they touch are fetched (the zip central directory, a
safetensors header, the sniffed head of each member), in blocks of
``block_size`` (16 KiB: a checkpoint of 300 tensors costs 300 small GETs for
the member heads, not 300 large ones); a reader that keeps reading
sequentially doubles its fetch size up to ``max_fetch``, so formats that need
the whole stream cost few requests.
Every object of one model shares one ``ReadSession``: a byte-bounded LRU of
blocks and the count of bytes actually fetched (``mlgate_scanned_bytes_total``).

The first response pins the object: later GETs name its version (or carry
``If-Match: <etag>`` in unversioned buckets), so a scan never mixes two
contents of one key. Transport failures surface as ``S3ReadError`` (an
``OSError``, which the walker turns into an incomplete finding) and are also
recorded on the session, so the caller can tell "S3 failed" from "the content
is bad" and never record a verdict for a scan S3 cut short.
"""

from __future__ import annotations

import io
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

from botocore.exceptions import BotoCoreError, ClientError

from mlgate.analyzers.core.artifact import SliceStream

from .errors import describe, error_code, http_status

BLOCK_SIZE = 16 << 10  # a cold read costs one block: a member's sniffed head, a header, a directory tail
MAX_FETCH = 8 << 20
CACHE_BYTES = 8 << 20
_BODY_ATTEMPTS = 3  # botocore retries requests; a body cut mid-stream is retried here

_VANISHED = frozenset({"NoSuchKey", "NoSuchVersion", "404", "PreconditionFailed", "412", "InvalidRange"})
_DENIED = frozenset({"AccessDenied", "403", "Forbidden", "AllAccessDisabled", "InvalidObjectState"})


class S3ReadError(OSError):
    """A GET failed. ``kind`` is ``transient`` (retry later), ``changed`` (the object vanished or was
    replaced during the scan) or ``denied`` (credentials or policy refuse it)."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


def classify(exc: BaseException) -> str:
    """``transient``, ``changed`` or ``denied`` for a botocore failure."""
    if isinstance(exc, ClientError):
        code, status = error_code(exc), str(http_status(exc) or "")
        if code in _VANISHED or status in ("404", "412", "416"):
            return "changed"
        if code in _DENIED or status == "403":
            return "denied"
    return "transient"


@dataclass
class ReadSession:
    """Shared by the objects of one model scan: block cache, fetched-byte count, S3 failures."""

    block_size: int = BLOCK_SIZE
    max_fetch: int = MAX_FETCH
    cache_bytes: int = CACHE_BYTES
    bytes_fetched: int = 0
    requests: int = 0
    errors: list[S3ReadError] = field(default_factory=list)
    _cache: OrderedDict[tuple[int, int], bytes] = field(default_factory=OrderedDict)
    _cached: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def cached(self, obj: int, block: int) -> bytes | None:
        with self._lock:
            data = self._cache.get((obj, block))
            if data is not None:
                self._cache.move_to_end((obj, block))
            return data

    def remember(self, obj: int, block: int, data: bytes) -> None:
        with self._lock:
            old = self._cache.pop((obj, block), None)
            if old is not None:
                self._cached -= len(old)
            self._cache[(obj, block)] = data
            self._cached += len(data)
            while self._cached > self.cache_bytes and len(self._cache) > 1:
                _, evicted = self._cache.popitem(last=False)
                self._cached -= len(evicted)

    def counted(self, n: int) -> None:
        with self._lock:
            self.bytes_fetched += n
            self.requests += 1

    def failed(self, error: S3ReadError) -> S3ReadError:
        with self._lock:
            self.errors.append(error)
        return error


class S3Object:
    """One object under scan: identity (etag, then version) and ranged fetches through the session."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        key: str,
        size: int,
        etag: str,
        session: ReadSession,
        version_id: str | None = None,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.size = size
        self.etag = etag.strip('"')
        self.version_id = version_id
        self.session = session
        self._id = id(self)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def open(self) -> BinaryIO:
        """A fresh seekable reader at offset 0 (analyzers open an artifact several times; blocks are shared)."""
        return SliceStream(cast(BinaryIO, _Cursor(self)), 0, self.size)  # type: ignore[return-value]

    def read_at(self, pos: int, n: int, span: int) -> bytes:
        """Up to ``n`` bytes at ``pos`` (fewer only at the end); misses fetch at least ``span`` bytes."""
        bs = self.session.block_size
        end = min(pos + n, self.size)
        out = bytearray()
        while pos < end:
            block = pos // bs
            data = self.session.cached(self._id, block)
            if data is None:
                want = max(span, end - block * bs)
                data = self._fetch_blocks(block, want)
            offset = pos - block * bs
            take = data[offset : offset + (end - pos)]
            if not take:
                raise self.session.failed(S3ReadError(f"{self.uri}: short read at offset {pos}", "changed"))
            out += take
            pos += len(take)
        return bytes(out)

    def _fetch_blocks(self, first: int, want: int) -> bytes:
        """Fetch whole blocks from ``first`` covering ``want`` bytes (capped); cache them; return the first."""
        bs = self.session.block_size
        start = first * bs
        length = min(max(want, bs), self.session.max_fetch, self.size - start)
        length = min(-(-length // bs) * bs, self.size - start)  # round up to whole blocks
        data = self._get_range(start, length)
        for i in range(0, len(data), bs):
            self.session.remember(self._id, first + i // bs, data[i : i + bs])
        return data[:bs]

    def _get_range(self, start: int, length: int) -> bytes:
        params: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self.key,
            "Range": f"bytes={start}-{start + length - 1}",
        }
        if self.version_id:
            params["VersionId"] = self.version_id
        else:
            params["IfMatch"] = f'"{self.etag}"'
        last: BaseException | None = None
        for attempt in range(_BODY_ATTEMPTS):
            try:
                response = self.client.get_object(**params)
                data = response["Body"].read()
            except ClientError as exc:
                raise self._error(exc) from None
            except BotoCoreError as exc:  # body cut mid-stream, connection reset: retry the range
                last = exc
                time.sleep(0.2 * (attempt + 1))
                continue
            self.session.counted(len(data))
            if len(data) != length:
                last = OSError(f"expected {length} bytes, got {len(data)}")
                continue
            got = str(response.get("ETag", "")).strip('"')
            if got and got != self.etag:
                raise self.session.failed(S3ReadError(f"{self.uri}: replaced during the scan", "changed"))
            version = response.get("VersionId")
            if version and version != "null" and not self.version_id:
                self.version_id = version
            return data
        raise self.session.failed(S3ReadError(f"{self.uri}: read failed: {describe(last)}", "transient"))  # type: ignore[arg-type]

    def _error(self, exc: ClientError) -> S3ReadError:
        return self.session.failed(S3ReadError(f"{self.uri}: {describe(exc)}", classify(exc)))


class _Cursor:
    """The positioned reads ``SliceStream`` needs (absolute seek, readinto), with sequential read-ahead."""

    def __init__(self, obj: S3Object) -> None:
        self._obj = obj
        self._pos = 0
        self._span = obj.session.block_size
        self._last_end = -1

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._pos = offset  # SliceStream only seeks to absolute offsets
        return offset

    def readinto(self, buffer: bytearray | memoryview) -> int:
        n = min(len(buffer), self._obj.size - self._pos)
        if n <= 0:
            return 0
        if self._pos == self._last_end:  # sequential: read ahead more each time
            self._span = min(self._span * 2, self._obj.session.max_fetch)
        else:
            self._span = self._obj.session.block_size
        data = self._obj.read_at(self._pos, n, self._span)
        memoryview(buffer)[: len(data)] = data
        self._pos += len(data)
        self._last_end = self._pos
        return len(data)
