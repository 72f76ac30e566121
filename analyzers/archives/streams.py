"""Budgeted streaming decompression: a compressed byte stream in, a seekable decoded stream out.

``DecompressedStream`` decodes on demand and never holds more than one output
chunk. Every produced byte is checked against the target's budgets
(``BudgetTracker.check_ratio``: per-member size and expansion ratio), so a bomb
stops with ``BudgetExceeded`` after at most one chunk past the limit. Seeking
backwards replays the stream from the nearest checkpoint (zlib-family codecs
snapshot their state every ``CHECKPOINT_SPACING`` output bytes; the others replay
from the start); bytes decoded only to be skipped are charged to the byte budget,
so replay work is bounded too. Corrupt compressed data raises ``CorruptData``
(an ``OSError``), which the walker reports as unreadable, never as clean.
"""

from __future__ import annotations

import bisect
import bz2
import io
import lzma
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from ..core.artifact import Opener, read_exact, seek_position
from ..core.budget import BudgetExceeded, BudgetTracker, MiB
from ..core.kinds import JOBLIB_ZF_LENGTH, joblib_zf_header
from ..core.records import TYPE_CHECKING, NamedTuple

CHECKPOINT_SPACING = 2 * MiB
"""Output distance between saved decoder states (zlib-family codecs only)."""
MAX_CHECKPOINTS = 1024
"""At most this many states per stream (about 40 KB each)."""
_IN_CHUNK = 64 * 1024
_OUT_CHUNK = 256 * 1024

GZIP_MAGIC = b"\x1f\x8b"
BZIP2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"
LZ4_MAGIC = b"\x04\x22\x4d\x18"


if TYPE_CHECKING:  # typing loads for type checkers only (start-up, issue 19)
    from typing import Any, BinaryIO, Protocol

    class _Decoder(Protocol):
        consumed: int  # compressed bytes pulled from the source so far

        def read(self, n: int) -> bytes:
            """Up to ``n`` (> 0) decoded bytes; ``b""`` at the end of the stream."""
            ...

        def snapshot(self) -> Callable[[BinaryIO], _Decoder] | None:
            """A function that resumes an equivalent decoder on a source positioned at ``consumed``."""
            ...


class CorruptData(OSError):
    """Compressed bytes that do not decode; the victim loader would fail on them too."""


class Codec(NamedTuple):
    """How to decode one compressed format: ``start(source)`` reads from the source's current position."""

    name: str
    start: Callable[[BinaryIO], _Decoder]


class _Pulling:
    """Pulls compressed input from the source in chunks and counts it (``consumed``, for the ratio)."""

    def __init__(self, source: BinaryIO, consumed: int = 0) -> None:
        self._source = source
        self.consumed = consumed

    def _pull(self) -> bytes:
        data = self._source.read(_IN_CHUNK)
        self.consumed += len(data)
        return data

    def _after_end(self, unused: bytes | None, need: int) -> bytes:
        """The bytes after a finished stream, at least ``need`` of them unless the source ends."""
        rest = unused or b""
        while len(rest) < need:
            more = self._pull()
            if not more:
                break
            rest += more
        return rest


class _ZlibDecoder(_Pulling):
    """Deflate, zlib and gzip (``wbits`` selects the framing); gzip may hold several members."""

    def __init__(
        self, source: BinaryIO, wbits: int, multi: bool, state: Any = None, tail: bytes = b"", consumed: int = 0
    ):
        super().__init__(source, consumed)
        self._wbits = wbits
        self._multi = multi
        self._d = state if state is not None else zlib.decompressobj(wbits)
        self._tail = tail

    def read(self, n: int) -> bytes:
        while True:
            if self._d.eof:
                rest = self._after_end(self._d.unused_data, len(GZIP_MAGIC))
                if not self._multi or not rest.startswith(GZIP_MAGIC):
                    return b""  # gzip pads with zeros; anything else after the last member is ignored too
                self._d = zlib.decompressobj(self._wbits)
                self._tail = rest
            if not self._tail:
                self._tail = self._pull()
                if not self._tail:
                    raise CorruptData("compressed stream ends before its end marker (truncated)")
            try:
                out = self._d.decompress(self._tail, n)
            except zlib.error as exc:
                raise CorruptData(f"corrupt deflate data: {exc}") from None
            self._tail = self._d.unconsumed_tail
            if out:
                return out

    def snapshot(self) -> Callable[[BinaryIO], _Decoder] | None:
        state, tail, consumed = self._d.copy(), self._tail, self.consumed
        wbits, multi = self._wbits, self._multi
        return lambda source: _ZlibDecoder(source, wbits, multi, state.copy(), tail, consumed)


