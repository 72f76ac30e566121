"""GGUF (llama.cpp) files: bounded header, metadata and tensor-table parse; chat templates linted.

Reads only the metadata: magic, version, counts, every key/value pair and the
tensor infos. Every length is checked against the bytes left in the file and
against fixed caps before anything is read, the way ggml's parser should have
(heap-overflow CVEs in its GGUF reader came from trusting these numbers).
Tensor infos are checked for what llama.cpp relies on: at most 4 dimensions,
sizes that do not overflow, offsets aligned, inside the data section and not
overlapping. ``tokenizer.chat_template`` (and its named variants) go through
the Jinja lint (CVE-2024-34359: llama-cpp-python rendered them unsandboxed).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from ..core.artifact import Artifact, read_exact
from ..core.findings import Finding, Rule, Severity
from ..core.kinds import Kind
from ..core.registry import register
from ..core.walker import Malformed, ScanContext

TENSORS = Rule("MLG-GGUF-001", Severity.HIGH, "GGUF tensor table is inconsistent (parser-exploit shape)", "gguf")
LIMITS = Rule("MLG-GGUF-002", Severity.MEDIUM, "GGUF metadata exceeds mlgate's parsing limits", "gguf", incomplete=True)
DUPLICATE = Rule("MLG-GGUF-003", Severity.MEDIUM, "Duplicate GGUF metadata key", "gguf")

MAX_KV = 1 << 16
MAX_TENSORS = 1 << 20
MAX_KEY = 1 << 16
MAX_STRING = 256 << 20
MAX_ARRAY = 1 << 28
MAX_ARRAY_NESTING = 4
MAX_DIMS = 4
DEFAULT_ALIGNMENT = 32
TEMPLATE_KEY = "tokenizer.chat_template"

# GGUF value types: fixed sizes (string = 8, array = 9 are variable).
_FIXED = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9
# ggml tensor types: (elements per block, bytes per block), as in gguf-py GGML_QUANT_SIZES.
GGML_TYPES = {
    0: (1, 4),
    1: (1, 2),
    2: (32, 18),
    3: (32, 20),
    6: (32, 22),
    7: (32, 24),
    8: (32, 34),
    9: (32, 40),
    10: (256, 84),
    11: (256, 110),
    12: (256, 144),
    13: (256, 176),
    14: (256, 210),
    15: (256, 292),
    16: (256, 66),
    17: (256, 74),
    18: (256, 98),
    19: (256, 50),
    20: (32, 18),
    21: (256, 110),
    22: (256, 82),
    23: (256, 136),
    24: (1, 1),
    25: (1, 2),
    26: (1, 4),
    27: (1, 8),
    28: (1, 8),
    29: (256, 56),
    30: (1, 2),
    34: (256, 54),
    35: (256, 66),
    39: (32, 17),
    40: (64, 36),
    41: (128, 18),
}
_INT64_MAX = (1 << 63) - 1


class _Limit(Exception):
    """A cap was hit: the rest of the metadata is not read."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


class _Reader:
    """Bounded little/big-endian reads over a buffered stream with a known (or unknown) size."""

    def __init__(self, stream: BinaryIO, size: int | None) -> None:
        self.ctx: ScanContext | None = None  # where extracted strings are observed (secrets)
        self.stream = stream
        self.size = size
        self.pos = 0
        self.endian = "<"
        self.wide = True  # v2+ lengths and counts are u64; v1 used u32

    def remaining(self) -> int | None:
        return None if self.size is None else self.size - self.pos

    def take(self, n: int) -> bytes:
        left = self.remaining()
        if left is not None and n > left:
            raise Malformed(f"needs {n} bytes but only {left} remain", self.pos)
        data = read_exact(self.stream, n)
        if len(data) < n:
            raise Malformed(f"file ends after {self.pos + len(data)} bytes", self.pos + len(data))
        self.pos += n
        return data

    def skip(self, n: int) -> None:
        left = self.remaining()
        if left is not None and n > left:
            raise Malformed(f"needs {n} bytes but only {left} remain", self.pos)
        while n > 0:
            chunk = self.take(min(n, 1 << 20))
            n -= len(chunk)

    def unpack(self, fmt: str) -> int | float | bool:
        (value,) = struct.unpack(self.endian + fmt, self.take(struct.calcsize(fmt)))
        return value

    def length(self) -> int:
        return int(self.unpack("Q" if self.wide else "I"))

    def string_length(self, cap: int, what: str) -> int:
        start = self.pos
        n = self.length()
        left = self.remaining()
        if left is not None and n > left:
            raise Malformed(f"{what} length {n} is larger than the {left} bytes left in the file", start)
        if n > cap:
            raise _Limit(f"{what} of {n} bytes is longer than mlgate reads ({cap})", start)
        return n

    def string(self, cap: int, what: str) -> str:
        return self.take(self.string_length(cap, what)).decode("utf-8", "replace")


