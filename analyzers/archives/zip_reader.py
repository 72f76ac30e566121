"""A lenient zip reader that sees what PyTorch's reader sees.

It keeps duplicate names, ignores CRCs and general-purpose flag bits, accepts
any root folder, is ZIP64 aware, and reads each member's data offset from its
own local header (as miniz does). It also records the structural facts where
readers disagree (prefix bytes, extra end records, overlapping members, a
local name that differs from the central directory) so the archive analyzer
can report them. Members are never extracted: stored members are
``SliceStream`` windows over the archive stream, compressed ones decode
through a budgeted ``DecompressedStream``.

Public interface (other analyzers import it): ``ZipEntry``,
``read_zip_entries(stream, max_entries)``, ``open_zip_member(stream, entry, ctx)``.
"""

from __future__ import annotations

import bisect
import io
import struct
from dataclasses import dataclass, field

from ..core.artifact import OwnedSlice, SliceStream, read_exact
from ..core.budget import BudgetExceeded, BudgetTracker
from ..core.records import TYPE_CHECKING
from ..core.walker import Malformed
from .streams import BZIP2, DEFLATE, ZIP_LZMA, ZSTD, CheckpointIndex, Codec, DecompressedStream

if TYPE_CHECKING:
    from typing import BinaryIO

    from ..core.artifact import Artifact
    from ..core.walker import ScanContext

STORED = 0
METHOD_CODECS: dict[int, Codec] = {8: DEFLATE, 12: BZIP2, 14: ZIP_LZMA, 93: ZSTD}
"""Compression methods mlgate decodes (PyTorch itself reads only stored and deflate)."""
METHOD_NAMES = {0: "stored", 8: "deflate", 9: "deflate64", 12: "bzip2", 14: "lzma", 93: "zstd", 95: "xz", 99: "AES"}

FLAG_ENCRYPTED = 0x1
FLAG_UTF8 = 0x800
SYSTEM_UNIX = 3

MAX_ENTRIES = 1_000_000
"""Central-directory entries ``read_zip_entries`` accepts before calling the archive malformed."""

_EOCD = b"PK\x05\x06"
_EOCD64 = b"PK\x06\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_CENTRAL = b"PK\x01\x02"
_LOCAL = b"PK\x03\x04"
_EOCD_STRUCT = struct.Struct("<4s4H2LH")
_EOCD64_STRUCT = struct.Struct("<4sQ2H2L4Q")
_LOCATOR_STRUCT = struct.Struct("<4sLQL")
_CENTRAL_STRUCT = struct.Struct("<4s4B4HL2L5H2L")
_LOCAL_STRUCT = struct.Struct("<4s2B4HL2L2H")
_MAX_COMMENT = 0xFFFF
_U32 = 0xFFFFFFFF


@dataclass
class ZipEntry:
    """One central-directory entry, with its data located through its own local header."""

    name: str  # central-directory name (utf-8 if flag bit 11, else cp437, as zipfile does)
    local_name: str  # name in the local file header ("" when the local header is missing)
    index: int  # 0-based position in the central directory
    header_offset: int  # offset of the local file header
    data_offset: int  # offset of the member data (after local header + name + extra); -1 if no local header
    compress_type: int
    compressed_size: int
    file_size: int
    flag_bits: int
    external_attr: int
    create_system: int

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/")

    @property
    def encrypted(self) -> bool:
        return bool(self.flag_bits & FLAG_ENCRYPTED)

    @property
    def unix_mode(self) -> int | None:
        """``st_mode`` from the external attributes when the creator was Unix."""
        return (self.external_attr >> 16) if self.create_system == SYSTEM_UNIX else None

    @property
    def method_name(self) -> str:
        return METHOD_NAMES.get(self.compress_type, f"method {self.compress_type}")


@dataclass
class ZipDirectory:
    """Everything read from a zip's end records and central directory."""

    entries: list[ZipEntry]
    archive_size: int
    eocd_offset: int
    declared_entries: int  # entry count in the end record (what miniz/PyTorch iterate over)
    prefix: int  # bytes before the first member's local header (or before the directory if empty)
    trailing: int  # bytes after the end record and its comment
    other_end_records: list[int] = field(default_factory=list)  # further EOCD signatures outside member data


