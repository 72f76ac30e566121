"""PyTorch container knowledge: the torch zip layout, TorchScript code, legacy formats.

The generic zip and tar walkers already visit every member (every duplicate
copy too) and route pickles to the pickle analyzer by content. This module
adds what only PyTorch knows:

* a torch zip (``<root>/data.pkl``, any root folder, as ``PyTorchStreamReader``
  takes it from the first entry): which copy of a duplicated record
  ``torch.load`` reads; TorchScript ``code/`` that calls ``torch.ops``
  namespaces a host must load a native library for;
* the legacy tar format (``sys_info``/``pickle``/``storages``/``tensors``),
  which ``weights_only`` refuses since torch 2.6 and which carried
  CVE-2025-32434;
* stream plans for the pickle analyzer: the legacy (pre-1.6) file is five
  pickles then raw storages; legacy tar ``storages``/``tensors`` members
  interleave pickles with raw data the plan steps over.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator

from ..core.artifact import LEVEL_SEPARATOR, Artifact, read_exact
from ..core.budget import BudgetExceeded
from ..core.findings import Finding, Rule, Severity
from ..core.kinds import Kind
from ..core.records import TYPE_CHECKING
from ..core.registry import register
from ..core.walker import Malformed, ScanContext
from .packs import SAFE_TORCHSCRIPT_NAMESPACES
from .vm import Global, PickleVM

if TYPE_CHECKING:
    from typing import BinaryIO

    from ..archives.zip_and_streams import ZipEntry

ANALYZER = "pytorch"

DUPLICATE_RECORD = Rule("MLG-PT-001", Severity.HIGH, "Torch archive record present more than once", ANALYZER)
CUSTOM_OPS = Rule(
    "MLG-PT-002", Severity.MEDIUM, "TorchScript code calls a custom torch.ops namespace (native library)", ANALYZER
)
LEGACY_TAR = Rule(
    "MLG-PT-003",
    Severity.HIGH,
    "Legacy tar-format torch checkpoint (weights_only cannot protect it)",
    ANALYZER,
    cve=("CVE-2025-32434",),
)

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
"""The first pickle of a legacy (pre-zip) torch file holds this number."""
LEGACY_PROTOCOL = 1001
"""The second pickle of a legacy torch file holds this protocol version."""
LEGACY_STREAMS = 5
"""Legacy torch files: magic, protocol version, sys_info, the object, the storage keys; then raw storages."""
LEGACY_TAR_SKIP = 1 << 20
"""Largest member skipped over while looking for legacy torch records in a compressed tar."""
CODE_BYTES = 1 << 20
"""TorchScript source bytes read per code/ file."""

_OPS = re.compile(r"\btorch\.ops\.([A-Za-z_][A-Za-z0-9_]*)\s*\.")
_ELEMENT_SIZES = {
    "FloatStorage": 4, "DoubleStorage": 8, "HalfStorage": 2, "BFloat16Storage": 2, "LongStorage": 8,
    "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1, "BoolStorage": 1,
    "ComplexFloatStorage": 8, "ComplexDoubleStorage": 16, "QUInt8Storage": 1, "QInt8Storage": 1,
    "QInt32Storage": 4, "QUInt4x2Storage": 1, "QUInt2x4Storage": 1,
}  # fmt: skip


# --- stream plans for the pickle analyzer --------------------------------------------------------
class StreamPlan:
    """How pickle streams follow each other in a file: plain files hold any number."""

    expected_multiple = False  # several streams are this format's normal shape

    def after(self, count: int, value: object, vm: PickleVM) -> bool:
        """Called after the ``count``-th stream (1-based) returned ``value``; False: stop reading."""
        return True

    def ended(self, count: int, vm: PickleVM) -> None:
        """Called when the file ends after ``count`` complete streams; raise ``Malformed`` if it needs more."""


class LegacyFile(StreamPlan):
    """A legacy torch file: five pickles, then raw storage bytes torch reads without unpickling.

    After the fifth pickle (the storage keys), ``torch.load`` reads, for each storage key in sorted
    order, an 8-byte element count and that many elements; the storages' types come from the
    persistent ids ``('storage', <type>, key, location, numel, view)`` of the fourth pickle. Data
    shorter than that is a file ``torch.load`` fails on (``Malformed``: the scan is incomplete).
    """

    expected_multiple = True

    def __init__(self, pids: list[object] | None = None) -> None:
        self.pids = pids if pids is not None else []

    def after(self, count: int, value: object, vm: PickleVM) -> bool:
        if count < LEGACY_STREAMS:
            return True
        sizes = self._element_sizes()
        for key in sorted(sizes):
            raw = vm.read_bytes(8)
            if raw is None:
                raise Malformed(f"legacy torch storage {key!r} is missing (torch.load fails)", vm.cur)
            (numel,) = struct.unpack("<q", raw)
            if numel < 0 or not vm.skip(numel * sizes[key]):
                raise Malformed(f"legacy torch storage {key!r} data is truncated (torch.load fails)", vm.cur)
        return False

    def ended(self, count: int, vm: PickleVM) -> None:
        raise Malformed(
            f"legacy torch file ends after {count} of its {LEGACY_STREAMS} pickles (torch.load fails)", vm.cur
        )

    def _element_sizes(self) -> dict[str, int]:
        """Element size per storage key, when every storage pid is a known type (else: nothing to check)."""
        sizes: dict[str, int] = {}
        for pid in self.pids:
            if type(pid) is not tuple or not pid or pid[0] != "storage":
                continue
            if len(pid) < 3 or type(pid[1]) is not Global or type(pid[2]) is not str:
                return {}
            size = _ELEMENT_SIZES.get(pid[1].name or "")
            if size is None:
                return {}
            sizes[pid[2]] = size
        return sizes


class LegacyStorages(StreamPlan):
    """Legacy tar ``storages``: count, then per storage (key, location, type) + raw data, then views."""

    expected_multiple = True

    def __init__(self) -> None:
        self.remaining: int | None = None

    def after(self, count: int, value: object, vm: PickleVM) -> bool:
        if self.remaining is None:
            if type(value) is not int or value < 0:
                raise Malformed("legacy torch 'storages' does not start with a storage count", vm.cur)
            self.remaining = value
            return True
        if self.remaining == 0:
            return False  # that was the storage views pickle
        self.remaining -= 1
        size = _element_size(value)
        raw = vm.read_bytes(8)
        if size is None or raw is None:
            raise Malformed("legacy torch storage record cannot be sized", vm.cur)
        (numel,) = struct.unpack("<q", raw)
        if numel < 0 or not vm.skip(numel * size):
            raise Malformed("legacy torch storage data is truncated", vm.cur)
        return True


class LegacyTensors(StreamPlan):
    """Legacy tar ``tensors``: count, then per tensor (key, storage id, type) + a raw shape record."""

    expected_multiple = True

    def __init__(self) -> None:
        self.remaining: int | None = None

    def after(self, count: int, value: object, vm: PickleVM) -> bool:
        if self.remaining is None:
            if type(value) is not int or value < 0:
                raise Malformed("legacy torch 'tensors' does not start with a tensor count", vm.cur)
            self.remaining = value
            return value > 0
        self.remaining -= 1
        raw = vm.read_bytes(8)
        if raw is None:
            raise Malformed("legacy torch tensor record is truncated", vm.cur)
        (ndim,) = struct.unpack("<i", raw[:4])
        if not 0 <= ndim <= 64 or not vm.skip(16 * ndim + 8):
            raise Malformed("legacy torch tensor record cannot be sized", vm.cur)
        return self.remaining > 0


def _element_size(value: object) -> int | None:
    if type(value) is tuple and len(value) == 3 and type(value[2]) is Global:
        return _ELEMENT_SIZES.get(value[2].name or "")
    return None


def stream_plan(artifact: Artifact, values: list[object], pids: list[object] | None = None) -> StreamPlan:
    """The plan for a file whose first pickle streams returned ``values`` (called after the first two).

    A legacy file is recognised by its magic number, or by the protocol version in its second
    stream when the magic number itself was computed (an ``eval`` hiding in the first pickle).
    """
    first_value = values[0]
    if type(first_value) is int and first_value == LEGACY_MAGIC:
        return LegacyFile(pids)
    if len(values) > 1 and type(values[1]) is int and values[1] == LEGACY_PROTOCOL:
        return LegacyFile(pids)
    if artifact.container == "tar" and type(first_value) is int:
        if artifact.name == "storages":
            return LegacyStorages()
        if artifact.name == "tensors":
            return LegacyTensors()
    return StreamPlan()


# --- torch zip -----------------------------------------------------------------------------------
def torch_root(entries: list[ZipEntry]) -> str | None:
    """The archive folder PyTorch reads (from the first entry), when the zip is a torch archive."""
    if not entries:
        return None
    first = entries[0].name
    root = first.split("/", 1)[0] if "/" in first else ""
    prefix = f"{root}/" if root else ""
    if any(e.name == f"{prefix}data.pkl" for e in entries):
        return root
    return None


@register(Kind.ZIP, "pytorch")
def analyze_torch_zip(artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
    """Torch-specific checks on a zip whose layout is a torch archive (the zip walker scans members)."""
    from ..archives.zip_reader import zip_directory  # the zip readers load with the first zip, not a pickle

    with ctx.open(artifact) as stream:
        tracker = ctx.tracker
        try:
            # The whole member budget, not what is left after the zip walk: a zip within budget must
            # never skip its torch checks (the walker itself enforces the target-wide budget).
            entries = zip_directory(artifact, stream, tracker.budgets.max_members, ctx).entries
        except (Malformed, BudgetExceeded):
            return  # the zip walker reports the broken or oversized archive
        root = torch_root(entries)
        if root is None:
            return
        yield from _duplicate_records(artifact, entries, root)
        yield from _torchscript_ops(artifact, stream, entries, root, ctx)


def _member_locations(artifact: Artifact, entries: list[ZipEntry]) -> list[str]:
    """Each entry's location as the zip walker names it (later copies of a name carry ``#n``)."""
    from ..archives.members import display_name

    copies: dict[str, int] = {}
    out = []
    for entry in entries:
        shown = display_name(entry.name)
        copies[shown] = copies.get(shown, 0) + 1
        location = f"{artifact.location}{LEVEL_SEPARATOR}{shown}"
        out.append(location if copies[shown] == 1 else f"{location}#{copies[shown]}")
    return out


