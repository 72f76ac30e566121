"""7z archives, read with py7zr into memory (never to disk), under size caps.

7z folders are solid-compressed, so a member cannot be windowed in place: the
analyzer lists members (names, links, modes, duplicates through the shared
member policy), checks the declared sizes against the budgets before decoding
anything, then decodes batches of members into capped in-memory buffers and
walks each one. Password-protected archives and members larger than the
memory cap are reported as not analyzed (incomplete).
"""

from __future__ import annotations

import io
import lzma
import stat
import struct
import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO

import py7zr
import py7zr.exceptions
import py7zr.helpers
import py7zr.io

from ..core.artifact import Artifact, Opener
from ..core.budget import BudgetExceeded, MiB
from ..core.findings import Finding
from ..core.kinds import Kind
from ..core.registry import register
from ..core.walker import Malformed, ScanContext
from . import rules
from .members import SEVENZIP, Member, MemberAudit, MemberType, display_name, member_artifact, stop_if_spent
from .streams import check_declared

MEMORY_CAP = 256 * MiB
"""Decoded 7z bytes held in memory at once; a larger member is reported as not analyzed."""
_MAX_LINK_TARGET = 4096
_PY7ZR_ERRORS = (
    py7zr.exceptions.ArchiveError,
    EOFError,
    KeyError,
    IndexError,
    ValueError,
    OSError,
    struct.error,
    lzma.LZMAError,
    zlib.error,
)
"""What py7zr raises (itself or through the codecs it drives) on damaged archives."""
_DECODE_ERRORS = (
    *_PY7ZR_ERRORS,
    py7zr.exceptions.DecompressionError,
    py7zr.exceptions.CrcError,
    py7zr.exceptions.UnsupportedCompressionMethodError,
)


class _CappedBuffer(py7zr.io.Py7zIO):
    """An in-memory member that stops growing at its cap and remembers that it overflowed."""

    def __init__(self, limit: int) -> None:
        self._buffer = io.BytesIO()
        self._limit = limit
        self.overflowed = False

    def write(self, s: bytes | bytearray) -> int:
        room = self._limit - self._buffer.tell()
        if len(s) > room:
            self.overflowed = True
            s = s[: max(room, 0)]
        return self._buffer.write(s)

    def read(self, size: int | None = None) -> bytes:
        return self._buffer.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._buffer.seek(offset, whence)

    def flush(self) -> None:
        return None

    def size(self) -> int:
        return len(self._buffer.getbuffer())

    def value(self) -> bytes:
        return self._buffer.getvalue()


class _Buffers(py7zr.io.WriterFactory):
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.products: dict[str, _CappedBuffer] = {}

    def create(self, filename: str) -> py7zr.io.Py7zIO:
        product = _CappedBuffer(self.limit)
        self.products[filename] = product
        return product


