"""msgpack files (``Kind.MSGPACK``, by name: Flax ``flax_model.msgpack`` weights).

Flax writes one msgpack object (nested maps of arrays, each array an ext value
holding shape, dtype name and raw bytes) and ``flax.serialization.msgpack_restore``
reads it with ``msgpack.unpackb``: nothing in the format imports or runs code.
What a gate must know is that the file *is* that: a name that promises msgpack
on bytes that do not parse as exactly one msgpack object is not a model mlgate
read. The structure is walked iteratively (no recursion, payloads seeked over),
and anything ``unpackb`` would refuse (reserved byte 0xc1, truncation, data
after the object, invalid UTF-8 in a short string, nesting past the limit)
raises ``Malformed``, which makes the scan incomplete.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from typing import BinaryIO

from ..core.artifact import Artifact, read_exact
from ..core.findings import Finding
from ..core.kinds import Kind
from ..core.registry import register
from ..core.walker import Malformed, ScanContext

ANALYZER = "msgpack"
MAX_DEPTH = 1024
"""Deepest nesting accepted (msgpack-python's own limit is the C stack)."""
CHECK_STR = 1 << 16
"""Strings up to this length are checked to be UTF-8 (unpackb decodes them); longer ones are skipped."""

_FIXED = {0xC0: 0, 0xC2: 0, 0xC3: 0, 0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8,
          0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8, 0xD4: 2, 0xD5: 3, 0xD6: 5, 0xD7: 9, 0xD8: 17}  # fmt: skip
_LENGTH = {0xC4: 1, 0xC5: 2, 0xC6: 4, 0xD9: 1, 0xDA: 2, 0xDB: 4}  # bin8/16/32, str8/16/32
_EXT = {0xC7: 1, 0xC8: 2, 0xC9: 4}
_CONTAINER = {0xDC: (2, 1), 0xDD: (4, 1), 0xDE: (2, 2), 0xDF: (4, 2)}  # (count width, items per count)
_UNSIGNED = {1: ">B", 2: ">H", 4: ">I"}


class _Reader:
    def __init__(self, stream: BinaryIO, size: int | None) -> None:
        self.stream = stream
        self.size = size
        self.pos = 0

    def take(self, n: int) -> bytes:
        data = read_exact(self.stream, n)
        if len(data) < n:
            raise Malformed(f"msgpack data ends inside a value ({n} bytes needed)", self.pos)
        self.pos += n
        return data

    def skip(self, n: int) -> None:
        if self.size is not None:
            if self.pos + n > self.size:
                raise Malformed(f"msgpack value of {n} bytes runs past the end of the file", self.pos)
            self.stream.seek(n, io.SEEK_CUR)
            self.pos += n
        else:
            self.take(n)


def check(stream: BinaryIO, size: int | None) -> int:
    """Walk one msgpack object from ``stream``; return its length; raise ``Malformed`` if ``unpackb`` would."""
    r = _Reader(stream, size)
    pending = [1]  # values still expected at each open nesting level
    while pending:
        if pending[-1] == 0:
            pending.pop()
            continue
        pending[-1] -= 1
        at = r.pos
        b = r.take(1)[0]
        if b <= 0x7F or b >= 0xE0:
            continue
        count = 0
        if 0x80 <= b <= 0x8F:
            count = 2 * (b & 0x0F)
        elif 0x90 <= b <= 0x9F:
            count = b & 0x0F
        elif 0xA0 <= b <= 0xBF:
            _string(r, b & 0x1F, at)
            continue
        elif b in _FIXED:
            r.skip(_FIXED[b])
            continue
        elif b in _LENGTH:
            width = _LENGTH[b]
            (n,) = struct.unpack(_UNSIGNED[width], r.take(width))
            if b >= 0xD9:
                _string(r, n, at)
            else:
                r.skip(n)
            continue
        elif b in _EXT:
            width = _EXT[b]
            (n,) = struct.unpack(_UNSIGNED[width], r.take(width))
            r.skip(1 + n)
            continue
        elif b in _CONTAINER:
            width, per = _CONTAINER[b]
            (n,) = struct.unpack(_UNSIGNED[width], r.take(width))
            count = n * per
        else:
            raise Malformed(f"byte 0x{b:02x} is not a msgpack type (msgpack.unpackb refuses it)", at)
        if count:
            if len(pending) >= MAX_DEPTH:
                raise Malformed(f"msgpack nested deeper than {MAX_DEPTH}", at)
            if r.size is not None and count > r.size - r.pos:
                raise Malformed(f"msgpack container announces {count} values but fewer bytes remain", at)
            pending.append(count)
    return r.pos


def _string(r: _Reader, n: int, at: int) -> None:
    if n > CHECK_STR:
        r.skip(n)
        return
    try:
        r.take(n).decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("msgpack string is not UTF-8 (msgpack.unpackb refuses it)", at) from None


@register(Kind.MSGPACK, ANALYZER)
def analyze(artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
    """Check that the file is exactly one msgpack object, as ``flax.serialization.msgpack_restore`` needs."""
    with ctx.open(artifact) as stream:
        end = check(stream, artifact.size)
        if artifact.size is not None and end < artifact.size:
            raise Malformed(
                f"{artifact.size - end} bytes after the msgpack object: msgpack.unpackb refuses the file (ExtraData)",
                end,
            )
        if artifact.size is None and stream.read(1):
            raise Malformed("data after the msgpack object: msgpack.unpackb refuses the file (ExtraData)", end)
    return iter(())
