"""The pickle opcode VM: CPython unpickler semantics over a byte stream, executing nothing.

``PickleVM`` runs pickle streams opcode by opcode in one tight loop over a bytes
window, refilled from the stream in chunks; memory does not grow with the
opcode count:

* runs of memoized short strings (vocabularies, lists of names) are decoded in bulk, with the
  same result as one opcode at a time (``_StrRun``);
* str/bytes arguments above ``INLINE_MAX`` are skipped (seeked over when the
  stream allows) and kept as ``Big`` (offset, length, first bytes);
* lists, dicts and sets keep their first ``KEEP_ITEMS`` items (tuples
  ``KEEP_TUPLE``), enough for messages and call arguments;
* the memo keeps recent entries as they are and, of older ones, only what can
  matter later: globals, calls, and strings that name modules or attributes
  (a dropped entry fetched later is ``UNTRACKED``).

Stack, mark stack and memo follow the C unpickler exactly (MEMOIZE stores at
``len(memo)``, PUT overwrites, popping below a MARK is an underflow). Every
name lookup, call and mutation goes to an ``Events`` listener, which decides
what a call returns. Framing follows ``pickle.loads`` (frames are
transparent); a read that crosses a frame end is reported with the bytes a
frame-discarding reader (``pickle.load`` on ``io.BytesIO``, as ``torch.load``
uses) skips instead, so the caller can scan that reading too.
"""

from __future__ import annotations

import codecs
import io
import operator
import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import repeat

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up, issue 19)
if TYPE_CHECKING:
    from typing import BinaryIO

CHUNK = 1 << 20
"""Bytes read from the stream per refill."""
INLINE_MAX = 1 << 20
"""str/bytes arguments longer than this are skipped and kept as ``Big``."""
HEAD_BYTES = 4096
"""Leading bytes of a ``Big`` value kept for sniffing nested payloads."""
LINE_MAX = 1 << 20
"""Longest text-mode argument line accepted."""
LONG_MAX_BYTES = 1 << 16
"""LONG1/LONG4 integers wider than this are kept as a ``Big`` marker."""
KEEP_ITEMS = 8
"""Items kept per list/dict/set, for messages (``MORE`` marks a cut)."""
KEEP_KEYS = frozenset({"_code", "code"})
"""Dict keys kept past the ``KEEP_ITEMS`` cut: the source torch.fx GraphModules run at load."""
KEEP_TUPLE = 256
"""Items kept per tuple (code-object field tuples need all of theirs)."""
HOT_MEMO = 1 << 15
"""Memo entries added since the last compaction that trigger one at the next refill."""
RECENT_MEMO = 4096
"""The newest memo entries are never compacted."""
KEEP_STRINGS = 1 << 15
"""Memoized strings always kept; later ones are kept only when they name something."""

_I32 = struct.Struct("<i").unpack_from
_U16 = struct.Struct("<H").unpack_from
_U32 = struct.Struct("<I").unpack_from
_U64 = struct.Struct("<Q").unpack_from
_F64 = struct.Struct(">d").unpack_from
NOFRAME = 1 << 62

# Runs (4+) of one numeric push opcode, as in lists of numbers, are decoded with one struct call.
_RUN_K = re.compile(rb"(?:K.)+", re.DOTALL).match
_RUN_M = re.compile(rb"(?:M..)+", re.DOTALL).match
_RUN_J = re.compile(rb"(?:J....)+", re.DOTALL).match
_RUN_G = re.compile(rb"(?:G.{8})+", re.DOTALL).match


class _Run:
    """Decodes runs of one fixed-width numeric push opcode with cached struct formats."""

    def __init__(self, order: str, code: str, width: int) -> None:
        self.order = order
        self.code = code
        self.width = width
        self.cache: dict[int, Callable[[bytes, int], tuple[object, ...]]] = {}

    def values(self, buf: bytes, at: int, count: int) -> list[object]:
        out: list[object] = []
        while count > 0:
            k = min(count, 1024)
            unpack = self.cache.get(k)
            if unpack is None:
                unpack = self.cache[k] = struct.Struct(self.order + ("x" + self.code) * k).unpack_from
            out.extend(unpack(buf, at))
            at += k * self.width
            count -= k
        return out


_FLOATS = _Run(">", "d", 9)
_UINT16S = _Run("<", "H", 3)
_INT32S = _Run("<", "i", 5)

# Runs (8+) of memoized short strings (SHORT_BINUNICODE + MEMOIZE), each followed by one int
# push of the same width or by nothing, as in a tokenizer vocabulary {token: id} or a list of
# strings, are matched and decoded in bulk: one regex pass finds the units, one UTF-8 decode per
# string runs in C, and the memo and stack are filled with one call each. The length byte picks
# one alternative, so the units parse exactly as the opcode-by-opcode loop would read them.
_STR_TAIL = operator.itemgetter(slice(1, None))
RUN_MAX = 4096
"""Units decoded per bulk run (bounds the run's temporary lists; a longer run takes several)."""


SHORT_RUN = 512
"""Runs up to this many units are walked in Python; only a longer one compiles the run's regexes."""


class _StrRun:
    """One shape of string run: the int opcode after each string (None: no int) and its width.
    The patterns are compiled on first use (a 128-way alternation costs milliseconds to compile):
    runs of up to ``SHORT_RUN`` units, as in most small pickles, are walked unit by unit instead."""

    def __init__(self, int_op: int | None, width: int, fmt: str) -> None:
        self.int_op = int_op
        self.width = width
        self.unit_overhead = 2 + (1 + width if int_op is not None else 0)
        self.with_ints = int_op is not None
        self.fmt = fmt
        self.run: Callable[[bytes, int], re.Match[bytes] | None] | None = None
        self.units: Callable[[bytes, int, int], list[bytes]] = re.compile(b"").findall

    def _compile(self) -> Callable[[bytes, int], re.Match[bytes] | None]:
        alts = b"|".join(re.escape(bytes([n])) + b".{%d}" % n for n in range(128))
        unit = rb"\x8c(?:" + alts + rb")\x94"
        grouped = rb"\x8c(" + alts + rb")\x94"
        if self.int_op is not None:
            unit += re.escape(bytes([self.int_op])) + b".{%d}" % self.width
            grouped += re.escape(bytes([self.int_op])) + b"(.{%d})" % self.width
        self.units = re.compile(grouped, re.DOTALL).findall
        self.run = re.compile(b"(?:" + unit + b"){8,%d}" % RUN_MAX, re.DOTALL).match
        return self.run

    def _walk(self, buf: bytes, at: int) -> tuple[int, list[bytes], list[bytes]] | None:
        """(end, raws, ints) of the units from ``buf[at]`` as the run regex reads them (each raw is
        the length byte and the payload); None when there are more than ``SHORT_RUN``."""
        raws: list[bytes] = []
        ints: list[bytes] = []
        blen, int_op, width = len(buf), self.int_op, self.width
        pos = at
        while len(raws) <= SHORT_RUN:
            if pos + 1 >= blen or buf[pos] != 0x8C or buf[pos + 1] >= 0x80:
                break
            end = pos + 2 + buf[pos + 1]
            if end >= blen or buf[end] != 0x94:
                break
            if int_op is not None:
                if end + 1 + width >= blen or buf[end + 1] != int_op:
                    break
                ints.append(buf[end + 2 : end + 2 + width])
            raws.append(buf[pos + 1 : end])
            pos = end + 1 + (1 + width if int_op is not None else 0)
        else:
            return None
        return pos, raws, ints

    def decode(self, buf: bytes, at: int) -> tuple[int, list[str] | None, list[int] | None] | None:
        """(end, strings, ints) of the run starting at ``buf[at]``; None when there is none;
        strings None when one is not UTF-8 (the opcode-by-opcode loop then stops at that string,
        and no bulk run is tried again before ``end``)."""
        short = self._walk(buf, at)
        if short is not None:
            end, raws, ints_raw = short
            if len(raws) < 8:
                return None
        else:  # a long run: the regexes match it and cut it into units in C
            m = (self.run or self._compile())(buf, at)
            if m is None:  # pragma: no cover - the walk found more than SHORT_RUN units here
                return None
            end = m.end()
            units = self.units(buf, at, end)
            raws, ints_raw = zip(*units, strict=True) if self.with_ints else (units, ())
        if sum(map(len, raws)) + len(raws) * self.unit_overhead != end - at:  # pragma: no cover - defensive
            return None
        try:  # each raw is its length byte (ASCII, below 0x80) and the payload
            strings = list(map(_STR_TAIL, map(str, raws, repeat("utf-8"), repeat("surrogatepass"))))
        except UnicodeDecodeError:
            return end, None, None
        if not self.with_ints:
            return end, strings, None
        joined = b"".join(ints_raw)
        ints = list(joined) if self.fmt == "B" else list(struct.unpack(f"<{len(raws)}{self.fmt}", joined))
        return end, strings, ints


