"""Archives: the zip walker and the single-stream decompressors (gzip, bzip2, xz, lzma, zlib, zstd, lz4).

Every zip member becomes a child artifact walked in place (stored members are
windows over the archive, compressed ones decode through a budgeted stream);
nothing is extracted to disk. A single compressed stream becomes one child
named after the parent without its compression suffix (``model.pkl.gz`` ->
location ``model.pkl.gz!model.pkl``; ``weights.tgz`` -> ``weights.tgz!weights.tar``),
or ``<decompressed>`` when the name has no such suffix (``model.joblib!<decompressed>``).

Member hazards (names, links, duplicates, modes) come from
``members``; tar lives in ``tar``, 7z in ``sevenzip``. The
lenient zip reader other analyzers use is re-exported here:
``ZipEntry``, ``read_zip_entries``, ``open_zip_member``.
"""

from __future__ import annotations

import stat
import struct
from collections.abc import Iterable, Iterator

from ..core.artifact import Artifact, HeadReader, Opener, SharedStream, read_exact
from ..core.budget import BudgetExceeded
from ..core.findings import Finding
from ..core.kinds import Kind, posix_name, posix_suffix, promise_for
from ..core.records import TYPE_CHECKING
from ..core.registry import register
from ..core.walker import MALFORMED, Malformed, ScanContext
from . import rules
from .members import ZIP, Member, MemberAudit, MemberType, member_artifact, stop_if_spent
from .streams import (
    BZIP2,
    GZIP,
    JOBLIB_ZF,
    LZ4_FRAME,
    LZMA_ALONE,
    XZ,
    ZLIB,
    ZSTD,
    CheckpointIndex,
    Codec,
    CorruptData,
    DecompressedStream,
    check_declared,
    decoded_opener,
)
from .zip_reader import (
    METHOD_CODECS,
    STORED,
    ZipDirectory,
    ZipEntry,
    decoded_member,
    member_stream,
    open_zip_member,
    read_zip_entries,
    zip_directory,
)

if TYPE_CHECKING:
    from typing import BinaryIO

__all__ = ["ZipEntry", "open_zip_member", "read_zip_entries"]

PER_MEMBER_BUDGETS = frozenset({"max_ratio", "max_member_bytes"})
"""Budgets that condemn one member only: the walk records them and moves on to the next member."""

DECOMPRESSED = "<decompressed>"
_STRIP_SUFFIX = {
    ".gz": "", ".gzip": "", ".tgz": ".tar", ".bz2": "", ".tbz": ".tar", ".tbz2": ".tar", ".xz": "", ".txz": ".tar",
    ".lzma": "", ".zst": "", ".zstd": "", ".lz4": "", ".z": "", ".zz": "",
}  # fmt: skip
STREAM_CODECS: dict[Kind, Codec] = {
    Kind.GZIP: GZIP,
    Kind.BZIP2: BZIP2,
    Kind.XZ: XZ,
    Kind.LZMA: LZMA_ALONE,
    Kind.ZLIB: ZLIB,
    Kind.ZSTD: ZSTD,
    Kind.LZ4: LZ4_FRAME,
    Kind.JOBLIB_ZF: JOBLIB_ZF,
}
WEAK_MAGIC = frozenset({Kind.ZLIB, Kind.LZMA, Kind.JOBLIB_ZF})
"""Kinds sniffed from one or two header bytes, which raw tensor data can match by chance."""
_MAX_LINK_TARGET = 4096