def read_zip_entries(stream: BinaryIO, max_entries: int = MAX_ENTRIES) -> list[ZipEntry]:
    """Every central-directory entry in order, duplicates kept; raises ``Malformed`` when there is no directory.

    A directory whose end record lists more than ``max_entries`` raises ``BudgetExceeded``
    (``max_members``) before a single entry is parsed.
    """
    return read_zip_directory(stream, max_entries).entries


def open_zip_member(stream: BinaryIO, entry: ZipEntry, ctx: ScanContext) -> BinaryIO:
    """The member's bytes as PyTorch reads them: stored -> ``SliceStream``; compressed -> budgeted decoder.

    Decoded bytes are charged to ``ctx``'s byte budget and checked against its
    size and ratio budgets (``BudgetExceeded``). Raises ``Malformed`` for a
    missing local header or a compression method mlgate cannot decode.
    """
    return member_stream(stream, entry, ctx.tracker, owned=False, charge_returned=True)


def member_stream(
    base: BinaryIO,
    entry: ZipEntry,
    tracker: BudgetTracker,
    *,
    owned: bool,
    charge_returned: bool,
    index: CheckpointIndex | None = None,
) -> BinaryIO:
    """``open_zip_member`` with the knobs the archive walker needs (``owned``: close ``base`` with the result)."""
    if entry.data_offset < 0:
        raise Malformed(f"zip member {entry.name!r} has no valid local header", entry.header_offset)
    window = (OwnedSlice if owned else SliceStream)(base, entry.data_offset, entry.compressed_size)
    return decoded_member(window, entry, tracker, charge_returned=charge_returned, index=index)  # type: ignore[arg-type]


def decoded_member(
    window: BinaryIO,
    entry: ZipEntry,
    tracker: BudgetTracker,
    *,
    charge_returned: bool,
    index: CheckpointIndex | None = None,
) -> BinaryIO:
    """The member's bytes from ``window``, its raw data (closed with the result): stored members as
    they are, compressed ones through a budgeted decoder; ``Malformed`` for a method mlgate cannot decode."""
    if entry.compress_type == STORED:
        return window
    codec = METHOD_CODECS.get(entry.compress_type)
    if codec is None:
        raise Malformed(f"zip member {entry.name!r} uses unsupported compression ({entry.method_name})")
    return DecompressedStream(  # type: ignore[return-value]
        window, codec, tracker, limit=entry.file_size, charge_returned=charge_returned, index=index
    )


def zip_directory(artifact: Artifact, stream: BinaryIO, max_entries: int, ctx: ScanContext) -> ZipDirectory:
    """``read_zip_directory`` for ``artifact``, parsed once however many zip analyzers read it.

    A cached directory is subject to the caller's ``max_entries`` exactly as a fresh
    parse would be; failed parses are not cached (each caller meets the error itself).
    """
    cache = ctx.parsed(artifact)
    directory = cache.get("zip_directory")
    if not isinstance(directory, ZipDirectory):
        directory = read_zip_directory(stream, max_entries)
        cache["zip_directory"] = directory
    elif directory.declared_entries > max_entries:
        raise BudgetExceeded(
            "max_members", f"zip directory lists {directory.declared_entries} members (limit {max_entries})"
        )
    return directory


def read_zip_directory(stream: BinaryIO, max_entries: int) -> ZipDirectory:
    """Parse the end records, the central directory and every local header.

    Raises ``Malformed`` when no usable directory exists and ``BudgetExceeded``
    (budget ``max_members``) when the directory lists more than ``max_entries``.
    """
    size = stream.seek(0, io.SEEK_END)
    eocd_offset, eocd, tail, tail_start = _find_end_record(stream, size)
    _sig, disk, cd_disk, _disk_count, count, cd_size, cd_offset, comment_len = eocd
    directory_end = eocd_offset
    zip64 = _read_zip64_end(stream, eocd_offset)
    if zip64 is not None:
        directory_end, count, cd_size, cd_offset = zip64
    elif disk != 0 or cd_disk != 0:
        raise Malformed("multi-disk (spanned) zip archives are not supported", eocd_offset)
    if count > max_entries:
        raise BudgetExceeded("max_members", f"zip directory lists {count} members (limit {max_entries})")
    concat = directory_end - cd_size - cd_offset  # bytes prepended to the archive (zipfile adds them back)
    if concat < 0 or cd_offset + concat < 0:
        raise Malformed("zip central directory lies outside the file", eocd_offset)
    entries = _read_central(stream, cd_offset + concat, cd_size, concat, size, max_entries)
    first = min((e.header_offset for e in entries), default=cd_offset + concat)
    trailing = max(0, size - (eocd_offset + _EOCD_STRUCT.size + comment_len))
    others = _other_end_records(tail, tail_start, eocd_offset, entries)
    return ZipDirectory(entries, size, eocd_offset, count, first, trailing, others)


