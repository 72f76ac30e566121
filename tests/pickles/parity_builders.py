"""Builders for the loader-parity tests: pickle streams a sniffer misreads, and a recording unpickler.

Streams are assembled opcode by opcode (``pickletools`` names) so each class of sniffer blind spot
can be built on purpose; every payload is ``os.system('touch /tmp/mlgate-canary/<name>')``.
``record`` runs a stream through a real ``pickle`` unpickler whose ``find_class`` records the name
and returns a stub: it shows what a loader would import and call, and executes nothing.
"""

from __future__ import annotations

import io
import pickle
import random
import struct
from dataclasses import dataclass, field


def canary(name: str) -> bytes:
    return f"touch /tmp/mlgate-canary/{name}".encode()


# --- opcodes ----------------------------------------------------------------------------------------
def proto(n: int) -> bytes:
    return b"\x80" + bytes([n])


def frame(rest: bytes) -> bytes:
    return b"\x95" + struct.pack("<Q", len(rest)) + rest


def short_binunicode(text: str) -> bytes:
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def global_reduce(module: str, name: str, arg: bytes) -> bytes:
    """``GLOBAL module name`` + ``(S'arg'`` ``t`` ``R`` (protocol 0 spelling, valid in every protocol)."""
    return f"c{module}\n{name}\n".encode() + b"(" + b"S" + repr(arg.decode()).encode() + b"\ntR"


def stack_global_reduce(module: str, name: str, arg: bytes) -> bytes:
    """Protocol 4: ``SHORT_BINUNICODE module, name, STACK_GLOBAL, arg, TUPLE1, REDUCE``."""
    return short_binunicode(module) + short_binunicode(name) + b"\x93" + short_binunicode(arg.decode()) + b"\x85R"


def inst(module: str, name: str, arg: bytes) -> bytes:
    return b"(" + b"S" + repr(arg.decode()).encode() + b"\n" + f"i{module}\n{name}\n".encode()


def payload(name: str, style: str = "global", module: str = "os", func: str = "system") -> bytes:
    """The malicious tail: import and call, then STOP."""
    builder = {"global": global_reduce, "stack_global": stack_global_reduce, "inst": inst}[style]
    return builder(module, func, canary(name)) + b"."


def benign_payload() -> bytes:
    """An allowlisted call: ``collections.OrderedDict()``."""
    return b"ccollections\nOrderedDict\n)R."


# --- harmless leading opcodes ----------------------------------------------------------------------
_ALPHABET = b"abcdefghijklmnopqrstuvwxyz0123456789 "
_ASCII = bytes(_ALPHABET[i % len(_ALPHABET)] for i in range(256))


