"""The pickle VM against CPython's unpicklers on random pickles (issue 17, item 4).

Random streams of every protocol: harmless leading values (ints, floats, strings, bytes,
containers, produced by ``pickle.dumps`` so their operands are real), memo PUT/GET, framing,
nesting, and calls of globals (GLOBAL, or STACK_GLOBAL from protocol 4) with random arguments.
The VM's imported globals and called globals, in order, must equal what a recording
``pickle.Unpickler`` (C) and ``pickle._Unpickler`` (Python) see (where a real unpickler stops with
an error, what it saw must be a prefix of what the VM saw). Nothing is executed: the
recorders return stubs.
"""

from __future__ import annotations

import io
import pickle
import struct

from hardening.recording import record
from hypothesis import given
from hypothesis import strategies as st

from mlgate.analyzers.pickles.vm import Call, Events, Global, PickleVM

GLOBALS = [
    ("collections", "OrderedDict"),
    ("os", "system"),
    ("builtins", "getattr"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("subprocess", "Popen"),
    ("a.b.c", "d"),
]

_leaf = (
    st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.binary(max_size=40)
    | st.none()
    | st.booleans()
)
values = st.recursive(
    _leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.tuples(inner, inner) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)


def _body(value: object, protocol: int) -> bytes:
    """The opcodes that push ``value`` (pickle.dumps without PROTO, FRAME and STOP)."""
    data = pickle.dumps(value, protocol=protocol)
    if protocol >= 2:
        data = data[2:]
    if protocol >= 4 and data[:1] == b"\x95":
        data = data[9:]
    return data[:-1]


def _unicode(text: str) -> bytes:
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def _global(module: str, name: str, protocol: int, stack_global: bool) -> bytes:
    if protocol >= 4 and stack_global:
        return _unicode(module) + _unicode(name) + b"\x93"
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    protocol = draw(st.integers(0, 5))
    parts: list[bytes] = []
    memo = 0
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["value", "call", "call", "memo"]))
        if kind == "value" or (kind == "memo" and memo == 0):
            parts.append(_body(draw(values), protocol))
            if protocol >= 1 and draw(st.booleans()):
                parts.append(b"q" + bytes([200 + memo]))  # BINPUT, clear of the values' own memo slots
                memo += 1
        elif kind == "memo":
            parts.append(b"h" + bytes([200 + draw(st.integers(0, memo - 1))]))  # BINGET
        else:
            module, name = draw(st.sampled_from(GLOBALS))
            args = draw(st.lists(values, max_size=3))
            call = _global(module, name, protocol, draw(st.booleans()))
            call += b"(" + b"".join(_body(a, protocol) for a in args) + b"t" + b"R"
            parts.append(call)
    body = b"(" + b"".join(parts) + b"l"  # MARK ... LIST: every protocol has it
    if protocol >= 4 and draw(st.booleans()):
        body = b"\x95" + struct.pack("<Q", len(body) + 1) + body + b"."
    else:
        body += b"."
    head = b"\x80" + bytes([protocol]) if protocol >= 2 or draw(st.booleans()) else b""
    return head + body


class _Seen(Events):
    def __init__(self) -> None:
        self.imports: list[tuple[str | None, str | None]] = []
        self.calls: list[tuple[str | None, str | None]] = []

    def global_ref(self, module, name, offset, opcode, proto):
        self.imports.append((module, name))
        return Global(module, name, offset, opcode)

    def call(self, shape, func, args, kwargs, offset):
        if type(func) is Global:
            self.calls.append((func.module, func.name))
        return Call(func, args, kwargs, shape, offset)


@given(data=streams())
def test_vm_imports_and_calls_what_the_unpicklers_do(data: bytes) -> None:
    seen = _Seen()
    result = PickleVM(io.BytesIO(data), seen, size=len(data)).run_stream()
    for python in (False, True):
        rec = record(data, python=python)
        if rec.error is None:
            assert seen.imports == rec.imports, data
            assert seen.calls == rec.calls, data
            assert result.stopped and result.error is None, (result.error, data)
        else:  # the unpickler stopped (e.g. a memo slot reused with an unhashable value): the VM saw at least as much
            assert seen.imports[: len(rec.imports)] == rec.imports, (rec.error, data)
            assert seen.calls[: len(rec.calls)] == rec.calls, (rec.error, data)
