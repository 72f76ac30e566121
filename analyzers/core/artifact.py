"""Artifacts: named byte streams under scan, and the stream wrappers that read them.

An ``Artifact`` is a file on disk, a member of a container, or a decoded
payload. It is opened lazily and read in place: container members are streamed
or sliced from their parent, never extracted to disk.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable

from .records import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import BinaryIO

LEVEL_SEPARATOR = "!"
"""Separates container levels in a location: ``model.nemo!model_weights.ckpt!archive/data.pkl``."""

Opener = Callable[[], "BinaryIO"]
HeadReader = Callable[[int], bytes]
"""``read(n)``: up to ``n`` leading bytes of an artifact, the same bytes ``open()`` gives first."""


class Artifact:
    """One byte stream to scan, with where it sits inside the target."""

    def __init__(
        self,
        location: str,
        name: str,
        opener: Opener,
        size: int | None,
        depth: int = 0,
        parent: Artifact | None = None,
        container: str = "dir",
        head_reader: HeadReader | None = None,
    ) -> None:
        self.location = location  # full display path from the target root
        self.name = name  # path inside the immediate container (posix separators)
        self.size = size
        self.depth = depth  # container nesting depth
        self.parent = parent
        self.container = container  # what holds it: "dir", "zip", "tar", "gzip", "pickle", ...
        self._opener = opener
        self._head_reader = head_reader  # a cheaper way to the first bytes than a stream (archive members)
        self.kind: object = None  # the Kind the walker sniffed, set before analyzers run
        self.loaded_as: str | None = (
            None  # a file name (e.g. "elements.pkl") whose loader reads this member (set by containers
        )
        # that know, e.g. ".pkl" for an object array's elements); None: the member's own name decides

    def open(self) -> BinaryIO:
        """A fresh stream positioned at offset 0. Callers close it."""
        return self._opener()

    def read_head(self, n: int) -> bytes:
        """Up to ``n`` leading bytes (fewer only when the artifact is shorter), unmetered: the
        walker charges them. Containers that hold their bytes open pass a ``head_reader`` so the
        sniff of each member costs one read, not a stream of its own."""
        if self._head_reader is not None:
            return self._head_reader(n)
        with self._opener() as stream:
            return read_exact(stream, n)

    def child(self, name: str, opener: Opener, size: int | None, container: str) -> Artifact:
        """A member of this artifact (an archive member, a decompressed stream, a nested payload)."""
        return Artifact(
            location=f"{self.location}{LEVEL_SEPARATOR}{name}",
            name=name,
            opener=opener,
            size=size,
            depth=self.depth + 1,
            parent=self,
            container=container,
        )

    def at(self, offset: int) -> str:
        """This artifact's location with a byte offset: ``archive/data.pkl@118``."""
        return f"{self.location}@{offset}"

    def __repr__(self) -> str:
        return f"Artifact({self.location!r}, size={self.size})"

    @classmethod
    def from_file(cls, path: str, location: str) -> Artifact:
        """An artifact backed by a local file (opened read-only, binary)."""
        return cls(location=location, name=location, opener=lambda: open(path, "rb"), size=os.path.getsize(path))

    @classmethod
    def from_bytes(cls, data: bytes, location: str, name: str | None = None) -> Artifact:
        """An artifact backed by bytes already in memory (small decoded payloads, tests)."""
        return cls(location=location, name=name or location, opener=lambda: io.BytesIO(data), size=len(data))


class SliceStream(io.RawIOBase):
    """A seekable read-only window ``[start, start+length)`` over a seekable base stream.

    Used for stored (uncompressed) archive members, so a 4 GB tensor member costs
    nothing until someone reads it.
    """

    def __init__(self, base: BinaryIO, start: int, length: int) -> None:
        super().__init__()
        self._base = base
        self._start = start
        self._length = length
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._pos = seek_position(offset, whence, self._pos, lambda: self._length)
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        remaining = self._length - self._pos
        if remaining <= 0:
            return 0
        view = memoryview(buffer)[: min(len(buffer), remaining)]
        self._base.seek(self._start + self._pos)
        n = self._base.readinto(view)  # type: ignore[attr-defined]
        n = n or 0
        self._pos += n
        return n