class _BufferingDecoder(_Pulling):
    """bz2, lzma/xz and LZ4-frame decompressor objects (they buffer input and expose ``needs_input``)."""

    def __init__(self, source: BinaryIO, new: Callable[[], Any], next_magic: bytes | None, consumed: int = 0):
        super().__init__(source, consumed)
        self._new = new
        self._next_magic = next_magic  # concatenated streams/frames continue when the rest starts with it
        self._d = new()

    def read(self, n: int) -> bytes:
        while True:
            if self._d.eof:
                if self._next_magic is None:
                    return b""
                rest = self._after_end(self._d.unused_data, len(self._next_magic))
                if not rest.startswith(self._next_magic):
                    return b""
                self._d = self._new()
                data = rest
            elif self._d.needs_input:
                data = self._pull()
                if not data:
                    raise CorruptData("compressed stream ends before its end marker (truncated)")
            else:
                data = b""
            try:
                out = self._d.decompress(data, max_length=n)
            except (OSError, EOFError, lzma.LZMAError, RuntimeError, ValueError) as exc:
                raise CorruptData(f"corrupt compressed data: {exc}") from None
            if out:
                return out

    def snapshot(self) -> None:
        return None


class _Counting(io.RawIOBase):
    """Counts the bytes a library pulls from a source (for the expansion ratio)."""

    def __init__(self, source: BinaryIO) -> None:
        super().__init__()
        self._source = source
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._source.read(len(buffer))
        memoryview(buffer)[: len(data)] = data
        self.count += len(data)
        return len(data)


class _ZstdDecoder:
    """Zstandard frames (several frames are read in sequence, as ``zstd -d`` does)."""

    def __init__(self, source: BinaryIO):
        import zstandard  # loaded with the first zstd stream

        self._error = zstandard.ZstdError
        self._counting = _Counting(source)
        self._reader = zstandard.ZstdDecompressor().stream_reader(
            self._counting, read_size=_IN_CHUNK, read_across_frames=True, closefd=False
        )

    @property
    def consumed(self) -> int:
        return self._counting.count

    def read(self, n: int) -> bytes:
        try:
            return self._reader.read(n)
        except self._error as exc:
            raise CorruptData(f"corrupt zstd data: {exc}") from None

    def snapshot(self) -> None:
        return None


def _zip_lzma(source: BinaryIO) -> _Decoder:
    """Zip method 14: a 4-byte header (version, properties size), LZMA1 properties, then a raw stream."""
    header = read_exact(source, 4)
    if len(header) < 4:
        raise CorruptData("zip LZMA member too short for its header")
    (props_size,) = struct.unpack("<H", header[2:4])
    props = read_exact(source, props_size)
    if props_size < 5 or len(props) < props_size or props[0] >= 9 * 5 * 5:
        raise CorruptData("zip LZMA member has invalid properties")
    lc, rest = props[0] % 9, props[0] // 9
    lp, pb = rest % 5, rest // 5
    (dict_size,) = struct.unpack("<I", props[1:5])
    filters = [{"id": lzma.FILTER_LZMA1, "dict_size": dict_size, "lc": lc, "lp": lp, "pb": pb}]
    return _BufferingDecoder(
        source, lambda: lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=filters), None, consumed=4 + props_size
    )


def _joblib_zf(source: BinaryIO) -> _Decoder:
    """joblib's compatibility format: ``ZF``, a 19-character hex length, an optional space, zlib data."""
    head = read_exact(source, 2 + JOBLIB_ZF_LENGTH + 1)
    skip = joblib_zf_header(head)
    if skip is None:
        raise CorruptData("joblib ZF header is not valid")
    return _ZlibDecoder(source, 15, multi=False, tail=head[skip:], consumed=len(head))


DEFLATE = Codec("deflate", lambda s: _ZlibDecoder(s, -15, multi=False))
ZLIB = Codec("zlib", lambda s: _ZlibDecoder(s, 15, multi=False))
GZIP = Codec("gzip", lambda s: _ZlibDecoder(s, 31, multi=True))
BZIP2 = Codec("bzip2", lambda s: _BufferingDecoder(s, bz2.BZ2Decompressor, BZIP2_MAGIC))
XZ = Codec("xz", lambda s: _BufferingDecoder(s, lambda: lzma.LZMADecompressor(lzma.FORMAT_XZ), XZ_MAGIC))
LZMA_ALONE = Codec("lzma", lambda s: _BufferingDecoder(s, lambda: lzma.LZMADecompressor(lzma.FORMAT_ALONE), None))
LZ4_FRAME = Codec("lz4", lambda s: _BufferingDecoder(s, _lz4_decompressor, LZ4_MAGIC))
ZSTD = Codec("zstd", _ZstdDecoder)
ZIP_LZMA = Codec("lzma", _zip_lzma)
JOBLIB_ZF = Codec("joblib-zf", _joblib_zf)


def _lz4_decompressor() -> Any:
    import lz4.frame  # loaded with the first lz4 stream

    return lz4.frame.LZ4FrameDecompressor()