_STR_RUNS = {
    0x4B: _StrRun(0x4B, 1, "B"),
    0x4D: _StrRun(0x4D, 2, "H"),
    0x4A: _StrRun(0x4A, 4, "i"),
    0x8C: _StrRun(None, 0, ""),
}
_STR_RUN_NEXT = {0x4B: 3, 0x4D: 4, 0x4A: 6, 0x8C: 1}
"""Bytes from a run's first int opcode (or next string) to its second unit."""

OPNAMES: dict[int, str] = {
    0x28: "MARK",
    0x2E: "STOP",
    0x30: "POP",
    0x31: "POP_MARK",
    0x32: "DUP",
    0x46: "FLOAT",
    0x49: "INT",
    0x4A: "BININT",
    0x4B: "BININT1",
    0x4C: "LONG",
    0x4D: "BININT2",
    0x4E: "NONE",
    0x50: "PERSID",
    0x51: "BINPERSID",
    0x52: "REDUCE",
    0x53: "STRING",
    0x54: "BINSTRING",
    0x55: "SHORT_BINSTRING",
    0x56: "UNICODE",
    0x58: "BINUNICODE",
    0x61: "APPEND",
    0x62: "BUILD",
    0x63: "GLOBAL",
    0x64: "DICT",
    0x7D: "EMPTY_DICT",
    0x65: "APPENDS",
    0x67: "GET",
    0x68: "BINGET",
    0x69: "INST",
    0x6A: "LONG_BINGET",
    0x6C: "LIST",
    0x5D: "EMPTY_LIST",
    0x6F: "OBJ",
    0x70: "PUT",
    0x71: "BINPUT",
    0x72: "LONG_BINPUT",
    0x73: "SETITEM",
    0x74: "TUPLE",
    0x29: "EMPTY_TUPLE",
    0x75: "SETITEMS",
    0x47: "BINFLOAT",
    0x80: "PROTO",
    0x81: "NEWOBJ",
    0x82: "EXT1",
    0x83: "EXT2",
    0x84: "EXT4",
    0x85: "TUPLE1",
    0x86: "TUPLE2",
    0x87: "TUPLE3",
    0x88: "NEWTRUE",
    0x89: "NEWFALSE",
    0x8A: "LONG1",
    0x8B: "LONG4",
    0x42: "BINBYTES",
    0x43: "SHORT_BINBYTES",
    0x8C: "SHORT_BINUNICODE",
    0x8D: "BINUNICODE8",
    0x8E: "BINBYTES8",
    0x8F: "EMPTY_SET",
    0x90: "ADDITEMS",
    0x91: "FROZENSET",
    0x92: "NEWOBJ_EX",
    0x93: "STACK_GLOBAL",
    0x94: "MEMOIZE",
    0x95: "FRAME",
    0x96: "BYTEARRAY8",
    0x97: "NEXT_BUFFER",
    0x98: "READONLY_BUFFER",
}
PICKLE_STARTS = frozenset(OPNAMES) - {0x2E}
"""Opcodes a stream can start with."""

# How each opcode reads its argument, to find the read that crosses a frame end:
# fixed width; counted (length width, payload re-read by a frame-discarding reader?); text lines.
_FIXED = {
    0x4A: 4,
    0x4B: 1,
    0x4D: 2,
    0x68: 1,
    0x6A: 4,
    0x71: 1,
    0x72: 4,
    0x47: 8,
    0x80: 1,
    0x82: 1,
    0x83: 2,
    0x84: 4,
    0x95: 8,
}
_COUNTED = {
    0x54: (4, True),
    0x55: (1, True),
    0x58: (4, True),
    0x8C: (1, True),
    0x8D: (8, True),
    0x8A: (1, True),
    0x8B: (4, True),
    0x42: (4, False),
    0x43: (1, False),
    0x8E: (8, False),
    0x96: (8, False),
}
_LINES = {0x46: 1, 0x49: 1, 0x4C: 1, 0x50: 1, 0x53: 1, 0x56: 1, 0x67: 1, 0x70: 1, 0x63: 2, 0x69: 2}
_BIG_KIND = {
    0x58: "str",
    0x8D: "str",
    0x54: "str",
    0x42: "bytes",
    0x8E: "bytes",
    0x96: "bytearray",
    0x8A: "int",
    0x8B: "int",
}


# --- values -------------------------------------------------------------------------------------
# Literals are Python values; containers are Python lists/dicts/sets/frozensets/tuples holding
# at most KEEP_ITEMS items (then MORE). The classes below are what the VM does not evaluate.


class Global:
    """A name looked up by GLOBAL/STACK_GLOBAL/INST/EXT (``module`` None: not a literal name)."""

    __slots__ = ("info", "module", "name", "offset", "opcode")

    def __init__(self, module: str | None, name: str | None, offset: int, opcode: str) -> None:
        self.module = module
        self.name = name
        self.offset = offset
        self.opcode = opcode
        self.info: object = None  # the listener's classification

    def dotted(self) -> str:
        if self.module is None or self.name is None:
            return "<computed name>"
        return f"{self.module}.{self.name}" if self.name else self.module

    def __repr__(self) -> str:
        return f"Global({self.dotted()})"


class Call:
    """The result of a call (REDUCE, NEWOBJ, OBJ, INST...): what was called, with what, where."""

    __slots__ = ("args", "func", "info", "kwargs", "offset", "shape", "state")

    def __init__(self, func: object, args: object, kwargs: object, shape: str, offset: int) -> None:
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.shape = shape
        self.offset = offset
        self.state: object = None  # BUILD state, when the listener keeps it
        self.info: object = None

    def __repr__(self) -> str:
        return f"Call({render(self.func)}, {self.shape}@{self.offset})"


class Big:
    """A str/bytes/int argument too large to keep: where its payload is, and its first bytes."""

    __slots__ = ("head", "kind", "length", "offset")

    def __init__(self, kind: str, offset: int, length: int, head: bytes) -> None:
        self.kind = kind  # "str" | "bytes" | "bytearray" | "int"
        self.offset = offset
        self.length = length
        self.head = head


class Marker:
    """A value the VM does not model: a dropped memo entry, an out-of-band buffer, a cut."""

    __slots__ = ("label",)

    def __init__(self, label: str) -> None:
        self.label = label

    def __repr__(self) -> str:
        return self.label


UNTRACKED = Marker("<value not tracked>")
BUFFER = Marker("<out-of-band buffer>")
MORE = Marker("...")


class Persistent:
    """What a persistent id (PERSID/BINPERSID) resolves to in the loader."""

    __slots__ = ("offset", "pid")

    def __init__(self, pid: object, offset: int) -> None:
        self.pid = pid
        self.offset = offset


@dataclass(frozen=True)
class InlineBytes:
    """After a BUILD: ``nbytes`` raw bytes follow (joblib arrays), optionally after one
    padding-length byte and that much padding."""

    nbytes: int
    padded: bool


@dataclass(frozen=True)
class InlinePickle:
    """After a BUILD: a complete nested pickle stream follows (joblib object arrays)."""


_KEEP_TYPES = frozenset({Global, Call, Big, Persistent})
_ABSENT = Marker("<absent>")