@dataclass
class _Tensor:
    name: str
    dims: list[int]
    ggml_type: int
    offset: int
    at: int


@register(Kind.GGUF, "gguf")
def analyze(artifact: Artifact, ctx: ScanContext) -> Iterable[Finding]:
    with ctx.open(artifact) as raw:
        stream = io.BufferedReader(raw, buffer_size=1 << 16)  # type: ignore[arg-type]
        reader = _Reader(stream, artifact.size)
        reader.ctx = ctx
        try:
            yield from _parse(reader, artifact)
        except _Limit as exc:
            yield LIMITS.finding(artifact.at(exc.offset), f"{exc}; the rest of the metadata was not read")


def _parse(reader: _Reader, artifact: Artifact) -> Iterator[Finding]:
    if reader.take(4) != b"GGUF":
        raise Malformed("missing GGUF magic", 0)
    raw_version = reader.take(4)
    version = struct.unpack("<I", raw_version)[0]
    if version not in (1, 2, 3) and struct.unpack(">I", raw_version)[0] in (1, 2, 3):
        reader.endian = ">"
        version = struct.unpack(">I", raw_version)[0]
    if version not in (1, 2, 3):
        raise Malformed(f"unsupported GGUF version {version}", 4)
    reader.wide = version >= 2
    tensor_count = reader.length()
    kv_count = reader.length()
    if kv_count > MAX_KV:
        raise _Limit(f"{kv_count} metadata entries (limit {MAX_KV})", 8)
    if tensor_count > MAX_TENSORS:
        raise _Limit(f"{tensor_count} tensors (limit {MAX_TENSORS})", 8)
    seen: set[str] = set()
    alignment = DEFAULT_ALIGNMENT
    ctx = reader.ctx
    for _ in range(kv_count):
        key_at = reader.pos
        key = reader.string(MAX_KEY, "metadata key")
        if key in seen:
            yield DUPLICATE.finding(
                artifact.at(key_at), f"metadata key {key!r} appears twice; parsers disagree on which value counts"
            )
        seen.add(key)
        value_type = int(reader.unpack("I"))
        value_at = reader.pos
        if value_type == _STRING and (key == TEMPLATE_KEY or key.startswith(TEMPLATE_KEY + ".")):
            template = reader.string(MAX_STRING, key)
            from ..embedded_code.templates import lint_template  # jinja2 loads with the first template

            yield from lint_template(template, f"{artifact.at(value_at)}#{key}")
        elif value_type == _STRING and ctx is not None:  # metadata text: secrets, where the model phones home
            value = reader.string(MAX_STRING, key)
            ctx.observe_document(f"{artifact.at(value_at)}#{key}", value, reachable=True)
            ctx.observe_value(f"{artifact.at(value_at)}#{key}", value, key)
        elif key == "general.alignment" and value_type in _FIXED:
            alignment = int(reader.unpack(_FIXED[value_type]))
            if alignment <= 0 or alignment & (alignment - 1):
                yield TENSORS.finding(artifact.at(value_at), f"general.alignment {alignment} is not a power of two")
                return
        else:
            _skip_value(reader, value_type, 0)
    yield from _tensors(reader, artifact, tensor_count, alignment)


