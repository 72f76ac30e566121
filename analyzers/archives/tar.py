"""Tar archives (plain, or decoded from gzip/bz2/xz by the stream analyzers), NeMo ``.nemo`` included.

Headers are parsed by Python's ``tarfile`` (the library NeMo and most
consumers extract with), reading headers only: member data is never read
here, each regular member becomes a child artifact over its byte range and is
walked in place. Links, devices, modes, names and duplicates (last written
wins on extraction) go through the shared member policy, with escapes rated
as file writes because tar consumers extract to disk.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from typing import BinaryIO

from ..core.artifact import Artifact, Opener, OwnedSlice
from ..core.budget import BudgetExceeded, MiB
from ..core.findings import Finding
from ..core.kinds import Kind
from ..core.registry import register
from ..core.walker import MALFORMED, Malformed, ScanContext
from . import rules
from .members import TAR, Member, MemberAudit, MemberType, display_name, member_artifact, stop_if_spent

MAX_HEADER_READ = 16 * MiB
"""Largest single header read (PAX records, GNU long names) accepted; tarfile would hold it in memory."""


class _HeaderReads:
    """The file object tarfile reads headers from; refuses header reads that would fill memory."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0 or n > MAX_HEADER_READ:
            raise Malformed(f"tar header block claims {n} bytes (more than {MAX_HEADER_READ})", self._raw.tell())
        return self._raw.read(n)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()


@register(Kind.TAR, "archives")
def analyze_tar(artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
    """Walk every tar member in archive order and report member hazards."""
    audit = MemberAudit(artifact, TAR)
    try:
        with ctx.open(artifact) as raw:
            try:
                tar = tarfile.open(fileobj=_HeaderReads(raw), mode="r:")  # type: ignore[call-overload]
            except tarfile.TarError as exc:
                raise Malformed(f"not a readable tar archive: {exc}") from None
            while True:
                stop_if_spent(ctx.tracker)
                try:
                    info = tar.next()
                except tarfile.TarError as exc:
                    raise Malformed(f"damaged tar header: {exc}", tar.offset) from None
                if info is None:
                    break
                yield from _member(artifact, info, audit, ctx)
    except (BudgetExceeded, Malformed):
        for finding in audit.finish():
            ctx.add(finding)
        raise
    yield from audit.finish()


def _member(artifact: Artifact, info: tarfile.TarInfo, audit: MemberAudit, ctx: ScanContext) -> Iterator[Finding]:
    member = Member(info.name, _type(info), info.linkname, info.mode, where=f"header at offset {info.offset}")
    location, findings = audit.add(member)
    yield from findings
    if member.type is not MemberType.FILE:
        ctx.tracker.charge_member()
        return
    if info.sparse is not None:
        yield rules.UNSUPPORTED.finding(
            location, f"member {info.name!r} is a GNU sparse file, which mlgate does not read"
        )
        ctx.tracker.charge_member()
        return
    if artifact.size is not None and info.offset_data + info.size > artifact.size:
        yield MALFORMED.finding(location, f"member {info.name!r} runs past the end of the archive (truncated)")
        ctx.tracker.charge_member()
        return
    child = member_artifact(artifact, display_name(info.name), location, _opener(artifact, info), info.size)
    ctx.walk(child)


def _type(info: tarfile.TarInfo) -> MemberType:
    if info.isdir():
        return MemberType.DIR
    if info.issym():
        return MemberType.SYMLINK
    if info.islnk():
        return MemberType.HARDLINK
    if info.ischr() or info.isblk():
        return MemberType.DEVICE
    if info.isfifo():
        return MemberType.FIFO
    return MemberType.FILE  # regular, contiguous, and unknown types (tarfile extracts those as files)


def _opener(parent: Artifact, info: tarfile.TarInfo) -> Opener:
    start, length = info.offset_data, info.size

    def opener() -> BinaryIO:
        return OwnedSlice(parent.open(), start, length)  # type: ignore[return-value]

    return opener