class OwnedSlice(SliceStream):
    """A ``SliceStream`` that closes its base stream when closed (member openers own their base)."""

    def close(self) -> None:
        try:
            self._base.close()
        finally:
            super().close()


class SharedStream:
    """One open stream of a container, shared by the windows over its members while it is walked.

    Opening the container once per member (a file open, a ranged-read session) costs more than
    sniffing the member; windows seek before every read, so they can share one base stream. It is
    opened on first use; after ``close()`` (the container's walk is over) each window opens its own.
    """

    def __init__(self, artifact: Artifact) -> None:
        self._artifact = artifact
        self._stream: BinaryIO | None = None
        self._fd: int | None = None  # a local file's descriptor: positional reads, no seek
        self._closed = False

    def __enter__(self) -> SharedStream:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True
        self._fd = None
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()

    def window(self, start: int, length: int) -> BinaryIO:
        """``[start, start+length)`` of the container as a stream of its own (callers close it)."""
        base = self._base()
        if base is None:
            return OwnedSlice(self._artifact.open(), start, length)  # type: ignore[return-value]
        return SliceStream(base, start, length)  # type: ignore[return-value]

    def read_at(self, offset: int, n: int) -> bytes:
        """Up to ``n`` bytes at ``offset`` of the container (fewer at its end)."""
        base = self._base()
        if base is None:
            with self._artifact.open() as stream:
                stream.seek(offset)
                return read_exact(stream, n)
        if self._fd is not None:
            data = os.pread(self._fd, n, offset)  # one system call (a seek and a read otherwise)
            if len(data) == n or not data:
                return data
            return data + self.read_at(offset + len(data), n - len(data))  # a short read: ask for the rest
        base.seek(offset)
        return read_exact(base, n)

    def _base(self) -> BinaryIO | None:
        if self._stream is None and not self._closed:
            self._stream = stream = self._artifact.open()
            if isinstance(stream, (io.BufferedReader, io.FileIO)):  # a local file, read as it is on disk
                try:
                    self._fd = stream.fileno()
                except (OSError, ValueError):  # io.UnsupportedOperation: a buffer over something else
                    self._fd = None
        return self._stream


class MeteredStream(io.RawIOBase):
    """Charges every byte read to a callback (the target's byte budget) and checks the clock."""

    def __init__(self, raw: BinaryIO, charge: Callable[[int], None]) -> None:
        super().__init__()
        self._raw = raw
        self._charge = charge

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        try:
            return bool(self._raw.seekable())
        except (AttributeError, ValueError):
            return False

    def tell(self) -> int:
        return self._raw.tell()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def read(self, size: int | None = -1) -> bytes:
        """The raw stream's ``read``, charged: one call, not ``RawIOBase``'s buffer and copy."""
        data = self._raw.read(-1 if size is None else size)
        if data:
            self._charge(len(data))
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        readinto = getattr(self._raw, "readinto", None)
        if readinto is not None:
            n = readinto(buffer) or 0
        else:
            data = self._raw.read(len(buffer))
            n = len(data)
            memoryview(buffer)[:n] = data
        if n:
            self._charge(n)
        return n

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


def seek_position(offset: int, whence: int, current: int, end: Callable[[], int]) -> int:
    """The position ``seek(offset, whence)`` moves to, for streams that keep their own position
    (``end()`` is only called for ``SEEK_END``). Raises like ``io`` streams do."""
    if whence == io.SEEK_SET:
        pos = offset
    elif whence == io.SEEK_CUR:
        pos = current + offset
    elif whence == io.SEEK_END:
        pos = end() + offset
    else:
        raise ValueError(f"invalid whence {whence}")
    if pos < 0:
        raise OSError("negative seek position")
    return pos


def read_exact(stream: BinaryIO, n: int) -> bytes:
    """Read up to ``n`` bytes, looping over short reads; fewer only at end of stream."""
    chunks = []
    remaining = n
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
