"""NumPy ``.npy`` arrays (``Kind.NUMPY``; ``.npz`` members arrive here through the zip walker).

The header (``\\x93NUMPY``, version, length, then a dict literal) is parsed
with ``ast.literal_eval`` only. An array whose dtype holds Python objects
(in any spelling numpy accepts, see ``numpy_dtypes``) stores a
pickle after the header, which ``np.load(allow_pickle=True)`` unpickles: it is
walked as a child artifact, so the pickle analyzer scans it. Plain arrays are
checked against the size their header announces; bytes past the array are
walked by content.
"""

from __future__ import annotations

import ast
import re
import struct
from collections.abc import Iterator
from typing import BinaryIO

from ..core.artifact import Artifact, OwnedSlice, read_exact
from ..core.findings import Finding, Rule, Severity
from ..core.kinds import Kind
from ..core.registry import register
from ..core.walker import Malformed, ScanContext
from .numpy_dtypes import NotADtype, descr_has_objects

ANALYZER = "numpy"

OBJECT_ARRAY = Rule("MLG-NPY-001", Severity.LOW, "NumPy array of Python objects (a pickle inside)", ANALYZER)
SIZE_MISMATCH = Rule(
    "MLG-NPY-002", Severity.MEDIUM, "NumPy array data is shorter than its header says", ANALYZER, incomplete=True
)
TRAILING = Rule("MLG-NPY-003", Severity.MEDIUM, "Data after the end of a NumPy array", ANALYZER)

MAX_HEADER = 1 << 20
"""Largest header accepted (numpy itself refuses more than 10,000 bytes unless told otherwise)."""
_REQUIRED = {"descr", "fortran_order", "shape"}
_SIZE = re.compile(r"^[<>|=]?([a-zA-Z?])(\d*)(\[[^\]]*\])?$")
_CHAR_SIZES = {
    "?": 1,
    "b": 1,
    "B": 1,
    "h": 2,
    "H": 2,
    "i": 4,
    "I": 4,
    "l": 8,
    "L": 8,
    "q": 8,
    "Q": 8,
    "e": 2,
    "f": 4,
    "d": 8,
    "g": 16,
    "F": 8,
    "D": 16,
    "G": 32,
    "O": 8,
    "M": 8,
    "m": 8,
}


def read_header(stream: BinaryIO) -> tuple[dict[str, object], int]:
    """The header dict and the offset where array data starts; raises ``Malformed``."""
    head = read_exact(stream, 10)
    if len(head) < 10 or head[:6] != b"\x93NUMPY":
        raise Malformed("not a .npy header", 0)
    major = head[6]
    if major == 1:
        (length,) = struct.unpack("<H", head[8:10])
        start = 10
    elif major in (2, 3):
        head += read_exact(stream, 2)
        (length,) = struct.unpack("<I", head[8:12])
        start = 12
    else:
        raise Malformed(f"unsupported .npy version {major}.{head[7]}", 6)
    if length > MAX_HEADER:
        raise Malformed(f".npy header of {length} bytes is larger than {MAX_HEADER}", 8)
    raw = read_exact(stream, length)
    if len(raw) < length:
        raise Malformed(".npy header is truncated", start)
    try:
        text = raw.decode("utf-8" if major == 3 else "latin-1")
        header = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError, UnicodeDecodeError) as exc:
        raise Malformed(f".npy header is not a Python literal: {exc}", start) from None
    if not isinstance(header, dict) or not _REQUIRED <= set(header):
        raise Malformed(".npy header lacks descr, fortran_order or shape", start)
    return header, start + length


def has_objects(descr: object) -> bool:
    """True when a header ``descr`` makes a dtype that holds objects, read with numpy's grammar.

    Raises ``Malformed`` for a descriptor numpy refuses (``np.load`` fails on the file).
    """
    try:
        return descr_has_objects(descr)
    except NotADtype as exc:
        raise Malformed(f".npy descr {descr!r} is not a dtype numpy accepts: {exc}") from None


def itemsize(descr: object) -> int | None:
    """Bytes per element of a header ``descr``, or None when it cannot be worked out."""
    if isinstance(descr, str):
        match = _SIZE.match(descr)
        if match is None:
            return None
        char, digits = match.group(1), match.group(2)
        if char in "SaV":
            return int(digits) if digits else None
        if char == "U":
            return 4 * int(digits) if digits else None
        if digits:
            return int(digits)
        return _CHAR_SIZES.get(char)
    if isinstance(descr, list):
        total = 0
        for field in descr:
            if not isinstance(field, (list, tuple)) or len(field) < 2:
                return None
            size = itemsize(field[1])
            if size is None:
                return None
            count = 1
            if len(field) > 2:
                shape = field[2] if isinstance(field[2], tuple) else (field[2],)
                for n in shape:
                    if not isinstance(n, int) or n < 0:
                        return None
                    count *= n
            total += size * count
        return total
    return None


@register(Kind.NUMPY, ANALYZER)
def analyze(artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
    """Parse a .npy header; walk an object array's pickle as a child; check plain array sizes."""
    with ctx.open(artifact) as stream:
        header, data_start = read_header(stream)
    descr, shape = header["descr"], header["shape"]
    size = artifact.size
    if has_objects(descr):
        if size is not None and size <= data_start:
            raise Malformed("object array header with no pickle after it: np.load fails (EOF while unpickling)", size)
        yield OBJECT_ARRAY.finding(
            artifact.at(data_start),
            f"array of dtype {descr!r} stores its elements as a pickle: np.load(allow_pickle=True) unpickles it; "
            "the pickle was scanned",
        )
        _walk_rest(artifact, ctx, data_start, "object array pickle", loaded_as="elements.pkl")
        return
    element = itemsize(descr)
    if size is None or element is None or not isinstance(shape, tuple):
        return
    count = 1
    for n in shape:
        if not isinstance(n, int) or n < 0:
            raise Malformed(f".npy shape {shape!r} is not a tuple of sizes", data_start)
        count *= n
    expected = data_start + count * element
    if size < expected:
        yield SIZE_MISMATCH.finding(
            artifact.at(size),
            f"header announces {count * element} bytes of array data but the file holds {size - data_start}: "
            "np.load fails on it",
        )
    elif size > expected:
        yield TRAILING.finding(
            artifact.at(expected),
            f"{size - expected} bytes after the array data, which np.load ignores; they were scanned by content",
        )
        _walk_rest(artifact, ctx, expected, f"@{expected}")


def _walk_rest(artifact: Artifact, ctx: ScanContext, start: int, name: str, loaded_as: str | None = None) -> None:
    size = artifact.size

    def opener() -> BinaryIO:
        end = size if size is not None else 1 << 62
        return OwnedSlice(artifact.open(), start, end - start)  # type: ignore[return-value]

    child = artifact.child(name, opener, None if size is None else size - start, container="npy")
    child.loaded_as = loaded_as  # np.load(allow_pickle=True) unpickles an object array's data, whatever it sniffs as
    ctx.walk(child)