def push_pop(kind: str, size: int, rng: random.Random | None = None) -> bytes:
    """One harmless push (of ``size`` bytes of operand where it has one) followed by POP."""
    rng = rng or random.Random(size)
    data = (rng.randbytes(64) * (size // 64 + 1))[:size]
    ascii_ = data.translate(_ASCII)
    ops = {
        "BINBYTES": lambda: b"B" + struct.pack("<I", size) + data,
        "SHORT_BINBYTES": lambda: b"C" + bytes([size % 256]) + data[: size % 256],
        "BINBYTES8": lambda: b"\x8e" + struct.pack("<Q", size) + data,
        "BYTEARRAY8": lambda: b"\x96" + struct.pack("<Q", size) + data,
        "BINUNICODE": lambda: b"X" + struct.pack("<I", size) + ascii_,
        "SHORT_BINUNICODE": lambda: b"\x8c" + bytes([size % 256]) + ascii_[: size % 256],
        "BINUNICODE8": lambda: b"\x8d" + struct.pack("<Q", size) + ascii_,
        "BINSTRING": lambda: b"T" + struct.pack("<i", size) + ascii_,
        "SHORT_BINSTRING": lambda: b"U" + bytes([size % 256]) + ascii_[: size % 256],
        "STRING": lambda: b"S'" + ascii_.replace(b"'", b"") + b"'\n",
        "UNICODE": lambda: b"V" + ascii_ + b"\n",
        "LONG": lambda: b"L" + str(rng.randrange(10 ** min(size, 4000))).encode() + b"L\n",
        "INT": lambda: b"I" + str(rng.randrange(-(2**31), 2**31)).encode() + b"\n",
        "LONG1": lambda: b"\x8a" + bytes([size % 256]) + data[: size % 256],
        "LONG4": lambda: b"\x8b" + struct.pack("<i", size) + data,
        "FLOAT": lambda: b"F" + repr(rng.random()).encode() + b"\n",
        "BINFLOAT": lambda: b"G" + struct.pack(">d", rng.random()),
        "BININT": lambda: b"J" + struct.pack("<i", rng.randrange(-(2**31), 2**31)),
        "BININT1": lambda: b"K" + bytes([rng.randrange(256)]),
        "BININT2": lambda: b"M" + struct.pack("<H", rng.randrange(65536)),
        "NONE": lambda: b"N",
        "NEWTRUE": lambda: b"\x88",
        "NEWFALSE": lambda: b"\x89",
        "EMPTY_LIST": lambda: b"]",
        "EMPTY_DICT": lambda: b"}",
        "EMPTY_TUPLE": lambda: b")",
        "EMPTY_SET": lambda: b"\x8f",
        "MARK_TUPLE": lambda: b"(KAK\x02t",
        "MARK_LIST": lambda: b"(K\x01l",
        "MARK_POP_MARK": lambda: b"(K\x01K\x02",  # POP_MARK instead of POP below
    }
    body = ops[kind]()
    if kind == "MARK_POP_MARK":
        return body + b"1"
    return body + b"0"


PUSH_KINDS = (
    "BINBYTES SHORT_BINBYTES BINBYTES8 BYTEARRAY8 BINUNICODE SHORT_BINUNICODE BINUNICODE8 BINSTRING SHORT_BINSTRING "
    "STRING UNICODE LONG INT LONG1 LONG4 FLOAT BINFLOAT BININT BININT1 BININT2 NONE NEWTRUE NEWFALSE EMPTY_LIST "
    "EMPTY_DICT EMPTY_TUPLE EMPTY_SET MARK_TUPLE MARK_LIST MARK_POP_MARK"
).split()
PROTO5_ONLY = frozenset({"BYTEARRAY8"})
PROTO4_ONLY = frozenset({"BINUNICODE8", "BINBYTES8"})


def memoized(push: bytes) -> bytes:
    """Turn ``push + POP`` into ``push + MEMOIZE + POP`` (memo use without changing the stack)."""
    return push[:-1] + b"\x94" + push[-1:]


@dataclass
class Stream:
    data: bytes
    protocol: int | None  # None: no PROTO opcode
    leading: list[str] = field(default_factory=list)
    style: str = "global"
    benign: bool = False


def random_stream(rng: random.Random, name: str) -> Stream:
    """A random protocol header, 1-6 harmless pushes with random operand sizes, then the payload."""
    protocol = rng.choice([None, 0, 1, 2, 3, 4, 5])
    effective = protocol or 0
    kinds = [k for k in PUSH_KINDS if (k not in PROTO5_ONLY or effective >= 5)]
    leading = [rng.choice(kinds) for _ in range(rng.randint(1, 6))]
    parts = []
    for kind in leading:
        size = rng.choice([0, 1, 7, 200, 3000, 4090, 5000, 9000, 20000])
        push = push_pop(kind, size, rng)
        if effective >= 4 and rng.random() < 0.3:
            push = memoized(push)
        parts.append(push)
    benign = rng.random() < 0.15
    style = rng.choice(["global", "inst"] + (["stack_global"] if effective >= 4 else []))
    tail = benign_payload() if benign else payload(name, style, *rng.choice(_TARGETS))
    body = b"".join(parts) + tail
    if effective >= 4 and rng.random() < 0.5:
        body = frame(body)
    head = proto(protocol) if protocol is not None else b""
    return Stream(head + body, protocol, leading, style, benign)


_TARGETS = [("os", "system"), ("posix", "system"), ("subprocess", "getoutput"), ("builtins", "exec"), ("nt", "system")]


# --- the recording unpickler ------------------------------------------------------------------------
class _Stub:
    """What a recorded global resolves to: callable, attribute-tolerant, records every call."""

    def __init__(self, rec: Recording, dotted: str) -> None:
        self._rec = rec
        self._dotted = dotted

    def __call__(self, *args: object, **kwargs: object) -> _Stub:
        self._rec.calls.append(self._dotted)
        return _Stub(self._rec, f"{self._dotted}()")

    def __setstate__(self, state: object) -> None:
        pass


@dataclass
class Recording:
    globals: list[tuple[str, str]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    error: str | None = None


def record(data: bytes, python: bool = False) -> Recording:
    """Run ``data`` through ``pickle``'s own unpickler (C, or the pure-Python one) with stub globals."""
    rec = Recording()
    base = pickle._Unpickler if python else pickle.Unpickler  # type: ignore[attr-defined]

    class Recorder(base):  # type: ignore[misc, valid-type]
        def find_class(self, module: str, name: str) -> object:
            rec.globals.append((module, name))
            return _Stub(rec, f"{module}.{name}")

    try:
        Recorder(io.BytesIO(data)).load()
    except Exception as exc:  # noqa: BLE001 - record how the load ended; nothing real ran
        rec.error = f"{type(exc).__name__}: {exc}"
    return rec
