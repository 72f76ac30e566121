"""The child process that reads HDF5 attributes with h5py, for ``hdf5_reader``.

libhdf5 is C code that can spin forever on crafted metadata; nothing in the
scanning process can interrupt it. So h5py runs here, in a child the parent
kills when its deadline passes. The child never sees a path or the network:
it reads the file's bytes over its stdin/stdout pipes from the parent, which
serves each read from the artifact's stream (charged to the scan's budgets).

Protocol (all integers little-endian): child -> parent: ``H`` once h5py is imported
(the deadline for reading starts then); parent -> child: the file size (Q), the
attribute names as one JSON line, and the file's first bytes: a length (I) and the
bytes (up to ``HEAD_BYTES`` of the parent: a small file whole, so it costs one round
trip). child -> parent, for each read beyond those bytes: ``R`` offset (Q) length
(I) for each read, answered by a length (I) and the bytes; finally ``D`` length
(I) and a JSON object: ``{"attrs": {name: text}}`` or ``{"error": "..."}``. The parent may
then send the next file's size and names; the child ends when its stdin closes.
This file runs as a script (``python -I hdf5_child.py``) and imports only the
standard library and h5py.
"""

from __future__ import annotations

import io
import json
import struct
import sys
from typing import BinaryIO


class RemoteFile(io.RawIOBase):
    """A read-only, seekable file whose bytes come from the parent over the pipes."""

    def __init__(self, size: int, requests: BinaryIO, replies: BinaryIO, head: bytes = b"") -> None:
        super().__init__()
        self._head = head  # the file's first bytes, sent with the request
        self._size = size
        self._pos = 0
        self._requests = requests
        self._replies = replies

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        want = min(len(buffer), max(0, self._size - self._pos))
        if want == 0:
            return 0
        if self._pos + want <= len(self._head):
            buffer[:want] = self._head[self._pos : self._pos + want]
            self._pos += want
            return want
        self._requests.write(b"R" + struct.pack("<QI", self._pos, want))
        self._requests.flush()
        (length,) = struct.unpack("<I", _exact(self._replies, 4))
        data = _exact(self._replies, length)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)


def _exact(stream: BinaryIO, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = stream.read(n - len(out))
        if not chunk:
            raise EOFError("parent closed the pipe")
        out += chunk
    return bytes(out)


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def main() -> None:
    requests, replies = sys.stdout.buffer, sys.stdin.buffer
    try:
        import h5py
    except ImportError as exc:
        h5py = None
        failure = f"h5py cannot be imported: {exc}"
    requests.write(b"H")  # ready: the parent's deadline for libhdf5 starts now
    requests.flush()
    while True:
        header = replies.read(8)
        if len(header) < 8:
            return  # the parent closed the pipe: no more files
        (size,) = struct.unpack("<Q", header)
        names = json.loads(replies.readline())
        (head_length,) = struct.unpack("<I", _exact(replies, 4))
        head = _exact(replies, head_length)
        result: dict[str, object]
        try:
            if h5py is None:
                raise RuntimeError(failure)
            with h5py.File(RemoteFile(size, requests, replies, head), "r") as h5:
                result = {"attrs": {key: _text(h5.attrs[key]) for key in names if key in h5.attrs}}
        except Exception as exc:  # noqa: BLE001 - every failure of libhdf5 is reported to the parent
            result = {"error": f"{type(exc).__name__}: {exc}"}
        body = json.dumps(result).encode()
        requests.write(b"D" + struct.pack("<I", len(body)) + body)
        requests.flush()


if __name__ == "__main__":
    main()