def _find_end_record(stream: BinaryIO, size: int) -> tuple[int, tuple, bytes, int]:
    """The last end-of-central-directory record in the final 64 KiB (zipfile and miniz both take the last)."""
    if size < _EOCD_STRUCT.size:
        raise Malformed("too short to be a zip archive")
    tail_start = max(0, size - _EOCD_STRUCT.size - _MAX_COMMENT)
    stream.seek(tail_start)
    tail = read_exact(stream, size - tail_start)
    pos = tail.rfind(_EOCD, 0, len(tail) - _EOCD_STRUCT.size + 4)
    while pos >= 0 and len(tail) - pos < _EOCD_STRUCT.size:
        pos = tail.rfind(_EOCD, 0, pos)
    if pos < 0:
        raise Malformed("no zip end-of-central-directory record (truncated or not a zip)")
    record = _EOCD_STRUCT.unpack_from(tail, pos)
    return tail_start + pos, record, tail, tail_start


def _read_zip64_end(stream: BinaryIO, eocd_offset: int) -> tuple[int, int, int, int] | None:
    """(record offset, entry count, directory size, directory offset) from a ZIP64 end record, if any."""
    if eocd_offset < _LOCATOR_STRUCT.size:
        return None
    stream.seek(eocd_offset - _LOCATOR_STRUCT.size)
    raw = read_exact(stream, _LOCATOR_STRUCT.size)
    if len(raw) < _LOCATOR_STRUCT.size or not raw.startswith(_EOCD64_LOCATOR):
        return None
    _sig, _disk, record_offset, _disks = _LOCATOR_STRUCT.unpack(raw)
    # zipfile expects the record right before the locator; miniz uses the locator's offset. Try both.
    for where in (eocd_offset - _LOCATOR_STRUCT.size - _EOCD64_STRUCT.size, record_offset):
        if where < 0:
            continue
        stream.seek(where)
        raw64 = read_exact(stream, _EOCD64_STRUCT.size)
        if len(raw64) == _EOCD64_STRUCT.size and raw64.startswith(_EOCD64):
            fields = _EOCD64_STRUCT.unpack(raw64)
            return where, fields[7], fields[8], fields[9]
    raise Malformed("ZIP64 end-record locator points to no ZIP64 end record", eocd_offset)


class _Reader:
    """Sequential reads from a region of a stream through a 1 MiB buffer (other reads may interleave)."""

    def __init__(self, stream: BinaryIO, start: int, length: int) -> None:
        self._stream = stream
        self._pos = start
        self._left = length
        self._buf = b""
        self._at = 0

    def peek(self, n: int) -> tuple[bytes, int]:
        """The buffer and the offset in it of the next ``n`` bytes (fewer at the end); nothing is consumed."""
        while len(self._buf) - self._at < n and self._left > 0:
            self._stream.seek(self._pos)
            chunk = read_exact(self._stream, min(self._left, 1 << 20))
            if not chunk:
                self._left = 0
                break
            self._pos += len(chunk)
            self._left -= len(chunk)
            self._buf = self._buf[self._at :] + chunk
            self._at = 0
        return self._buf, self._at

    def skip(self, n: int) -> None:
        """Consume ``n`` bytes (at most what ``peek`` made available)."""
        self._at = min(self._at + n, len(self._buf))