def _duplicate_records(artifact: Artifact, entries: list[ZipEntry], root: str) -> Iterator[Finding]:
    prefix = f"{root}/" if root else ""
    locations = _member_locations(artifact, entries)
    groups: dict[str, list[int]] = {}
    for i, entry in enumerate(entries):
        if entry.name.startswith(prefix) and not entry.is_dir:
            groups.setdefault(entry.name, []).append(i)
    for name, indexes in groups.items():
        if len(indexes) < 2:
            continue
        first = indexes[0]
        yield DUPLICATE_RECORD.finding(
            locations[first],
            f"{len(indexes)} copies of torch record {name!r}: torch.load reads the first "
            f"(central-directory entry {first}, {locations[first]}), Python's zipfile the last "
            f"({locations[indexes[-1]]}); every copy was scanned",
        )


def _torchscript_ops(
    artifact: Artifact, stream: BinaryIO, entries: list[ZipEntry], root: str, ctx: ScanContext
) -> Iterator[Finding]:
    from ..archives.zip_and_streams import open_zip_member

    prefix = f"{root}/code/" if root else "code/"
    locations = _member_locations(artifact, entries)
    for i, entry in enumerate(entries):
        if not entry.name.startswith(prefix) or not entry.name.endswith(".py") or entry.encrypted:
            continue
        with open_zip_member(stream, entry, ctx) as member:
            text = read_exact(member, CODE_BYTES).decode("utf-8", "replace")
        seen: dict[str, int] = {}
        for match in _OPS.finditer(text):
            seen.setdefault(match.group(1), match.start())
        for namespace in seen:
            if namespace not in SAFE_TORCHSCRIPT_NAMESPACES:
                yield CUSTOM_OPS.finding(
                    locations[i],
                    f"TorchScript code calls torch.ops.{namespace}: loading needs a native custom-op library "
                    f"registered by the host; that library runs native code",
                )