def _skip_value(reader: _Reader, value_type: int, depth: int) -> None:
    if value_type in _FIXED:
        reader.skip(struct.calcsize(_FIXED[value_type]))
    elif value_type == _STRING:
        reader.skip(reader.string_length(MAX_STRING, "string value"))
    elif value_type == _ARRAY:
        if depth >= MAX_ARRAY_NESTING:
            raise _Limit(f"arrays nested deeper than {MAX_ARRAY_NESTING}", reader.pos)
        at = reader.pos
        item_type = int(reader.unpack("I"))
        count = reader.length()
        item_size = struct.calcsize(_FIXED[item_type]) if item_type in _FIXED else 8 if item_type == _STRING else 12
        left = reader.remaining()
        if item_type not in _FIXED and item_type not in (_STRING, _ARRAY):
            raise Malformed(f"unknown array item type {item_type}", at)
        if left is not None and count * item_size > left:
            raise Malformed(f"array of {count} items cannot fit in the {left} bytes left", at)
        if count > MAX_ARRAY:
            raise _Limit(f"array of {count} items (limit {MAX_ARRAY})", at)
        if item_type in _FIXED:
            reader.skip(count * item_size)
        else:
            for _ in range(count):
                _skip_value(reader, item_type, depth + 1)
    else:
        raise Malformed(f"unknown metadata value type {value_type}", reader.pos - 4)


def _tensors(reader: _Reader, artifact: Artifact, count: int, alignment: int) -> Iterator[Finding]:
    left = reader.remaining()
    if left is not None and count * 24 > left:
        raise Malformed(f"{count} tensor infos cannot fit in the {left} bytes left", reader.pos)
    tensors: list[_Tensor] = []
    for _ in range(count):
        at = reader.pos
        name = reader.string(MAX_KEY, "tensor name")
        n_dims = int(reader.unpack("I"))
        if n_dims > MAX_DIMS:
            yield TENSORS.finding(
                artifact.at(at), f"tensor {name!r} declares {n_dims} dimensions (ggml allows {MAX_DIMS})"
            )
            return
        dims = [int(reader.unpack("Q" if reader.wide else "I")) for _ in range(n_dims)]
        ggml_type = int(reader.unpack("I"))
        offset = int(reader.unpack("Q"))
        tensors.append(_Tensor(name, dims, ggml_type, offset, at))
    data_start = -(-reader.pos // alignment) * alignment
    data_size = None if reader.size is None else reader.size - data_start
    yield from _check_tensors(tensors, artifact, alignment, data_size)


def _check_tensors(
    tensors: list[_Tensor], artifact: Artifact, alignment: int, data_size: int | None
) -> Iterator[Finding]:
    spans: list[tuple[int, int, _Tensor]] = []
    for t in tensors:
        where = artifact.at(t.at)
        if t.ggml_type not in GGML_TYPES:
            yield LIMITS.finding(
                where, f"tensor {t.name!r} has type {t.ggml_type}, unknown to mlgate; sizes not checked"
            )
            continue
        block, block_bytes = GGML_TYPES[t.ggml_type]
        elements = 1
        for d in t.dims:
            elements *= d
        if any(d > _INT64_MAX for d in t.dims) or elements > _INT64_MAX:
            yield TENSORS.finding(where, f"tensor {t.name!r} shape {t.dims} overflows 64-bit element counts")
            continue
        if t.dims and t.dims[0] % block:
            yield TENSORS.finding(where, f"tensor {t.name!r} row of {t.dims[0]} is not a multiple of its block {block}")
            continue
        nbytes = elements // block * block_bytes
        if t.offset % alignment:
            yield TENSORS.finding(where, f"tensor {t.name!r} offset {t.offset} is not aligned to {alignment}")
        if data_size is not None and t.offset + nbytes > data_size:
            yield TENSORS.finding(
                where, f"tensor {t.name!r} ({nbytes} bytes at data offset {t.offset}) extends past the end of the file"
            )
        spans.append((t.offset, t.offset + nbytes, t))
    spans.sort(key=lambda s: (s[0], s[1]))
    for (_, end, first), (start, _, second) in zip(spans, spans[1:], strict=False):
        if start < end:
            yield TENSORS.finding(
                artifact.at(second.at), f"tensor {second.name!r} overlaps tensor {first.name!r} in the data section"
            )