class Events:
    """What the VM reports; the analyzer subclasses it. The defaults just build values."""

    def global_ref(self, module: str | None, name: str | None, offset: int, opcode: str, proto: int) -> object:
        return Global(module, name, offset, opcode)

    def call(self, shape: str, func: object, args: object, kwargs: object, offset: int) -> object:
        return Call(func, args, kwargs, shape, offset)

    def mutate(self, shape: str, target: object, payload: object, offset: int) -> InlineBytes | InlinePickle | None:
        """BUILD on anything; SETITEM(S)/APPEND(S)/ADDITEMS on what is not a dict/list/set."""
        return None

    def ext(self, code: int, offset: int) -> object:
        return Global(None, None, offset, f"EXT{code}")

    def computed_global(self, module: object, name: object, offset: int, proto: int) -> object:
        """STACK_GLOBAL whose operands are not both literal strings (CPython requires str)."""
        return self.global_ref(None, None, offset, "STACK_GLOBAL", proto)

    def persistent(self, pid: object, offset: int) -> object:
        return Persistent(pid, offset)

    def anomaly(self, kind: str, offset: int, detail: str) -> None:
        """A structural oddity that does not stop the stream; ``kind`` is a short key."""

    def nested_start(self, offset: int) -> None:
        """A nested stream (joblib object array) begins at ``offset``."""

    def nested_end(self, result: StreamResult) -> None:
        """The nested stream begun by the last ``nested_start`` ended."""


@dataclass
class StreamResult:
    """How one pickle stream ended."""

    start: int
    end: int = 0  # offset after the last byte consumed
    stopped: bool = False  # reached STOP
    value: object = None  # what STOP returned
    error: str | None = None  # why the stream broke
    error_offset: int | None = None
    truncated: bool = False  # ran out of bytes before STOP
    events: int = 0  # globals, calls and persistent ids seen


@dataclass(frozen=True)
class FrameCut:
    """A read crossed a FRAME end; a frame-discarding reader skips ``[start, end)``."""

    start: int
    end: int


class _Break(Exception):
    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


class _Eof(Exception):
    pass


class _Need(Exception):
    """The opcode at ``start`` (window index) needs ``n`` bytes from there (0: its text lines)."""

    def __init__(self, start: int, n: int) -> None:
        self.start = start
        self.n = n