# --- zip ---------------------------------------------------------------------------------
@register(Kind.ZIP, "archives")
def analyze_zip(artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
    """Walk every central-directory entry of a zip (every duplicate too) and report member hazards."""
    tracker = ctx.tracker
    with ctx.open(artifact) as stream:
        remaining = max(0, tracker.budgets.max_members - tracker.members)
        directory = zip_directory(artifact, stream, remaining, ctx)
        yield from _structure_findings(artifact, directory)
        members = [_zip_member(stream, entry, ctx) for entry in directory.entries]
    audit = MemberAudit(artifact, ZIP)
    try:
        with SharedStream(artifact) as shared:  # one open of the archive for all its members
            for entry, member in zip(directory.entries, members, strict=True):
                stop_if_spent(tracker)
                location, findings = audit.add(member)
                if findings:
                    yield from findings
                if entry.local_name and entry.local_name != entry.name:
                    yield from _name_mismatch(audit, entry, location)
                if member.type is MemberType.FILE or (member.type is MemberType.DIR and entry.compressed_size):
                    # data in a "directory" is walked too
                    yield from _walk_zip_member(artifact, directory, entry, location, ctx, shared)
                else:
                    tracker.charge_member()
    except (BudgetExceeded, Malformed):
        for finding in audit.finish():
            ctx.add(finding)
        raise
    yield from audit.finish()


def _zip_member(stream: BinaryIO, entry: ZipEntry, ctx: ScanContext) -> Member:
    mode = entry.unix_mode
    kind = MemberType.DIR if entry.is_dir else MemberType.FILE
    target = ""
    if mode is not None:
        fmt = stat.S_IFMT(mode)
        if fmt == stat.S_IFLNK:
            kind = MemberType.SYMLINK
            target = _zip_link_target(stream, entry, ctx)
        elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
            kind = MemberType.DEVICE
        elif fmt == stat.S_IFIFO:
            kind = MemberType.FIFO
        elif fmt == stat.S_IFSOCK:
            kind = MemberType.SOCKET
        elif fmt == stat.S_IFDIR:
            kind = MemberType.DIR
    return Member(entry.name, kind, target, mode, where=f"central-directory entry {entry.index}")


def _zip_link_target(stream: BinaryIO, entry: ZipEntry, ctx: ScanContext) -> str:
    """A zip symlink's content is its target path."""
    try:
        with member_stream(stream, entry, ctx.tracker, owned=False, charge_returned=True) as member:
            return read_exact(member, _MAX_LINK_TARGET).decode("utf-8", "replace")
    except (Malformed, CorruptData):
        return "<unreadable>"


def _name_mismatch(audit: MemberAudit, entry: ZipEntry, location: str) -> Iterator[Finding]:
    yield rules.NAME_MISMATCH.finding(
        location,
        f"central directory names {entry.name!r} but the local header names {entry.local_name!r}: Python's zipfile "
        "refuses the member, PyTorch reads it, and streaming extractors create the local name",
    )
    yield from audit.name_findings(entry.local_name, f"{location} (local header name)")


def _walk_zip_member(
    artifact: Artifact,
    directory: ZipDirectory,
    entry: ZipEntry,
    location: str,
    ctx: ScanContext,
    shared: SharedStream,
) -> Iterator[Finding]:
    if entry.encrypted:
        yield rules.ENCRYPTED.finding(
            location,
            f"member {entry.name!r} is flagged encrypted: its content cannot be analyzed; PyTorch ignores the flag, "
            "so the bytes were also scanned as PyTorch reads them",
        )
    if entry.compress_type != STORED and entry.compress_type not in METHOD_CODECS:
        yield rules.UNSUPPORTED.finding(
            location, f"member {entry.name!r} uses {entry.method_name} compression, which mlgate cannot decode"
        )
        ctx.tracker.charge_member()
        return
    if entry.data_offset < 0:
        yield MALFORMED.finding(location, f"member {entry.name!r} has no valid local header; loaders fail on it")
        ctx.tracker.charge_member()
        return
    if entry.data_offset + entry.compressed_size > directory.archive_size:
        yield MALFORMED.finding(location, f"member {entry.name!r} runs past the end of the archive (truncated)")
        ctx.tracker.charge_member()
        return
    if entry.compress_type != STORED:
        try:
            check_declared(ctx.tracker, entry.file_size, entry.compressed_size, "its central-directory entry")
        except BudgetExceeded as exc:
            _member_budget(exc, location, ctx)
            return
    stored = entry.compress_type == STORED
    opener = _zip_opener(shared, entry, ctx)
    head_reader = _stored_head(shared, entry) if stored else None
    size = entry.compressed_size if stored else None
    ctx.walk(member_artifact(artifact, entry.name, location, opener, size, head_reader))


def _zip_opener(shared: SharedStream, entry: ZipEntry, ctx: ScanContext) -> Opener:
    index = None if entry.compress_type == STORED else CheckpointIndex()  # shared by every open of this member
    tracker = ctx.tracker

    def opener() -> BinaryIO:
        window = shared.window(entry.data_offset, entry.compressed_size)
        return decoded_member(window, entry, tracker, charge_returned=False, index=index)

    return opener


def _stored_head(shared: SharedStream, entry: ZipEntry) -> HeadReader:
    """The first bytes of a stored member: one read of the shared archive stream."""
    start, size = entry.data_offset, entry.compressed_size
    return lambda n: shared.read_at(start, min(n, size))


def _member_budget(exc: BudgetExceeded, location: str, ctx: ScanContext) -> None:
    """Record a per-member budget overrun and skip that member; anything else stops the walk."""
    if exc.budget not in PER_MEMBER_BUDGETS:
        raise exc
    ctx.tracker.charge_member()
    ctx.budget_exceeded(exc, location)


def _structure_findings(artifact: Artifact, directory: ZipDirectory) -> Iterator[Finding]:
    if directory.prefix > 0:
        yield rules.ZIP_STRUCTURE.finding(
            artifact.at(0),
            f"{directory.prefix} bytes precede the first member listed in the central directory: another format "
            "or an unlisted member hides there; readers that scan from the start see it, directory readers do not",
        )
    if directory.other_end_records:
        offsets = ", ".join(str(o) for o in directory.other_end_records[:5])
        yield rules.ZIP_STRUCTURE.finding(
            artifact.at(directory.other_end_records[0]),
            f"more than one end-of-central-directory record (also at offset {offsets}): a second archive is "
            "embedded or appended and readers pick different ones",
        )
    if directory.trailing > 0:
        yield rules.ZIP_STRUCTURE.finding(
            artifact.at(directory.archive_size - directory.trailing),
            f"{directory.trailing} bytes follow the end record and its comment (appended data, polyglot)",
        )
    if directory.declared_entries != len(directory.entries):
        yield rules.ZIP_STRUCTURE.finding(
            artifact.at(directory.eocd_offset),
            f"the end record counts {directory.declared_entries} members but the central directory holds "
            f"{len(directory.entries)}: PyTorch (miniz) and Python's zipfile list different members",
        )
    overlaps = _overlaps(directory.entries)
    if overlaps:
        pairs = "; ".join(f"{a.name!r} and {b.name!r}" for a, b in overlaps[:3])
        yield rules.ZIP_STRUCTURE.finding(
            artifact.at(overlaps[0][1].header_offset),
            f"members share bytes ({pairs}): overlapping entries build zip bombs and let readers disagree",
        )


def _overlaps(entries: list[ZipEntry]) -> list[tuple[ZipEntry, ZipEntry]]:
    located = sorted((e for e in entries if e.data_offset >= 0), key=lambda e: e.header_offset)
    out = []
    for prev, cur in zip(located, located[1:], strict=False):
        if cur.header_offset < prev.data_offset + prev.compressed_size:
            out.append((prev, cur))
    return out


# --- single compressed streams -----------------------------------------------------------
def decompressed_name(name: str) -> str:
    """The child name of a decompressed stream: the parent's base name without its compression suffix."""
    base = posix_name(name.replace("\\", "/"))
    suffix = posix_suffix(base)
    replacement = _STRIP_SUFFIX.get(suffix.lower())
    if replacement is None or len(base) == len(suffix):
        return DECOMPRESSED
    return base[: -len(suffix)] + replacement


def analyze_stream(artifact: Artifact, ctx: ScanContext) -> Iterable[Finding]:
    """Decode a single compressed stream and walk the result as one child artifact."""
    codec = STREAM_CODECS[artifact.kind]  # type: ignore[index]
    promised = artifact.loaded_as or artifact.name
    promise = promise_for(promised)
    if artifact.kind in WEAK_MAGIC and not _decodes(artifact, codec, ctx):
        if promise is not None and promise.strict:  # a .joblib whose zlib/lzma header leads nowhere
            raise Malformed(f"named like a {promise.label}, but its {codec.name} stream does not decode", 0)
        return ()  # raw bytes that only look like a zlib/lzma header: no loader can decode them either
    declared = _declared_size(artifact, ctx)
    if declared is not None and artifact.size:
        check_declared(ctx.tracker, declared, artifact.size, f"the {codec.name} header")  # honest bombs stop here
    name = decompressed_name(artifact.name)
    opener = decoded_opener(artifact.open, codec, ctx.tracker)
    child = member_artifact(artifact, name, f"{artifact.location}!{name}", opener, None)
    if promise is not None and promise.pickle_loader:
        child.loaded_as = promised  # joblib.load unpickles what the stream holds, whatever it sniffs as
    ctx.walk(child)
    return ()


for _kind in STREAM_CODECS:
    register(_kind, "archives")(analyze_stream)


def _decodes(artifact: Artifact, codec: Codec, ctx: ScanContext) -> bool:
    """Whether the stream yields at least one decoded byte."""
    try:
        with DecompressedStream(artifact.open(), codec, ctx.tracker, charge_returned=True) as stream:
            return bool(stream.read(1))
    except CorruptData:
        return False


def _declared_size(artifact: Artifact, ctx: ScanContext) -> int | None:
    """The decoded size a stream header or trailer announces, when it is cheap to read."""
    if artifact.size is None or artifact.size < 18:
        return None
    with ctx.open(artifact) as stream:
        if artifact.kind is Kind.GZIP:  # ISIZE trailer: size of the last member modulo 2**32
            stream.seek(artifact.size - 4)
            return struct.unpack("<I", read_exact(stream, 4))[0]
        head = read_exact(stream, 32)
    if artifact.kind is Kind.LZMA:
        (size,) = struct.unpack("<Q", head[5:13])
        return None if size == (1 << 64) - 1 else size
    if artifact.kind is Kind.ZSTD:
        import zstandard  # the codecs load with the first stream of their kind

        try:
            size = zstandard.frame_content_size(head)
        except zstandard.ZstdError:
            return None
        return size if size >= 0 else None
    if artifact.kind is Kind.LZ4:
        import lz4.frame

        try:
            size = lz4.frame.get_frame_info(head)["content_size"]
        except RuntimeError:
            return None
        return size or None
    return None
