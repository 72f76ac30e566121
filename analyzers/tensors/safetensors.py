"""safetensors: header-only validation (the tensor bytes are never read).

Layout: ``u64 LE N``, an N-byte UTF-8 JSON header (``{name: {dtype, shape,
data_offsets}}`` plus an optional ``__metadata__`` of strings), then the byte
buffer. The header is checked the way the reference Rust loader checks it
(bounded length, offsets sorted, contiguous and covering the buffer, sizes
matching dtype x shape, string-only metadata), and Python-only readings are
called out: ``json.loads`` keeps the last of duplicate keys where the Rust
loader refuses the file, and Hydra ``_target_`` strings in the metadata are
code for loaders that instantiate them (FlexTok style).
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Iterator
from typing import Any

from ..core.artifact import Artifact, read_exact
from ..core.findings import Finding, Rule, Severity
from ..core.kinds import Kind
from ..core.registry import register
from ..core.walker import Malformed, ScanContext

MAX_HEADER = 100_000_000
"""safetensors' ``MAX_HEADER_SIZE``: the reference loader refuses longer headers."""

DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "E8M0": 8,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "C64": 64,
    "F64": 64, "I64": 64, "U64": 64, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}  # fmt: skip
"""Element size in bits of every dtype the safetensors format defines."""

ANALYZER = "safetensors"
DUPLICATE_KEYS = Rule(
    "MLG-ST-001", Severity.HIGH, "Duplicate keys in the safetensors header (parser differential)", ANALYZER
)
BAD_OFFSETS = Rule(
    "MLG-ST-002", Severity.MEDIUM, "Tensor data offsets overlap, leave holes or leave the buffer", ANALYZER
)
SIZE_MISMATCH = Rule("MLG-ST-003", Severity.MEDIUM, "Tensor byte size does not match its dtype and shape", ANALYZER)
UNKNOWN_DTYPE = Rule(
    "MLG-ST-004", Severity.MEDIUM, "Tensor with a dtype the safetensors format does not define", ANALYZER
)
BAD_METADATA = Rule("MLG-ST-005", Severity.MEDIUM, "__metadata__ is not a map of strings to strings", ANALYZER)
HYDRA_TARGET = Rule(
    "MLG-ST-006",
    Severity.CRITICAL,
    "Hydra _target_ in safetensors metadata (code run by instantiating loaders)",
    ANALYZER,
)

_TARGET_VALUE = re.compile(r"""_target_['"]?\s*[:=]\s*['"]?([A-Za-z_][\w.:]*)""")


REFUSED = Rule(
    "MLG-ST-007",
    Severity.MEDIUM,
    "The reference safetensors loader refuses this file",
    ANALYZER,
    incomplete=True,
)
_REFUSING = frozenset({"MLG-ST-002", "MLG-ST-003", "MLG-ST-004", "MLG-ST-005"})