# --- legacy tar ----------------------------------------------------------------------------------


@register(Kind.TAR, "pytorch")
def analyze_legacy_tar(artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
    """Recognise the legacy tar torch format from its first member names (headers only)."""
    import tarfile

    from ..archives.members import display_name

    names: set[str] = set()
    with ctx.open(artifact) as stream:
        cheap_skips = artifact.size is not None  # no size: a decoded stream, skipped only by decoding it
        try:
            with tarfile.open(fileobj=stream, mode="r:") as tar:
                for _ in range(16):
                    info = tar.next()
                    if info is None:
                        break
                    names.add(display_name(info.name))
                    if not cheap_skips and info.size > LEGACY_TAR_SKIP:
                        break  # legacy torch records come first; do not decode tensor data to find them
        except (tarfile.TarError, EOFError, OSError, UnicodeDecodeError):
            return  # the tar walker reports unreadable archives
    if {"pickle", "storages", "tensors"} <= names:
        yield LEGACY_TAR.finding(
            artifact.location,
            "legacy tar-format torch checkpoint (sys_info/pickle/storages/tensors): torch >= 2.6 refuses it with "
            "weights_only=True, so loading it means weights_only=False, which runs any pickle in it; "
            "torch <= 2.5.1 could be exploited even with weights_only=True (CVE-2025-32434)",
        )