def _read_central(
    stream: BinaryIO, start: int, length: int, concat: int, size: int, max_entries: int
) -> list[ZipEntry]:
    """Parse directory entries until ``length`` bytes are used, as zipfile does (duplicates kept)."""
    reader = _Reader(stream, start, length)
    blocks = _Blocks(stream)
    entries: list[ZipEntry] = []
    used = 0
    fixed = _CENTRAL_STRUCT.size
    while used < length:
        buf, at = reader.peek(fixed)
        if len(buf) - at < fixed or not buf.startswith(_CENTRAL, at):
            raise Malformed(f"zip central directory entry {len(entries)} is damaged", start + used)
        (_sig, _cver, system, _ever, _res, flags, method, _t, _d, _crc, csize, usize, name_len, extra_len,
         comment_len, _disk, _iattr, eattr, offset) = _CENTRAL_STRUCT.unpack_from(buf, at)  # fmt: skip
        record = fixed + name_len + extra_len + comment_len
        buf, at = reader.peek(record)  # a record cut short by the directory's end keeps what is there
        raw_name = buf[at + fixed : at + fixed + name_len]
        extra = buf[at + fixed + name_len : at + fixed + name_len + extra_len]
        reader.skip(record)
        used += record
        if len(entries) >= max_entries:
            raise BudgetExceeded("max_members", f"zip directory lists more than {max_entries} members")
        if _U32 in (usize, csize, offset):  # only saturated fields take their value from the ZIP64 extra
            usize, csize, offset = _zip64_sizes(extra, usize, csize, offset)
        local_name, data_offset = _local_header(blocks, offset + concat, size)
        entries.append(
            ZipEntry(
                name=decode_name(raw_name, flags),
                local_name=local_name,
                index=len(entries),
                header_offset=offset + concat,
                data_offset=data_offset,
                compress_type=method,
                compressed_size=csize,
                file_size=usize,
                flag_bits=flags,
                external_attr=eattr,
                create_system=system,
            )
        )
    return entries


def decode_name(raw: bytes, flags: int) -> str:
    """A member name as zipfile decodes it (utf-8 with flag bit 11, else cp437); bad utf-8 is replaced."""
    if raw.isascii():  # both encodings agree on ASCII, which decodes without a codec lookup
        return raw.decode("ascii")
    return raw.decode("utf-8", "replace") if flags & FLAG_UTF8 else raw.decode("cp437")


def _zip64_sizes(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int, int]:
    """Apply the ZIP64 extra field (id 1): 64-bit values for the fields saturated at 0xFFFFFFFF."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<2H", extra, pos)
        body = extra[pos + 4 : pos + 4 + length]
        if tag == 1:
            values = [v for (v,) in struct.iter_unpack("<Q", body[: len(body) // 8 * 8])]
            if usize == _U32 and values:
                usize = values.pop(0)
            if csize == _U32 and values:
                csize = values.pop(0)
            if offset == _U32 and values:
                offset = values.pop(0)
            break
        pos += 4 + length
    return usize, csize, offset


class _Blocks:
    """Reads small records at scattered offsets through one cached 1 KiB block (local headers sit close together)."""

    BLOCK = 1024

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._start = 0
        self._data = b""

    def at(self, offset: int, n: int) -> tuple[bytes, int]:
        """A block holding the ``n`` bytes at ``offset`` (fewer at the end) and where they start in it."""
        rel = offset - self._start
        if rel < 0 or rel + n > len(self._data):
            self._stream.seek(offset)
            self._data = read_exact(self._stream, max(n, self.BLOCK))
            self._start, rel = offset, 0
        return self._data, rel


def _local_header(blocks: _Blocks, header_offset: int, size: int) -> tuple[str, int]:
    """(local name, data offset) from the local header miniz reads; ("", -1) when it is missing."""
    fixed = _LOCAL_STRUCT.size
    if header_offset + fixed > size:
        return "", -1
    data, at = blocks.at(header_offset, fixed)
    if len(data) - at < fixed or not data.startswith(_LOCAL, at):
        return "", -1
    fields = _LOCAL_STRUCT.unpack_from(data, at)
    flags, name_len, extra_len = fields[3], fields[10], fields[11]
    data, at = blocks.at(header_offset + fixed, name_len)
    local_name = decode_name(data[at : at + name_len], flags)
    return local_name, header_offset + fixed + name_len + extra_len


def _other_end_records(tail: bytes, tail_start: int, eocd_offset: int, entries: list[ZipEntry]) -> list[int]:
    """Offsets of further end-record signatures in the tail that no member's data explains."""
    spans = sorted((e.data_offset, e.data_offset + e.compressed_size) for e in entries if e.data_offset >= 0)
    starts = [s for s, _ in spans]
    out = []
    pos = tail.find(_EOCD)
    while pos >= 0:
        where = tail_start + pos
        if where != eocd_offset and not _inside_spans(where, spans, starts):
            out.append(where)
        pos = tail.find(_EOCD, pos + 1)
    return out


def _inside_spans(offset: int, spans: list[tuple[int, int]], starts: list[int]) -> bool:
    i = bisect.bisect_right(starts, offset) - 1
    return i >= 0 and spans[i][0] <= offset < spans[i][1]