@register(Kind.SAFETENSORS, ANALYZER)
def analyze_safetensors(artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
    """Validate the header; a file the reference loader refuses is not a model mlgate read (incomplete)."""
    refused = []
    for finding in _analyze(artifact, ctx):
        if finding.rule in _REFUSING:
            refused.append(finding.rule)
        yield finding
    if refused:
        yield REFUSED.finding(
            artifact.location,
            f"safetensors.safe_open refuses this file ({', '.join(sorted(set(refused)))}): it cannot be loaded "
            "as the safetensors file it claims to be, so what a lenient reader would take from it is unknown",
        )


def _analyze(artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
    """Validate the header of a safetensors file; the cost is independent of the tensor bytes."""
    with ctx.open(artifact) as stream:
        size = artifact.size if artifact.size is not None else stream.seek(0, 2)
        stream.seek(0)
        prefix = read_exact(stream, 8)
        if len(prefix) < 8:
            raise Malformed("file shorter than the 8-byte header length")
        (length,) = struct.unpack("<Q", prefix)
        if length > MAX_HEADER or 8 + length > size:
            raise Malformed(f"header length {length} exceeds the limit or the file size ({size} bytes)", 0)
        raw = read_exact(stream, length)
    ctx.observe_document(artifact.at(8), raw.decode("utf-8", "replace"), reachable=True)  # __metadata__ text
    duplicates: list[str] = []
    header = _parse(raw, duplicates)
    if duplicates:
        names = ", ".join(repr(d) for d in sorted(set(duplicates))[:10])
        yield DUPLICATE_KEYS.finding(
            artifact.at(8),
            f"header repeats key(s) {names}: Python's json keeps the last value, the Rust loader refuses the file; "
            "readers disagree on what the file holds",
        )
    buffer_size = size - 8 - length
    tensors = []
    for name, info in header.items():
        if name == "__metadata__":
            yield from _metadata(artifact, info)
            continue
        tensors.append(_tensor(name, info))
    yield from _tensor_findings(artifact, tensors, buffer_size)


def _parse(raw: bytes, duplicates: list[str]) -> dict[str, Any]:
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                duplicates.append(key)
            out[key] = value
        return out

    def reject_constant(name: str) -> Any:
        raise Malformed(f"header holds {name}, which is not JSON", 8)

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Malformed(f"header is not UTF-8 ({exc.reason})", 8 + exc.start) from None
    if not text.startswith("{"):
        raise Malformed("header does not start with '{'", 8)
    try:
        header = json.loads(text, object_pairs_hook=pairs, parse_constant=reject_constant)
    except json.JSONDecodeError as exc:
        raise Malformed(f"header is not valid JSON: {exc.msg}", 8 + exc.pos) from None
    if not isinstance(header, dict):
        raise Malformed("header is not a JSON object", 8)
    return header


def _tensor(name: str, info: Any) -> tuple[str, str, list[int], int, int]:
    if not isinstance(info, dict):
        raise Malformed(f"tensor {name!r} entry is not an object")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if not isinstance(dtype, str):
        raise Malformed(f"tensor {name!r} has no string dtype")
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise Malformed(f"tensor {name!r} shape is not a list of non-negative integers")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_count(o) for o in offsets):
        raise Malformed(f"tensor {name!r} data_offsets is not [begin, end]")
    return name, dtype, shape, offsets[0], offsets[1]


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _tensor_findings(
    artifact: Artifact, tensors: list[tuple[str, str, list[int], int, int]], buffer_size: int
) -> Iterator[Finding]:
    where = artifact.at(8)
    for name, dtype, shape, begin, end in tensors:
        bits = DTYPE_BITS.get(dtype)
        if bits is None:
            yield UNKNOWN_DTYPE.finding(
                where, f"tensor {name!r} has dtype {dtype!r}, which no safetensors loader reads"
            )
            continue
        total_bits = math.prod(shape) * bits  # Python integers: no overflow to hide behind
        if end < begin:
            continue  # reported with the offsets below
        if total_bits % 8 or total_bits // 8 != end - begin:
            yield SIZE_MISMATCH.finding(
                where,
                f"tensor {name!r} ({dtype} {shape}) needs {total_bits / 8:g} bytes but its offsets span {end - begin}",
            )
    problems = _offset_problems(sorted((b, e, n) for n, _, _, b, e in tensors), buffer_size)
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        yield BAD_OFFSETS.finding(where, f"{shown} (the reference loader refuses such files; other readers differ)")


def _offset_problems(spans: list[tuple[int, int, str]], buffer_size: int) -> list[str]:
    problems = []
    position = 0
    for begin, end, name in spans:
        if end < begin:
            problems.append(f"tensor {name!r} ends ({end}) before it begins ({begin})")
            continue
        if begin > position:
            problems.append(f"{begin - position} unclaimed bytes before tensor {name!r}")
        elif begin < position:
            problems.append(f"tensor {name!r} overlaps the previous tensor by {position - begin} bytes")
        position = max(position, end)
    if position > buffer_size:
        problems.append(f"tensors claim {position} bytes but the buffer holds {buffer_size}")
    elif position < buffer_size:
        problems.append(f"{buffer_size - position} bytes after the last tensor are claimed by no tensor")
    return problems


def _metadata(artifact: Artifact, metadata: Any) -> Iterator[Finding]:
    where = artifact.at(8)
    if not isinstance(metadata, dict):
        yield BAD_METADATA.finding(where, f"__metadata__ is a JSON {type(metadata).__name__}, not an object of strings")
        return
    wrong = [k for k, v in metadata.items() if not isinstance(v, str)]
    if wrong:
        shown = ", ".join(repr(k) for k in wrong[:10])
        yield BAD_METADATA.finding(
            where, f"__metadata__ values of {shown} are not strings (the Rust loader refuses them)"
        )
    for key, value in metadata.items():
        text = value if isinstance(value, str) else json.dumps(value)
        if "_target_" in key or "_target_" in text:
            targets = sorted(set(_TARGET_VALUE.findall(f"{key}: {text}")))
            named = f" naming {', '.join(targets[:5])}" if targets else ""
            yield HYDRA_TARGET.finding(
                where,
                f"__metadata__[{key!r}] holds a Hydra _target_{named}: loaders that pass this config to "
                "hydra.utils.instantiate call that object when the model loads",
            )