@register(Kind.SEVENZIP, "archives")
def analyze_7z(artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
    """List, audit and walk the members of a 7z archive."""
    with ctx.open(artifact) as stream:
        try:
            archive = py7zr.SevenZipFile(stream, mode="r")  # type: ignore[arg-type]
        except py7zr.exceptions.PasswordRequired:
            yield rules.ENCRYPTED.finding(artifact.location, "7z archive with encrypted headers: nothing can be listed")
            return
        except _PY7ZR_ERRORS as exc:
            raise Malformed(f"not a readable 7z archive: {exc}") from None
        with archive:
            yield from _walk(artifact, archive, stream, ctx)


def _walk(artifact: Artifact, archive: py7zr.SevenZipFile, stream: BinaryIO, ctx: ScanContext) -> Iterator[Finding]:
    files = list(archive.files)
    tracker = ctx.tracker
    if tracker.members + len(files) > tracker.budgets.max_members:
        raise BudgetExceeded("max_members", f"7z archive lists {len(files)} members")
    if artifact.size:
        check_declared(tracker, sum(f.uncompressed or 0 for f in files), artifact.size, "the 7z header")
    encrypted = archive.needs_password()
    if encrypted:
        yield rules.ENCRYPTED.finding(
            artifact.location, "7z archive content is password-protected and cannot be analyzed"
        )
    seen: dict[str, int] = {}
    keys = [_output_key(f.filename, seen) for f in files]
    targets = {} if encrypted else _link_targets(archive, files, keys)
    audit = MemberAudit(artifact, SEVENZIP)
    readable: list[tuple[Any, str, str]] = []  # (file, output key, location)
    for f, key in zip(files, keys, strict=True):
        stop_if_spent(tracker)
        member = _member(f, targets.get(key or "", ""))
        location, findings = audit.add(member)
        yield from findings
        if member.type is not MemberType.FILE or encrypted:
            tracker.charge_member()
        elif key is None:
            yield rules.UNSUPPORTED.finding(location, f"py7zr refuses to decode member {f.filename!r} (unsafe name)")
            tracker.charge_member()
        elif (f.uncompressed or 0) > MEMORY_CAP:
            yield rules.UNSUPPORTED.finding(
                location, f"member {f.filename!r} declares {f.uncompressed} bytes, more than mlgate decodes in memory"
            )
            tracker.charge_member()
        else:
            readable.append((f, key, location))
    yield from audit.finish()
    for batch in _batches(readable):
        yield from _decode_and_walk(artifact, archive, batch, ctx)


def _link_targets(archive: py7zr.SevenZipFile, files: list[Any], keys: list[str | None]) -> dict[str, str]:
    """Symlink targets (a 7z symlink's content is its target path), by output key."""
    links = sorted({f.filename for f, key in zip(files, keys, strict=True) if f.is_symlink and key is not None})
    if not links:
        return {}
    factory = _Buffers(_MAX_LINK_TARGET)
    _extract(archive, links, factory)
    return {key: product.value().decode("utf-8", "replace") for key, product in factory.products.items()}


def _extract(archive: py7zr.SevenZipFile, targets: list[str], factory: _Buffers) -> None:
    archive.reset()
    try:
        archive.extract(targets=targets, factory=factory)
    except _DECODE_ERRORS as exc:
        raise Malformed(f"7z content does not decode: {exc}") from None


def _member(f: Any, link_target: str) -> Member:
    mode = f.posix_mode
    fmt = stat.S_IFMT(f.st_fmt or 0)
    if f.is_directory:
        kind = MemberType.DIR
    elif f.is_symlink:
        kind = MemberType.SYMLINK
    elif f.is_socket:
        kind = MemberType.SOCKET
    elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
        kind = MemberType.DEVICE
    elif fmt == stat.S_IFIFO:
        kind = MemberType.FIFO
    else:
        kind = MemberType.FILE
    return Member(f.filename, kind, link_target, mode)


def _output_key(filename: str, seen: dict[str, int]) -> str | None:
    """The name py7zr's in-memory extraction files a member under (later duplicates get ``_<n>``)."""
    if filename not in seen:
        seen[filename] = 0
        outname = filename
    else:
        outname = f"{filename}_{seen[filename]}"
        seen[filename] += 1
    try:
        return py7zr.helpers.get_sanitized_output_path(outname, None).as_posix()
    except py7zr.exceptions.Bad7zFile:
        return None


def _batches(readable: list[tuple[Any, str, str]]) -> Iterator[list[tuple[Any, str, str]]]:
    batch: list[tuple[Any, str, str]] = []
    held = 0
    for item in readable:
        size = item[0].uncompressed or 0
        if batch and held + size > MEMORY_CAP:
            yield batch
            batch, held = [], 0
        batch.append(item)
        held += size
    if batch:
        yield batch


def _decode_and_walk(
    artifact: Artifact, archive: py7zr.SevenZipFile, batch: list[tuple[Any, str, str]], ctx: ScanContext
) -> Iterator[Finding]:
    factory = _Buffers(min(MEMORY_CAP, ctx.tracker.budgets.max_member_bytes))
    _extract(archive, sorted({f.filename for f, _, _ in batch}), factory)
    for f, key, location in batch:
        stop_if_spent(ctx.tracker)
        product = factory.products.get(key)
        if product is None:
            yield rules.UNSUPPORTED.finding(location, f"py7zr produced no data for member {f.filename!r}")
            ctx.tracker.charge_member()
            continue
        data = product.value()
        ctx.tracker.charge_bytes(len(data))
        if product.overflowed:
            yield rules.UNSUPPORTED.finding(location, f"member {f.filename!r} decodes past its declared size cap")
        ctx.walk(member_artifact(artifact, display_name(f.filename), location, _bytes_opener(data), len(data)))


def _bytes_opener(data: bytes) -> Opener:
    return lambda: io.BytesIO(data)