class _Checkpoint(NamedTuple):
    """A decoder state to resume from: ``out_pos`` decoded bytes done, ``in_pos`` compressed bytes read."""

    out_pos: int
    resume: Callable[[BinaryIO], _Decoder]
    in_pos: int


@dataclass
class CheckpointIndex:
    """Decoder states and the decoded length, shared by every open of one decoded artifact."""

    points: list[_Checkpoint] = field(default_factory=list)
    length: int | None = None

    def best(self, pos: int) -> _Checkpoint | None:
        i = bisect.bisect_right([p.out_pos for p in self.points], pos)
        return self.points[i - 1] if i else None

    def offer(self, out_pos: int, decoder: _Decoder) -> None:
        last = self.points[-1].out_pos if self.points else 0
        if out_pos - last < CHECKPOINT_SPACING or len(self.points) >= MAX_CHECKPOINTS:
            return
        resume = decoder.snapshot()
        if resume is not None:
            self.points.append(_Checkpoint(out_pos, resume, decoder.consumed))


class DecompressedStream(io.RawIOBase):
    """The decoded bytes of ``source`` (read from its offset 0), budgeted and seekable by replay.

    ``limit`` caps the output (zip members: loaders stop at the declared size).
    With ``charge_returned`` every decoded byte is charged to the byte budget;
    otherwise only bytes decoded and skipped are (the caller meters what it reads).
    """

    def __init__(
        self,
        source: BinaryIO,
        codec: Codec,
        tracker: BudgetTracker,
        *,
        limit: int | None = None,
        charge_returned: bool = False,
        index: CheckpointIndex | None = None,
    ) -> None:
        super().__init__()
        self._source = source
        self._codec = codec
        self._tracker = tracker
        self._limit = limit
        self._charge_returned = charge_returned
        self._index = index if index is not None else CheckpointIndex()
        self._pos = 0  # logical read position
        self._decoder: _Decoder | None = None
        self._out = 0  # decoder output position (end of ``_chunk``)
        self._chunk = b""  # last decoded chunk, covering [_out - len(_chunk), _out)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._pos = seek_position(offset, whence, self._pos, self._length)
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if not len(buffer):
            return 0
        self._tracker.check_time()
        if not self._position_at(self._pos):
            return 0
        start = self._out - len(self._chunk)
        piece = self._chunk[self._pos - start : self._pos - start + len(buffer)]
        memoryview(buffer)[: len(piece)] = piece
        self._pos += len(piece)
        return len(piece)

    def close(self) -> None:
        try:
            self._source.close()
        finally:
            super().close()

    # --- internals --------------------------------------------------------------------
    def _length(self) -> int:
        if self._index.length is None:
            self._position_at(1 << 62)  # decode to the end, charged as skipped bytes
        assert self._index.length is not None
        return self._index.length

    def _position_at(self, pos: int) -> bool:
        """Make ``_chunk`` cover ``pos``; False at end of stream."""
        if self._index.length is not None and pos >= self._index.length:
            return False
        if self._decoder is None or pos < self._out - len(self._chunk):
            self._rewind(pos)
        while pos >= self._out:
            if not self._decode_chunk(pos):
                return False
        return True

    def _rewind(self, pos: int) -> None:
        point = self._index.best(pos)
        if point is None:
            self._source.seek(0)
            self._decoder = self._codec.start(self._source)
            self._out = 0
        else:
            self._source.seek(point.in_pos)
            self._decoder = point.resume(self._source)
            self._out = point.out_pos
        self._chunk = b""

    def _decode_chunk(self, target: int) -> bool:
        assert self._decoder is not None
        want = _OUT_CHUNK if self._limit is None else min(_OUT_CHUNK, self._limit - self._out)
        chunk = self._decoder.read(want) if want > 0 else b""
        if not chunk:
            self._index.length = self._out
            return False
        self._out += len(chunk)
        self._chunk = chunk
        skipped = len(chunk) if self._charge_returned else max(0, min(self._out, target) - (self._out - len(chunk)))
        if skipped:
            self._tracker.charge_bytes(skipped)
        self._tracker.check_ratio(self._out, self._decoder.consumed)
        self._index.offer(self._out, self._decoder)
        return True


def check_declared(tracker: BudgetTracker, declared: int, compressed: int, source: str) -> None:
    """Apply the size and ratio budgets to a size a header announces, before decoding anything."""
    try:
        tracker.check_ratio(declared, compressed)
    except BudgetExceeded as exc:
        detail = f"{exc.detail}, going by the {declared} bytes {source} declares for {compressed} compressed bytes"
        raise BudgetExceeded(exc.budget, detail) from None


def decoded_opener(open_source: Opener, codec: Codec, tracker: BudgetTracker, limit: int | None = None) -> Opener:
    """An artifact opener for decoded content; all opens share one checkpoint index."""
    index = CheckpointIndex()

    def opener() -> BinaryIO:
        return DecompressedStream(open_source(), codec, tracker, limit=limit, index=index)  # type: ignore[return-value]

    return opener