class Memo:
    """The unpickler memo, bounded. Entries live in one dict; ``compact`` (run at refills once
    the memo has grown) deletes, among entries older than the last ``RECENT_MEMO``, values
    that cannot matter later: containers and plain data, and strings past the first
    ``KEEP_STRINGS`` unless they name a module or attribute. Globals, calls and large-payload
    markers stay. A deleted entry stays defined (MEMOIZE numbering is exact) and reads back
    as ``UNTRACKED``."""

    __slots__ = ("count", "d", "extra", "kept_strings", "lo", "names", "sparse_from")

    def __init__(self, names: set[str]) -> None:
        self.d: dict[int, object] = {}
        self.names = names  # strings always worth keeping: module and attribute names
        self.count = 0  # len(memo) as the unpickler sees it
        self.sparse_from: int | None = None  # set once keys stop being 0..count-1
        self.extra: set[int] = set()
        self.lo = 0  # keys below this were compacted
        self.kept_strings = 0

    def defined(self, key: int) -> bool:
        if self.sparse_from is None:
            return 0 <= key < self.count
        return 0 <= key < self.sparse_from or key in self.extra

    def put(self, key: int, value: object) -> None:
        if self.sparse_from is None:
            if key == self.count:
                self.d[key] = value
                self.count += 1
                return
            if key < self.count:
                self.d[key] = value
                return
            self.sparse_from = self.count
        if not self.defined(key):
            self.extra.add(key)
            self.count += 1
        self.d[key] = value

    def get(self, key: int) -> object:
        """The value at ``key`` after a miss in ``d``: UNTRACKED, or KeyError when undefined."""
        if not self.defined(key):
            raise KeyError(key)
        return UNTRACKED

    def compact(self) -> None:
        """Delete old entries that cannot matter later (see the class docstring)."""
        d = self.d
        names = self.names
        keep = _KEEP_TYPES
        hi = self.count - RECENT_MEMO
        keys = range(self.lo, hi) if self.sparse_from is None else [k for k in list(d) if k < hi]
        kept = self.kept_strings
        if (
            self.sparse_from is None
            and len(keys) > 1024
            and all(type(d.get(k)) is str for k in keys[:: len(keys) // 8])  # a sample first: mixed memos skip
        ):
            # Only strings here (vocabularies, lists of names): decide in bulk, in C.
            values = list(map(d.get, keys, repeat(_ABSENT)))
            if set(map(type, values)) == {str}:
                room = max(0, KEEP_STRINGS - kept)
                drop: Sequence[int] = keys[room:]
                if not names.isdisjoint(values[room:]):
                    drop = [k for k, v in zip(drop, values[room:], strict=True) if v not in names]
                list(map(d.__delitem__, drop))
                self.kept_strings = kept + len(keys) - len(drop)
                self.lo = max(self.lo, hi)
                return
        for key in keys:
            value = d.get(key, _ABSENT)
            t = type(value)
            if t in keep or value is _ABSENT:
                continue
            if t is str and (kept < KEEP_STRINGS or value in names):
                kept += 1
                continue
            del d[key]
        self.kept_strings = kept
        self.lo = max(self.lo, hi)


# --- the VM -------------------------------------------------------------------------------------


class PickleVM:
    """Runs pickle streams from ``stream`` (whose current position is offset ``start``).

    ``size`` is the stream's length when known (large skips then seek). ``tick`` is
    called at every refill, for budget and clock checks.
    """

    def __init__(
        self,
        stream: BinaryIO,
        events: Events,
        start: int = 0,
        size: int | None = None,
        tick: Callable[[], None] | None = None,
        names: set[str] | None = None,
        chunk: int | None = None,
    ) -> None:
        self.stream = stream
        self.chunk_size = chunk  # bytes read per refill; None: CHUNK (the routing probe reads little)
        self.names: set[str] = names if names is not None else set()
        self.events = events
        self.size = size
        self.tick = tick or (lambda: None)
        self.chunk = b""
        self.cbase = start  # offset of chunk[0]
        self.cur = start  # offset of the next unread byte
        self.eof = False
        self.frame_end = NOFRAME
        self.cuts: list[FrameCut] = []
        try:
            self.seekable = bool(stream.seekable())
        except (AttributeError, ValueError, OSError):
            self.seekable = False
        self.proto = 0
        self.depth = 0
        self.memo: Memo | None = None

    # -- the byte source -----------------------------------------------------------------------
    def _read(self, n: int) -> bytes:
        chunks = []
        while n > 0:
            chunk = self.stream.read(n)
            if not chunk:
                self.eof = True
                break
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def _ensure(self, at: int, n: int) -> bool:
        """Make the chunk hold ``[at, at+n)``; False when the stream ends first."""
        end = self.cbase + len(self.chunk)
        if at + n <= end and at >= self.cbase:
            return True
        self.tick()
        if self.memo is not None and self.memo.count - self.memo.lo > HOT_MEMO:
            self.memo.compact()
        rest = self.chunk[at - self.cbase :] if self.cbase <= at <= end else b""
        if at > end:
            if not self._skip_stream(at - end):
                return False
        self.cbase = at
        if not self.eof:
            rest += self._read(max(n - len(rest), self.chunk_size or CHUNK))
        self.chunk = rest
        return len(rest) >= n

    def _skip_stream(self, n: int) -> bool:
        """Advance the underlying stream ``n`` bytes past the chunk end."""
        pos = self.cbase + len(self.chunk)
        if self.seekable and self.size is not None:
            if pos + n > self.size:
                self.eof = True
                return False
            self.stream.seek(n, io.SEEK_CUR)
            return True
        while n > 0:
            got = self.stream.read(min(n, CHUNK))
            if not got:
                self.eof = True
                return False
            self.tick()
            n -= len(got)
        return True

    def _window(self, at: int) -> bytes:
        """The bytes from ``at`` up to the chunk end or the current frame end; b"" at EOF."""
        if not self._ensure(at, 1):
            return b""
        end = self.cbase + len(self.chunk)
        if at < self.frame_end < end:
            end = self.frame_end
        return self.chunk[at - self.cbase : end - self.cbase]

    def peek(self, n: int) -> bytes:
        """Up to ``n`` bytes from the current position, without consuming them."""
        self._ensure(self.cur, n)
        start = self.cur - self.cbase
        return self.chunk[start : start + n]

    def at_eof(self) -> bool:
        """True when no byte remains after the current position."""
        return not self._ensure(self.cur, 1)

    def skip(self, n: int) -> bool:
        """Advance ``n`` bytes from the current position; False when the stream ends first."""
        target = self.cur + n
        end = self.cbase + len(self.chunk)
        if target <= end:
            self.cur = target
            return True
        if not self._skip_stream(target - end):
            self.cur = self.size if self.size is not None else end
            return False
        self.chunk = b""
        self.cbase = self.cur = target
        return True

    def read_bytes(self, n: int) -> bytes | None:
        """Consume ``n`` bytes from the current position, or None at end of stream."""
        if not self._ensure(self.cur, n):
            return None
        start = self.cur - self.cbase
        self.cur += n
        return self.chunk[start : start + n]

    # -- streams -------------------------------------------------------------------------------
    def run_stream(self) -> StreamResult:
        """Run one pickle stream from the current position to its STOP, or where it breaks."""
        result = StreamResult(start=self.cur)
        self.proto = 0
        self.frame_end = NOFRAME
        saved_memo = self.memo
        self.memo = Memo(self.names)
        try:
            self._loop(result)
        except _Eof:
            result.truncated = True
            result.error = "stream ends before STOP"
            result.error_offset = self.cur
        except _Break as exc:
            result.error = str(exc)
            result.error_offset = exc.offset
        except UnicodeDecodeError as exc:  # a text operand that is not UTF-8: the unpicklers stop there too
            result.error = f"invalid UTF-8 in a text operand: {exc.reason}"
            result.error_offset = self.cur
        finally:
            self.memo = saved_memo
        result.end = self.cur
        return result

    def _nested(self) -> None:
        """Run a complete nested stream (fresh stack and memo), then resume the outer one."""
        saved = (self.proto, self.frame_end)
        self.depth += 1
        self.events.nested_start(self.cur)
        try:
            if self.depth > 16:
                raise _Break("nested pickle streams deeper than 16", self.cur)
            result = self.run_stream()
        finally:
            self.depth -= 1
        self.proto, self.frame_end = saved
        self.events.nested_end(result)
        if not result.stopped:
            if result.truncated:
                raise _Eof
            raise _Break(f"nested stream broke: {result.error}", result.error_offset or self.cur)

    def _loop(self, result: StreamResult) -> None:
        events = self.events
        memo = self.memo
        assert memo is not None
        hot = memo.d
        names = self.names
        mcount = 0
        sparse = False
        stack: list[object] = []
        metastack: list[list[object]] = []
        append = stack.append
        start = self.cur
        wbase = start
        buf = self._window(start)
        if not buf:
            raise _Eof
        blen = len(buf)
        pos = 0
        nevents = 0
        keep = KEEP_ITEMS
        no_run_before = 0  # offset before which no bulk string run is tried again
        try:
            while True:
                try:
                    op = buf[pos]
                except IndexError:
                    at = wbase + pos
                    if at == self.frame_end:
                        self.frame_end = NOFRAME
                    self.cur = at
                    memo.count = mcount
                    buf = self._window(at)
                    if not buf:
                        raise _Eof from None
                    blen = len(buf)
                    wbase = at
                    pos = 0
                    continue
                pos += 1
                try:
                    if op == 0x68:  # BINGET
                        try:
                            append(hot[buf[pos]])
                        except KeyError:
                            memo.count = mcount
                            append(self._memo_get(buf[pos], wbase + pos - 1))
                        pos += 1
                    elif op == 0x94:  # MEMOIZE
                        if sparse:
                            memo.count = mcount
                            memo.put(mcount, stack[-1])
                            mcount = memo.count
                        else:
                            hot[mcount] = stack[-1]
                            mcount += 1
                    elif op >= 0x80:  # ---- protocol 2+ opcodes
                        if op == 0x8C:  # SHORT_BINUNICODE (+ MEMOIZE)
                            end = pos + 1 + buf[pos]
                            if end > blen:
                                raise _Need(pos - 1, end - pos + 1)
                            if (
                                wbase + pos >= no_run_before
                                and end + 64 < blen
                                and buf[end] == 0x94
                                and not sparse
                                and buf[end + 1] in _STR_RUN_NEXT
                                and buf[end + _STR_RUN_NEXT[buf[end + 1]]] == 0x8C
                            ):
                                run = _STR_RUNS[buf[end + 1]].decode(buf, pos - 1)
                                if run is not None and run[1] is not None:
                                    pos, strings, ints = run
                                    hot.update(zip(range(mcount, mcount + len(strings)), strings, strict=True))
                                    mcount += len(strings)
                                    if ints is None:
                                        stack.extend(strings)
                                    else:
                                        flat: list[object] = [None] * (2 * len(strings))
                                        flat[0::2] = strings
                                        flat[1::2] = ints
                                        stack.extend(flat)
                                    continue
                                # not a run here: try again further on; past the end of a run that is not UTF-8
                                no_run_before = wbase + (pos + 512 if run is None else run[0])
                            value = buf[pos + 1 : end].decode("utf-8", "surrogatepass")
                            append(value)
                            pos = end
                            if pos < blen and buf[pos] == 0x94 and not sparse:
                                hot[mcount] = value
                                mcount += 1
                                pos += 1
                        elif op == 0x86:  # TUPLE2 (+ MEMOIZE)
                            b = stack.pop()
                            value = stack[-1] = (stack[-1], b)
                            if pos < blen and buf[pos] == 0x94 and not sparse:
                                hot[mcount] = value
                                mcount += 1
                                pos += 1
                        elif op == 0x88:  # NEWTRUE
                            append(True)
                        elif op == 0x89:  # NEWFALSE
                            append(False)
                        elif op == 0x85:  # TUPLE1
                            stack[-1] = (stack[-1],)
                        elif op == 0x87:  # TUPLE3
                            c = stack.pop()
                            b = stack.pop()
                            stack[-1] = (stack[-1], b, c)
                        elif op == 0x93:  # STACK_GLOBAL
                            name = stack.pop()
                            module = stack.pop()
                            nevents += 1
                            append(self._stack_global(module, name, wbase + pos - 1))
                        elif op == 0x81:  # NEWOBJ
                            args = stack.pop()
                            cls = stack.pop()
                            nevents += 1
                            append(events.call("NEWOBJ", cls, args, None, wbase + pos - 1))
                        elif op == 0x95:  # FRAME
                            if pos + 8 > blen:
                                raise _Need(pos - 1, 9)
                            here = wbase + pos + 8
                            self._frame(wbase + pos - 1, here, _U64(buf, pos)[0])
                            self.cur = here
                            buf = b""  # re-window: the window ends at the frame end
                            wbase = here
                            pos = blen = 0
                        elif op == 0x8F:  # EMPTY_SET
                            append(set())
                        elif op == 0x90:  # ADDITEMS
                            items = stack
                            stack = metastack.pop()
                            append = stack.append
                            target = stack[-1]
                            if type(target) is set:
                                room = keep - len(target)
                                if room > 0:
                                    target.update(_shallow(v) if type(v) is tuple else v for v in items[:room])
                                    if len(items) > room:
                                        target.add(MORE)
                            else:
                                self._mutate("ADDITEMS", target, _cut(items), wbase + pos - 1)
                        elif op == 0x91:  # FROZENSET
                            items = stack
                            stack = metastack.pop()
                            append = stack.append
                            kept = [_shallow(v) if type(v) is tuple else v for v in items[:keep]]
                            append(frozenset(kept) | ({MORE} if len(items) > keep else frozenset()))
                        elif op == 0x92:  # NEWOBJ_EX
                            kwargs = stack.pop()
                            args = stack.pop()
                            cls = stack.pop()
                            nevents += 1
                            append(events.call("NEWOBJ_EX", cls, args, kwargs, wbase + pos - 1))
                        elif op == 0x80:  # PROTO
                            proto = buf[pos]
                            if proto > 5:
                                raise _Break(f"unsupported pickle protocol {proto}", wbase + pos - 1)
                            if wbase + pos - 1 != start:
                                events.anomaly(
                                    "proto",
                                    wbase + pos - 1,
                                    f"PROTO {proto} at offset {wbase + pos - 1} is not the first opcode",
                                )
                            self.proto = proto
                            pos += 1
                        elif op == 0x82 or op == 0x83 or op == 0x84:  # EXT1 / EXT2 / EXT4
                            width = 1 if op == 0x82 else 2 if op == 0x83 else 4
                            if pos + width > blen:
                                raise _Need(pos - 1, 1 + width)
                            code = buf[pos] if width == 1 else _U16(buf, pos)[0] if width == 2 else _I32(buf, pos)[0]
                            nevents += 1
                            append(events.ext(code, wbase + pos - 1))
                            pos += width
                        elif op == 0x8A or op == 0x8B:  # LONG1 / LONG4
                            width = 1 if op == 0x8A else 4
                            if pos + width > blen:
                                raise _Need(pos - 1, 1 + width)
                            n = buf[pos] if width == 1 else _I32(buf, pos)[0]
                            if n < 0:
                                raise _Break("negative LONG4 length", wbase + pos - 1)
                            if n > LONG_MAX_BYTES:
                                memo.count = mcount
                                append(self._big(op, wbase + pos - 1, wbase + pos + width, n))
                                buf = b""
                                wbase = self.cur
                                pos = blen = 0
                                continue
                            end = pos + width + n
                            if end > blen:
                                raise _Need(pos - 1, end - pos + 1)
                            append(int.from_bytes(buf[pos + width : end], "little", signed=True))
                            pos = end
                        elif op == 0x8D or op == 0x8E or op == 0x96:  # BINUNICODE8 / BINBYTES8 / BYTEARRAY8
                            if pos + 8 > blen:
                                raise _Need(pos - 1, 9)
                            n = _U64(buf, pos)[0]
                            if n > INLINE_MAX:
                                memo.count = mcount
                                append(self._big(op, wbase + pos - 1, wbase + pos + 8, n))
                                buf = b""
                                wbase = self.cur
                                pos = blen = 0
                                continue
                            end = pos + 8 + n
                            if end > blen:
                                raise _Need(pos - 1, end - pos + 1)
                            raw = buf[pos + 8 : end]
                            append(raw.decode("utf-8", "surrogatepass") if op == 0x8D else raw)
                            pos = end
                        elif op == 0x97:  # NEXT_BUFFER
                            events.anomaly(
                                "buffer",
                                wbase + pos - 1,
                                "NEXT_BUFFER asks for out-of-band data; loaders without buffers stop here",
                            )
                            append(BUFFER)
                        elif op == 0x98:  # READONLY_BUFFER
                            if not stack:
                                raise IndexError
                        else:
                            raise _Break(f"invalid opcode 0x{op:02x}", wbase + pos - 1)
                    elif op >= 0x5D:  # ---- ] a b c d e g h i j l o p q r s t u }
                        if op == 0x7D:  # EMPTY_DICT (+ MEMOIZE)
                            value = {}
                            append(value)
                            if pos < blen and buf[pos] == 0x94 and not sparse:
                                hot[mcount] = value
                                mcount += 1
                                pos += 1
                        elif op == 0x75:  # SETITEMS
                            items = stack
                            stack = metastack.pop()
                            append = stack.append
                            target = stack[-1]
                            if type(target) is dict:
                                room = keep - len(target)
                                if room > 0:
                                    n = len(items)
                                    if n & 1:
                                        raise _Break("SETITEMS with an odd number of items", wbase + pos - 1)
                                    if tuple in map(type, items[0 : 2 * room : 2]):
                                        items = _shallow_keys(items)
                                    if n <= 2 * room:
                                        target.update(zip(items[0::2], items[1::2], strict=True))
                                    else:
                                        target.update(
                                            zip(items[0 : 2 * room : 2], items[1 : 2 * room : 2], strict=True)
                                        )
                                        target[MORE] = MORE
                                        _keep_keys(target, items, 2 * room)
                                elif len(items) & 1 == 0:
                                    _keep_keys(target, items, 0)
                            else:
                                self._mutate("SETITEMS", target, _pairs(items), wbase + pos - 1)
                        elif op == 0x71:  # BINPUT
                            key = buf[pos]
                            if not sparse and key == mcount:
                                hot[key] = stack[-1]
                                mcount += 1
                            else:
                                memo.count = mcount
                                memo.put(key, stack[-1])
                                mcount = memo.count
                                sparse = memo.sparse_from is not None
                            pos += 1
                        elif op == 0x5D:  # EMPTY_LIST (+ MEMOIZE)
                            value = []
                            append(value)
                            if pos < blen and buf[pos] == 0x94 and not sparse:
                                hot[mcount] = value
                                mcount += 1
                                pos += 1
                        elif op == 0x65:  # APPENDS
                            items = stack
                            stack = metastack.pop()
                            append = stack.append
                            target = stack[-1]
                            if type(target) is list:
                                room = keep - len(target)
                                if room > 0:
                                    if len(items) <= room:
                                        target.extend(items)
                                    else:
                                        target.extend(items[:room])
                                        target.append(MORE)
                            else:
                                self._mutate("APPENDS", target, _cut(items), wbase + pos - 1)
                        elif op == 0x62:  # BUILD
                            state = stack.pop()
                            nevents += 1
                            directive = events.mutate("BUILD", stack[-1], state, wbase + pos - 1)
                            if directive is not None:
                                self.cur = wbase + pos
                                memo.count = mcount
                                self._inline(directive, wbase + pos - 1)
                                buf = b""
                                wbase = self.cur
                                pos = blen = 0
                        elif op == 0x61:  # APPEND
                            value = stack.pop()
                            target = stack[-1]
                            if type(target) is list:
                                if len(target) < keep:
                                    target.append(value)
                                elif len(target) == keep:
                                    target.append(MORE)
                            else:
                                self._mutate("APPEND", target, value, wbase + pos - 1)
                        elif op == 0x73:  # SETITEM
                            value = stack.pop()
                            key = stack.pop()
                            target = stack[-1]
                            if type(target) is dict:
                                if type(key) is tuple:
                                    key = _shallow(key)
                                if len(target) < keep or key in target or (type(key) is str and key in KEEP_KEYS):
                                    target[key] = value
                                elif len(target) == keep:
                                    target[MORE] = MORE
                            else:
                                self._mutate("SETITEM", target, [(key, value)], wbase + pos - 1)
                        elif op == 0x74:  # TUPLE
                            items = stack
                            stack = metastack.pop()
                            append = stack.append
                            append(tuple(items) if len(items) <= KEEP_TUPLE else (*items[:KEEP_TUPLE], MORE))
                        elif op == 0x6A:  # LONG_BINGET
                            if pos + 4 > blen:
                                raise _Need(pos - 1, 5)
                            key = _U32(buf, pos)[0]
                            try:
                                append(hot[key])
                            except KeyError:
                                memo.count = mcount
                                append(self._memo_get(key, wbase + pos - 1))
                            pos += 4
                        elif op == 0x72:  # LONG_BINPUT
                            if pos + 4 > blen:
                                raise _Need(pos - 1, 5)
                            key = _U32(buf, pos)[0]
                            if not sparse and key == mcount:
                                hot[key] = stack[-1]
                                mcount += 1
                            else:
                                memo.count = mcount
                                memo.put(key, stack[-1])
                                mcount = memo.count
                                sparse = memo.sparse_from is not None
                            pos += 4
                        elif op == 0x6C:  # LIST
                            items = stack
                            stack = metastack.pop()
                            append = stack.append
                            append(_cut(items))
                        elif op == 0x64:  # DICT
                            items = stack
                            stack = metastack.pop()
                            append = stack.append
                            if len(items) & 1:
                                raise _Break("DICT with an odd number of items", wbase + pos - 1)
                            if tuple in map(type, items[0 : 2 * keep : 2]):
                                items = _shallow_keys(items)
                            d = dict(zip(items[0 : 2 * keep : 2], items[1 : 2 * keep : 2], strict=True))
                            if len(items) > 2 * keep:
                                d[MORE] = MORE
                                _keep_keys(d, items, 2 * keep)
                            append(d)
                        elif op == 0x63 or op == 0x69:  # GLOBAL / INST
                            nl1 = buf.find(b"\n", pos, pos + LINE_MAX)
                            nl2 = buf.find(b"\n", nl1 + 1, nl1 + 1 + LINE_MAX) if nl1 >= 0 else -1
                            if nl2 < 0:
                                raise _Need(pos - 1, 0)
                            where = wbase + pos - 1
                            module = buf[pos:nl1].decode("utf-8", "surrogatepass")
                            name = buf[nl1 + 1 : nl2].decode("utf-8", "surrogatepass")
                            pos = nl2 + 1
                            nevents += 1
                            names.add(module)
                            names.add(name)
                            if op == 0x63:
                                append(events.global_ref(module, name, where, "GLOBAL", self.proto))
                            else:
                                if not metastack:
                                    raise _Break("INST without a MARK", where)
                                args = tuple(stack)
                                stack = metastack.pop()
                                append = stack.append
                                g = events.global_ref(module, name, where, "INST", self.proto)
                                append(events.call("INST", g, args, None, where))
                        elif op == 0x6F:  # OBJ
                            items = stack
                            stack = metastack.pop()
                            append = stack.append
                            cls = items[0]  # IndexError: OBJ without a class is an underflow
                            nevents += 1
                            append(events.call("OBJ", cls, tuple(items[1:]), None, wbase + pos - 1))
                        elif op == 0x67 or op == 0x70:  # GET / PUT
                            nl = buf.find(b"\n", pos, pos + LINE_MAX)
                            if nl < 0:
                                raise _Need(pos - 1, 0)
                            where = wbase + pos - 1
                            key = _line_int(buf[pos:nl], where)
                            pos = nl + 1
                            memo.count = mcount
                            if op == 0x67:
                                try:
                                    append(hot[key])
                                except KeyError:
                                    append(self._memo_get(key, where))
                            else:
                                if key < 0 or not stack:
                                    raise _Break("PUT with a negative key or on an empty stack", where)
                                memo.put(key, stack[-1])
                                mcount = memo.count
                                sparse = memo.sparse_from is not None
                        else:
                            raise _Break(f"invalid opcode 0x{op:02x}", wbase + pos - 1)
                    else:  # ---- ( ) . 0 1 2 B C F G I J K L M N P Q R S T U V X
                        if op == 0x4B:  # BININT1 (a run of them at once)
                            if (
                                pos + 5 < blen
                                and buf[pos + 1] == 0x4B
                                and buf[pos + 3] == 0x4B
                                and buf[pos + 5] == 0x4B
                            ):
                                end = _RUN_K(buf, pos - 1).end()
                                stack.extend(buf[pos:end:2])
                                pos = end
                            else:
                                append(buf[pos])
                                pos += 1
                        elif op == 0x28:  # MARK
                            metastack.append(stack)
                            stack = []
                            append = stack.append
                        elif op == 0x4D:  # BININT2 (a run of them at once)
                            if pos + 2 > blen:
                                raise _Need(pos - 1, 3)
                            if (
                                pos + 8 < blen
                                and buf[pos + 2] == 0x4D
                                and buf[pos + 5] == 0x4D
                                and buf[pos + 8] == 0x4D
                            ):
                                end = _RUN_M(buf, pos - 1).end()
                                stack.extend(_UINT16S.values(buf, pos - 1, (end - pos + 1) // 3))
                                pos = end
                            else:
                                append(_U16(buf, pos)[0])
                                pos += 2
                        elif op == 0x4A:  # BININT (a run of them at once)
                            if pos + 4 > blen:
                                raise _Need(pos - 1, 5)
                            if (
                                pos + 14 < blen
                                and buf[pos + 4] == 0x4A
                                and buf[pos + 9] == 0x4A
                                and buf[pos + 14] == 0x4A
                            ):
                                end = _RUN_J(buf, pos - 1).end()
                                stack.extend(_INT32S.values(buf, pos - 1, (end - pos + 1) // 5))
                                pos = end
                            else:
                                append(_I32(buf, pos)[0])
                                pos += 4
                        elif op == 0x47:  # BINFLOAT (a run of them at once)
                            if pos + 8 > blen:
                                raise _Need(pos - 1, 9)
                            if (
                                pos + 26 < blen
                                and buf[pos + 8] == 0x47
                                and buf[pos + 17] == 0x47
                                and buf[pos + 26] == 0x47
                            ):
                                end = _RUN_G(buf, pos - 1).end()
                                stack.extend(_FLOATS.values(buf, pos - 1, (end - pos + 1) // 9))
                                pos = end
                            else:
                                append(_F64(buf, pos)[0])
                                pos += 8
                        elif op == 0x52:  # REDUCE
                            args = stack.pop()
                            nevents += 1
                            stack[-1] = events.call("REDUCE", stack[-1], args, None, wbase + pos - 1)
                        elif op == 0x4E:  # NONE
                            append(None)
                        elif op == 0x29:  # EMPTY_TUPLE
                            append(())
                        elif op == 0x58 or op == 0x42 or op == 0x54:  # BINUNICODE / BINBYTES / BINSTRING
                            if pos + 4 > blen:
                                raise _Need(pos - 1, 5)
                            n = _U32(buf, pos)[0] if op != 0x54 else _I32(buf, pos)[0]
                            if n < 0:
                                raise _Break("negative BINSTRING length", wbase + pos - 1)
                            if n > INLINE_MAX:
                                memo.count = mcount
                                append(self._big(op, wbase + pos - 1, wbase + pos + 4, n))
                                buf = b""
                                wbase = self.cur
                                pos = blen = 0
                                continue
                            end = pos + 4 + n
                            if end > blen:
                                raise _Need(pos - 1, end - pos + 1)
                            raw = buf[pos + 4 : end]
                            value = (
                                raw.decode("utf-8", "surrogatepass")
                                if op == 0x58
                                else raw
                                if op == 0x42
                                else _decode_str8(raw)
                            )
                            append(value)
                            pos = end
                            # the BINPUT/LONG_BINPUT protocols 1-3 put after it, in the same turn
                            if not sparse and pos < blen:
                                if buf[pos] == 0x71 and pos + 1 < blen and buf[pos + 1] == mcount:
                                    hot[mcount] = value
                                    mcount += 1
                                    pos += 2
                                elif buf[pos] == 0x72 and pos + 4 < blen and _U32(buf, pos + 1)[0] == mcount:
                                    hot[mcount] = value
                                    mcount += 1
                                    pos += 5
                        elif op == 0x51:  # BINPERSID
                            pid = stack.pop()
                            nevents += 1
                            append(events.persistent(pid, wbase + pos - 1))
                        elif op == 0x2E:  # STOP
                            result.value = stack.pop()
                            result.stopped = True
                            self.cur = wbase + pos
                            if self.cur < self.frame_end != NOFRAME:
                                events.anomaly(
                                    "frame",
                                    self.cur - 1,
                                    f"STOP at offset {self.cur - 1} comes before the FRAME end at "
                                    f"{self.frame_end}; readers that buffer the frame start the "
                                    "next pickle there",
                                )
                                self.cuts.append(FrameCut(self.cur, self.frame_end))
                            return
                        elif op == 0x43 or op == 0x55:  # SHORT_BINBYTES / SHORT_BINSTRING
                            end = pos + 1 + buf[pos]
                            if end > blen:
                                raise _Need(pos - 1, end - pos + 1)
                            raw = buf[pos + 1 : end]
                            append(raw if op == 0x43 else _decode_str8(raw))
                            pos = end
                        elif op == 0x30:  # POP
                            if stack:
                                stack.pop()
                            else:
                                stack = metastack.pop()
                                append = stack.append
                        elif op == 0x32:  # DUP
                            append(stack[-1])
                        elif op == 0x31:  # POP_MARK
                            stack = metastack.pop()
                            append = stack.append
                        elif op in _LINES:  # INT LONG FLOAT STRING UNICODE PERSID
                            nl = buf.find(b"\n", pos, pos + LINE_MAX)
                            if nl < 0:
                                raise _Need(pos - 1, 0)
                            where = wbase + pos - 1
                            line = buf[pos:nl]
                            pos = nl + 1
                            if op == 0x50:  # PERSID
                                nevents += 1
                                append(events.persistent(line.decode("ascii", "replace"), where))
                            else:
                                append(_text_value(op, line, where))
                        else:
                            raise _Break(f"invalid opcode 0x{op:02x}", wbase + pos - 1)
                except _Need as need:
                    # The opcode's argument runs past the window: refill (or cross the frame
                    # end, reporting it) and run the opcode again from its start.
                    at = wbase + need.start
                    self.cur = at
                    memo.count = mcount
                    self._need(at, buf[need.start], need.n)
                    buf = self._window(at)
                    blen = len(buf)
                    wbase = at
                    pos = 0
                except IndexError:
                    if pos >= blen and (op in _FIXED or op in _COUNTED):
                        # a one-byte argument or length starts past the window: as _Need
                        at = wbase + pos - 1
                        self.cur = at
                        memo.count = mcount
                        self._need(at, op, 2)
                        buf = self._window(at)
                        blen = len(buf)
                        wbase = at
                        pos = 0
                        continue
                    raise _Break(f"{OPNAMES.get(op, hex(op))}: stack underflow", wbase + pos - 1) from None
                except TypeError as exc:  # unhashable dict key or set item, as CPython raises
                    raise _Break(f"{OPNAMES.get(op, hex(op))}: {exc}", wbase + pos - 1) from None
                except UnicodeDecodeError as exc:  # the unpicklers decode these arguments and fail the same way
                    raise _Break(
                        f"{OPNAMES.get(op, hex(op))}: argument is not UTF-8 ({exc.reason})", wbase + pos - 1
                    ) from None
        finally:
            result.events = nevents
            memo.count = mcount
            if not result.stopped:
                self.cur = max(self.cur, wbase + pos)

    # -- slow paths ----------------------------------------------------------------------------
    def _memo_get(self, key: int, where: int) -> object:
        assert self.memo is not None
        try:
            return self.memo.get(key)
        except KeyError:
            raise _Break(f"memo key {key} fetched before it was stored", where) from None

    def _need(self, at: int, op: int, n: int) -> None:
        """Make the chunk hold the opcode at ``at`` (``n`` bytes, or its lines when 0)."""
        if n == 0:
            end = self._line_end(at + 1, _LINES.get(op, 2))
        else:
            if not self._ensure(at, n):
                raise _Eof
            end = at + n
        if at < self.frame_end < end:
            self._straddle(at, op, self.frame_end)
            self.frame_end = NOFRAME

    def _line_end(self, at: int, lines: int) -> int:
        """Offset after the ``lines``-th newline from ``at`` (an opcode's argument), refilling."""
        pos = at
        for _ in range(lines):
            while True:
                nl = self.chunk.find(b"\n", pos - self.cbase)
                if nl >= 0:
                    if self.cbase + nl - pos > LINE_MAX:
                        raise _Break("text argument line too long", at - 1)
                    pos = self.cbase + nl + 1
                    break
                have = self.cbase + len(self.chunk) - (at - 1)
                if have > 2 * LINE_MAX:
                    raise _Break("text argument line too long", at - 1)
                if self.eof:
                    raise _Eof
                self._ensure(at - 1, have + CHUNK)
        return pos

    def _frame(self, op_at: int, here: int, n: int) -> None:
        if self.frame_end != NOFRAME and op_at < self.frame_end:
            self.events.anomaly(
                "frame",
                op_at,
                f"FRAME at offset {op_at} begins inside the frame ending at {self.frame_end}; "
                "the pure-Python unpickler (joblib) stops here",
            )
            if here + n > self.frame_end:
                # pickle.load(io.BytesIO) reads the new frame from after the old frame's end
                self.cuts.append(FrameCut(here, self.frame_end))
        if self.size is not None and here + n > self.size:
            self.events.anomaly(
                "frame",
                op_at,
                f"FRAME at offset {op_at} declares {n} bytes but {self.size - here} remain: "
                "pickle.loads refuses it, the pure-Python unpickler (joblib) runs what is there",
            )
        self.frame_end = here + n if n else NOFRAME

    def _straddle(self, op_at: int, op: int, frame_end: int) -> None:
        """A read of the opcode at ``op_at`` crosses ``frame_end``: report it, note the cut."""
        name = OPNAMES.get(op, hex(op))
        segments: list[tuple[int, int, bool]] = []  # (start, end, re-read by discarding readers)
        pos = op_at + 1
        if op in _FIXED:
            segments.append((pos, pos + _FIXED[op], True))
        elif op in _COUNTED:
            width, discarding = _COUNTED[op]
            raw = self.chunk[pos - self.cbase : pos - self.cbase + width]
            n = int.from_bytes(raw, "little", signed=op in (0x54, 0x8B)) if len(raw) == width else 0
            segments.append((pos, pos + width, True))
            segments.append((pos + width, pos + width + max(n, 0), discarding))
        elif op in _LINES:
            for _ in range(_LINES[op]):
                nl = self.chunk.find(b"\n", pos - self.cbase)
                end = self.cbase + nl + 1 if nl >= 0 else pos
                segments.append((pos, end, True))
                pos = end
        for seg_start, seg_end, discarding in segments:
            if seg_start < frame_end < seg_end:
                detail = f"{name} at offset {op_at} reads across the FRAME end at {frame_end}"
                if discarding:
                    self.cuts.append(FrameCut(seg_start, frame_end))
                    detail += (
                        f"; pickle.loads reads on, pickle.load(io.BytesIO) (torch.load) skips bytes "
                        f"{seg_start}..{frame_end}, the pure-Python unpickler (joblib) stops"
                    )
                else:
                    detail += "; the pure-Python unpickler (joblib) stops here, the C one reads on"
                self.events.anomaly("frame", op_at, detail)
                return
        self.events.anomaly("frame", op_at, f"{name} at offset {op_at} crosses the FRAME end at {frame_end}")

    def _big(self, op: int, op_at: int, payload_at: int, n: int) -> Big:
        """Skip a payload too large to keep; the VM resumes at ``self.cur``."""
        if payload_at < self.frame_end < payload_at + n:
            self._straddle(op_at, op, self.frame_end)
            self.frame_end = NOFRAME
        self._ensure(payload_at, min(n, HEAD_BYTES))
        rel = payload_at - self.cbase
        head = self.chunk[rel : rel + min(n, HEAD_BYTES)]
        self.cur = payload_at
        if not self.skip(n):
            raise _Eof
        return Big(_BIG_KIND.get(op, "bytes"), payload_at, n, head)

    def _stack_global(self, module: object, name: object, where: int) -> object:
        if type(module) is str and type(name) is str:
            self.names.add(module)
            self.names.add(name)
            return self.events.global_ref(module, name, where, "STACK_GLOBAL", self.proto)
        if module is UNTRACKED or name is UNTRACKED:
            self.events.anomaly("untracked", where, "a STACK_GLOBAL operand was dropped by the memo budget")
        return self.events.computed_global(module, name, where, self.proto)

    def _mutate(self, shape: str, target: object, payload: object, where: int) -> None:
        if type(target) in (str, bytes, int, float, bool, tuple, frozenset) or target is None:
            raise _Break(f"{shape} on a {type(target).__name__}", where)
        self.events.mutate(shape, target, payload, where)

    def _inline(self, directive: InlineBytes | InlinePickle, build_at: int) -> None:
        """Consume what a BUILD announced follows inline (joblib array data)."""
        if self.cur < self.frame_end != NOFRAME:
            self.events.anomaly(
                "frame",
                build_at,
                "inline array data starts inside a FRAME: joblib reads it from after the frame, "
                "other readers from here",
            )
            self.frame_end = NOFRAME
        if isinstance(directive, InlinePickle):
            self._nested()
            return
        if directive.padded:
            pad = self.read_bytes(1)
            if pad is None or not self.skip(pad[0]):
                raise _Eof
        if not self.skip(directive.nbytes):
            raise _Eof


MAX_KEY_NESTING = 64
"""Tuples nested deeper than this are not hashed (CPython's tuple hash recurses in C and crashes)."""


def _keep_keys(target: dict[object, object], flat: list[object], start: int) -> None:
    """Add the ``KEEP_KEYS`` pairs of ``flat[start:]`` (key, value, key, value...) past the item cut."""
    if "_code" not in flat and "code" not in flat:  # C-speed membership test: the common case costs nothing more
        return
    for i in range(start, len(flat) - 1, 2):
        key = flat[i]
        if type(key) is str and key in KEEP_KEYS:
            target[key] = flat[i + 1]


def _shallow(key: tuple[object, ...]) -> object:
    """``key``, or a unique marker when it is a tuple nested too deeply to hash safely."""
    todo: list[tuple[tuple[object, ...], int]] = [(key, 1)]
    seen = 0
    while todo:
        current, depth = todo.pop()
        for item in current:
            if type(item) is tuple:
                seen += 1
                if depth >= MAX_KEY_NESTING or seen > 100_000:
                    return Marker("<tuple nested too deeply>")
                todo.append((item, depth + 1))  # type: ignore[arg-type]
    return key


def _shallow_keys(flat: list[object]) -> list[object]:
    """Key/value pairs with every deeply nested tuple key replaced by a marker."""
    return [_shallow(v) if i % 2 == 0 and type(v) is tuple else v for i, v in enumerate(flat)]  # type: ignore[arg-type]


def _cut(items: list[object]) -> list[object]:
    return items if len(items) <= KEEP_ITEMS else [*items[:KEEP_ITEMS], MORE]


def _pairs(flat: list[object]) -> list[tuple[object, object]]:
    return [(flat[i], flat[i + 1]) for i in range(0, min(len(flat), 2 * KEEP_ITEMS) - 1, 2)]


def _decode_str8(raw: bytes) -> str:
    """STRING/BINSTRING payloads as a str (UTF-8 like torch.load, else Latin-1)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _line_int(line: bytes, where: int) -> int:
    try:
        return int(line)
    except ValueError:
        raise _Break(f"invalid integer {line[:40]!r}", where) from None


def _strtol0(line: bytes) -> int | None:
    """C ``strtol(s, &end, 0)`` when it consumes the whole argument (up to a NUL), else None."""
    text = line.split(b"\0", 1)[0].lstrip(b" \t\r\f\v")
    sign = 1
    if text[:1] in (b"+", b"-"):
        sign = -1 if text[:1] == b"-" else 1
        text = text[1:]
    if text[:2].lower() == b"0x" and text[2:3] and text[2:3] in b"0123456789abcdefABCDEF":
        base, digits = 16, text[2:]
    elif text[:1] == b"0":
        base, digits = 8, text
    else:
        base, digits = 10, text
    allowed = {16: b"0123456789abcdefABCDEF", 8: b"01234567", 10: b"0123456789"}[base]
    if not digits or any(c not in allowed for c in digits):
        return None
    value = sign * int(digits, base)
    return value if -(1 << 63) <= value < (1 << 63) else None


def _text_value(op: int, line: bytes, where: int) -> object:
    """INT, LONG, FLOAT, STRING, UNICODE: the value CPython's C unpickler produces."""
    if op == 0x49:  # INT: C strtol(base 0) up to a newline or NUL, else Python int(x, 0)
        if line in (b"00", b"01"):
            return line == b"01"
        value = _strtol0(line)
        if value is not None:
            return value
    if op == 0x49 or op == 0x4C:  # INT fallback and LONG: Python int syntax, base 0, C string
        text = line.split(b"\0", 1)[0]
        if op == 0x4C and text.endswith(b"L"):
            text = text[:-1]
        try:
            return int(text, 0)
        except ValueError:
            raise _Break(f"invalid {OPNAMES[op]} argument {line[:40]!r}", where) from None
    if op == 0x46:  # FLOAT
        try:
            return float(line)
        except ValueError:
            raise _Break(f"invalid FLOAT {line[:40]!r}", where) from None
    if op == 0x53:  # STRING
        if len(line) >= 2 and line[:1] == line[-1:] and line[:1] in (b"'", b'"'):
            return _decode_str8(codecs.escape_decode(line[1:-1])[0])
        raise _Break("STRING argument is not quoted", where)
    try:  # UNICODE
        return line.decode("raw-unicode-escape")
    except UnicodeDecodeError as exc:
        raise _Break(f"invalid UNICODE argument: {exc.reason}", where) from None


# --- rendering ----------------------------------------------------------------------------------


def render(value: object, limit: int = 160) -> str:
    """A short, Python-like rendering of a VM value, for messages."""
    out = _render(value, 3)
    return out if len(out) <= limit else out[: limit - 3] + "..."


def _render(value: object, depth: int) -> str:
    if depth < 0:
        return "..."
    t = type(value)
    if t in (str, bytes, int, float, bool) or value is None:
        text = repr(value)
        return text if len(text) <= 200 else text[:197] + "..."
    if t is tuple:
        inner = ", ".join(_render(v, depth - 1) for v in value[:8])  # type: ignore[index]
        if len(value) > 8:  # type: ignore[arg-type]
            inner += ", ..."
        return f"({inner},)" if len(value) == 1 else f"({inner})"  # type: ignore[arg-type]
    if t is list:
        return "[" + ", ".join(_render(v, depth - 1) for v in value) + "]"  # type: ignore[attr-defined]
    if t is dict:
        return (
            "{"
            + ", ".join(
                "..." if k is MORE else f"{_render(k, depth - 1)}: {_render(v, depth - 1)}"
                for k, v in value.items()  # type: ignore[attr-defined]
            )
            + "}"
        )
    if t in (set, frozenset):
        inner = ", ".join(_render(v, depth - 1) for v in value)  # type: ignore[attr-defined]
        return f"{{{inner}}}" if inner else "set()"
    if t is Global:
        return value.dotted()  # type: ignore[attr-defined]
    if t is Call:
        return f"{_render(value.func, depth - 1)}(...)"  # type: ignore[attr-defined]
    if t is Big:
        return f"<{value.kind} of {value.length} bytes at offset {value.offset}>"  # type: ignore[attr-defined]
    if t is Persistent:
        return f"<persistent id {_render(value.pid, depth - 1)}>"  # type: ignore[attr-defined]
    return repr(value)


def render_args(args: object, kwargs: object = None, limit: int = 160) -> str:
    """Call arguments as ``'a', 1, key=2`` (the tuple ``('a', 1)`` without its brackets)."""
    parts = []
    if type(args) is tuple:
        parts.extend(_render(a, 2) for a in args)  # type: ignore[union-attr]
    elif args is not None:
        parts.append("*" + _render(args, 2))
    if type(kwargs) is dict:
        parts.extend(
            f"{k}={_render(v, 2)}" if type(k) is str else f"**{{{_render(k, 2)}: ...}}"
            for k, v in kwargs.items()
            if k is not MORE
        )  # type: ignore[union-attr]
    text = ", ".join(parts)
    return text if len(text) <= limit else text[: limit - 3] + "..."
