"""The opcode VM follows CPython's unpickler: checked against ``pickle.loads`` on harmless streams.

The oracle streams here are built in the test from builtins and containers only, so loading
them with CPython runs nothing; model fixtures are never loaded.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import time
import tracemalloc

import pytest

from mlgate.analyzers.pickles import vm as pickle_vm
from mlgate.analyzers.pickles.vm import MORE, UNTRACKED, Big, Call, Events, Global, PickleVM, StreamResult

from .helpers import by_rule, rules, scan_bytes


class Recorder(Events):
    """Keeps every global and call the VM reports."""

    def __init__(self) -> None:
        self.globals: list[tuple[str | None, str | None, str]] = []
        self.calls: list[tuple[str, object, object]] = []
        self.anomalies: list[tuple[str, int, str]] = []

    def global_ref(self, module, name, offset, opcode, proto):
        self.globals.append((module, name, opcode))
        return Global(module, name, offset, opcode)

    def call(self, shape, func, args, kwargs, offset):
        self.calls.append((shape, func, args))
        return Call(func, args, kwargs, shape, offset)

    def anomaly(self, kind, offset, detail):
        self.anomalies.append((kind, offset, detail))


def run(data: bytes, events: Events | None = None) -> tuple[list[StreamResult], Events]:
    events = events or Recorder()
    vm = PickleVM(io.BytesIO(data), events, size=len(data))
    out = []
    while not vm.at_eof():
        result = vm.run_stream()
        out.append(result)
        if not result.stopped:
            break
    return out, events


def su(text: str) -> bytes:
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


PLAIN = [
    {"a": [1, 2, 3], "b": (1.5, None, True, False), "c": "text", "n": -7, "big": 2**70, "neg": -(2**40)},
    [("x", 1), ("y", 2.25), {"nested": {"deep": ["ok"]}}],
    {"e": (), "l": [], "d": {}, "t1": (1,), "t3": (1, 2, 3), "f": 1e300},
    ["ü ñ unicode", "x" * 300, 0, 255, 256, 65535, 65536, -1],
    (2**31 - 1, -(2**31), True, None, "", b"\x00"[:0].decode()),
]


@pytest.mark.parametrize("protocol", range(6))
@pytest.mark.parametrize("index", range(len(PLAIN)))
def test_plain_values_match_cpython_for_every_protocol(protocol: int, index: int):
    obj = PLAIN[index]
    data = pickle.dumps(obj, protocol=protocol)
    (result,), _ = run(data)
    assert result.stopped and result.error is None
    assert result.value == pickle.loads(data) == obj
    assert result.end == len(data)


def test_sets_from_protocol_4():
    obj = {"s": {1, 2}, "f": frozenset({"a"})}
    for protocol in (4, 5):
        (result,), _ = run(pickle.dumps(obj, protocol=protocol))
        assert result.value == obj


def test_bytes_values_from_protocol_3():
    obj = {"b": b"\x00\x01" * 10, "ba": bytearray(b"xy")}
    for protocol in (3, 4, 5):
        (result,), _ = run(pickle.dumps(obj, protocol=protocol))
        assert result.value["b"] == obj["b"]


@pytest.mark.parametrize(
    "stream",
    [
        # a memo slot overwritten after a decoy: GET returns the latest PUT
        b"\x80\x02" + su("decoy") + b"q\x00" + b"0" + su("real") + b"q\x00" + b"0" + b"h\x00.",
        # MEMOIZE numbers entries by how many are defined, not by the highest key
        b"\x80\x04" + su("a") + b"r\x05\x00\x00\x00" + b"0" + su("b") + b"\x94" + b"0" + b"h\x01.",
        # MEMOIZE onto a key a PUT already defined overwrites it and keeps the count
        b"\x80\x04" + su("p") + b"q\x01" + b"0" + su("m0") + b"\x94" + b"0" + su("m1") + b"\x94" + b"0" + b"h\x01.",
        # text-mode PUT/GET and LONG_BINGET
        b"(S'x'\np7\n0g7\n.",
        b"\x80\x02" + su("v") + b"r\x00\x00\x01\x00" + b"0" + b"j\x00\x00\x01\x00.",
        # POP right after MARK pops the mark; DUP; POP_MARK
        b"\x80\x02" + b"K\x01" + b"(" + b"0" + b"K\x02" + b"\x86.",
        b"\x80\x02" + b"K\x05" + b"2" + b"\x86.",
        b"\x80\x02" + b"K\x07" + b"(K\x01K\x021.",
        # protocol-0 scalars: INT with base prefixes and bools, LONG, FLOAT, STRING escapes, UNICODE
        b"(I0x10\nI01\nI00\nL12L\nF2.5\nS'a\\nb'\nVcaf\\u00e9\nt.",
        # C strtol semantics for INT (PickleFuzzer's INT-base discrepancy): octal, NUL-terminated
        b"(I010\nI-010\nI1\x00junk\nI 12\nI99999999999999999999\nt.",
        # dict/list/set builders and item assignment
        b"\x80\x04}(" + su("k") + b"K\x01" + su("j") + b"K\x02u" + su("z") + b"K\x03s.",
        b"\x80\x04](K\x01K\x02eK\x03a.",
        b"\x80\x04\x8f(K\x01K\x02\x90.",
        b"\x80\x04(K\x01K\x02\x91.",
        b"(K\x01K\x02l.",
        b"(K\x01K\x02d.",
    ],
)
def test_stack_and_memo_semantics_match_cpython(stream: bytes):
    (result,), _ = run(stream)
    assert result.stopped, result.error
    assert result.value == pickle.loads(stream)


@pytest.mark.parametrize(
    ("stream", "error"),
    [
        (b"\x80\x02R.", "stack underflow"),  # REDUCE on an empty stack
        (b"\x80\x02(R.", "stack underflow"),  # nothing above the mark
        (b"\x80\x02h\x03.", "memo key 3"),  # GET before PUT
        (b"\x80\x02\xff.", "invalid opcode"),
        (b"\x80\x09.", "unsupported pickle protocol"),
        (b"I08\n.", "invalid INT"),  # not octal, not Python syntax: both unpicklers refuse it
        (b"\x80\x02}K\x01u.", "SETITEMS"),  # odd SETITEMS without MARK: underflow
        (b"\x80\x02}(]K\x01u.", "unhashable"),  # a list as a dict key, as CPython raises
    ],
)
def test_breaks_where_cpython_fails(stream: bytes, error: str):
    (result,), _ = run(stream)
    assert not result.stopped
    assert error in (result.error or "")
    with pytest.raises(Exception):  # noqa: B017 - CPython fails on the same bytes
        pickle.loads(stream)


def test_truncated_stream_is_flagged_and_keeps_the_call_before():
    data = b"\x80\x02cbuiltins\nlen\n(" + su("abc") + b"tR"
    (result,), events = run(data)
    assert result.truncated and not result.stopped
    assert [(shape, func.dotted()) for shape, func, _ in events.calls] == [("REDUCE", "builtins.len")]


@pytest.mark.parametrize(
    ("stream", "shape"),
    [
        (b"(cbuiltins\nlen\n" + su("x") + b"o.", "OBJ"),
        (b"(" + su("x") + b"ibuiltins\nlen\n.", "INST"),
        (b"\x80\x02cbuiltins\nlen\n)\x81.", "NEWOBJ"),
        (b"\x80\x04cbuiltins\nlen\n)}\x92.", "NEWOBJ_EX"),
        (b"\x80\x04" + su("builtins") + su("len") + b"\x93" + b"(" + su("x") + b"tR0N.", "REDUCE"),
    ],
)
def test_every_call_shape_is_reported(stream: bytes, shape: str):
    _, events = run(stream)
    assert [(s, f.dotted()) for s, f, _ in events.calls] == [(shape, "builtins.len")]


def test_build_and_item_assignment_on_objects_are_mutations():
    seen = []

    class Mutations(Recorder):
        def mutate(self, shape, target, payload, offset):
            seen.append((shape, type(target).__name__))

    stream = (
        b"\x80\x02cacme\nThing\n)\x81"
        + b"}"
        + b"b"
        + b"cacme\nThing\n)\x81"
        + b"K\x01K\x02s"
        + b"cacme\nThing\n)\x81"
        + b"(K\x01e"
        + b"\x87."
    )
    run(stream, Mutations())
    assert seen == [("BUILD", "Call"), ("SETITEM", "Call"), ("APPENDS", "Call")]


def test_second_stream_after_stop_is_read():
    data = pickle.dumps([1], protocol=2) + pickle.dumps({"b": 2}, protocol=4)
    results, _ = run(data)
    assert [r.value for r in results] == [[1], {"b": 2}]


def test_large_bytes_are_skipped_not_held():
    payload = b"\x07" * (pickle_vm.INLINE_MAX + 10)
    data = b"\x80\x04\x8e" + struct.pack("<Q", len(payload)) + payload + b"."
    (result,), _ = run(data)
    assert type(result.value) is Big
    assert (result.value.offset, result.value.length, result.value.head[:3]) == (11, len(payload), b"\x07" * 3)


def test_containers_keep_a_bounded_sample():
    (result,), _ = run(pickle.dumps(list(range(5000)), protocol=4))
    assert result.value[: pickle_vm.KEEP_ITEMS] == list(range(pickle_vm.KEEP_ITEMS))
    assert result.value[-1] is MORE


def test_memo_compaction_keeps_names_and_drops_plain_data(monkeypatch):
    monkeypatch.setattr(pickle_vm, "HOT_MEMO", 64)
    monkeypatch.setattr(pickle_vm, "RECENT_MEMO", 8)
    monkeypatch.setattr(pickle_vm, "CHUNK", 256)
    monkeypatch.setattr(pickle_vm, "KEEP_STRINGS", 0)
    head = b"\x80\x04" + su("os") + b"\x94" + b"0" + b"]\x94" + b"0"  # memo 0: a name, memo 1: a list
    filler = b"".join(su(f"word{i}") + b"\x94" + b"0" for i in range(400))  # memo 2..401, data strings
    tail = b"h\x00h\x01h\x02\x87."
    data = head + filler + tail
    result = PickleVM(io.BytesIO(data), Events(), size=len(data), names={"os"}).run_stream()
    assert result.stopped
    assert result.value == ("os", UNTRACKED, UNTRACKED)


def test_opcode_dense_pickles_are_linear_and_flat():
    """Billion-laughs style input (DUP/APPENDS storms) costs time and memory linear in its bytes."""
    storm = b"\x80\x04]\x94" + (b"(" + b"h\x00" * 1000 + b"e") * 200 + b"."
    start = time.perf_counter()
    tracemalloc.start()
    (result,), _ = run(storm)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert result.stopped
    assert time.perf_counter() - start < 5
    assert peak < 32 * 1024 * 1024


def frame(body: bytes) -> bytes:
    return b"\x95" + struct.pack("<Q", len(body)) + body


def test_frame_straddle_matches_how_cpython_readers_diverge(tmp_path):
    """A BININT crossing its FRAME end: pickle.loads reads on, pickle.load(BytesIO) re-reads after
    the frame. The second reading's call (a harmless stdlib function here) must be reported."""
    payload = b"c_operator\nadd\n(K\x02K\x03tR"
    data = (
        b"\x80\x04"
        + frame(b"K\x01" + b"0" + b"J\x00\x00")
        + b"\x00\x00"
        + b"C"
        + bytes([len(payload)])
        + payload
        + b"0."
    )
    assert pickle.loads(data) != pickle.load(io.BytesIO(data))  # the two CPython readings really differ
    scan = scan_bytes(tmp_path, data)
    (frame_finding,) = by_rule(scan.findings, "MLG-PKL-020")
    assert "pickle.load(io.BytesIO) (torch.load) skips bytes" in frame_finding.message
    (add,) = by_rule(scan.findings, "MLG-PKL-011")
    assert "operator.add(2, 3)" in add.message and "as read by pickle.load on an io.BytesIO" in add.message


def test_frame_longer_than_the_data_is_reported(tmp_path):
    data = b"\x80\x04" + frame(b"K\x01.")[:-1][:9] + b"\xff" * 0  # header only, declared 3 bytes
    data = b"\x80\x04\x95" + struct.pack("<Q", 500) + b"K\x01."
    assert pickle._Unpickler(io.BytesIO(data)).load() == 1  # the pure-Python reader runs it
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(data)  # the C reader refuses it
    scan = scan_bytes(tmp_path, data)
    assert "MLG-PKL-020" in rules(scan.findings)


def test_frames_written_by_cpython_raise_nothing(tmp_path):
    data = pickle.dumps({"k": list(range(20000)), "s": ["x" * 100] * 2000}, protocol=5)
    assert rules(scan_bytes(tmp_path, data).findings) == set()


def test_broken_protocol0_payload_is_still_routed_and_reported(tmp_path):
    """No PROTO, a call, then garbage: still a pickle to every loader (and to the sniffer)."""
    data = b"cos\nsystem\n(S'touch /tmp/mlgate-canary/proto0_broken'\ntR\xff\xfe"
    scan = scan_bytes(tmp_path, data, "weights.bin")
    assert {"MLG-PKL-002", "MLG-PKL-023"} <= rules(scan.findings)
    assert not scan.complete


def test_trailing_non_pickle_data_is_reported_and_walked(tmp_path):
    data = pickle.dumps({"a": 1}, protocol=2) + b"\x00\x01 not a pickle"
    scan = scan_bytes(tmp_path, data, "blob")
    assert rules(scan.findings) == {"MLG-PKL-022"}
    assert scan.complete
    # Under a name that promises a pickle, the trailing bytes must be a pickle too (issue 13 item 2).
    scan = scan_bytes(tmp_path, data, "model.pkl")
    assert rules(scan.findings) == {"MLG-PKL-022"}
    assert [f.location for f in scan.findings if f.rule == "MLG-CORE-011"] == ["model.pkl!@17"]
    assert not scan.complete


def test_counts_like_collections_are_plain(tmp_path):
    data = pickle.dumps(collections.Counter("abc"), protocol=2)
    assert rules(scan_bytes(tmp_path, data).findings) == set()


DEEP = b")" + b"\x85" * 200_000  # a tuple nested 200,000 levels deep


@pytest.mark.parametrize(
    "data",
    [
        b"\x80\x04}" + DEEP + b"K\x01s.",  # SETITEM
        b"\x80\x04}(" + DEEP + b"K\x01u.",  # SETITEMS
        b"\x80\x04(" + DEEP + b"K\x01d.",  # DICT
        b"\x80\x04(" + DEEP + b"\x91.",  # FROZENSET
        b"\x80\x04\x8f(" + DEEP + b"\x90.",  # ADDITEMS
    ],
    ids=["SETITEM", "SETITEMS", "DICT", "FROZENSET", "ADDITEMS"],
)
def test_deeply_nested_tuple_keys_do_not_crash_the_scanner(tmp_path, data: bytes):
    """CPython's tuple hash recurses in C: hashing a 200,000-deep tuple kills the process."""
    scan = scan_bytes(tmp_path, data)
    assert scan.complete and rules(scan.findings) == set()


def _call(module: str, name: str, *args: bytes) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n(" + b"".join(args) + b"tR"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (_call("numpy.core", "_ufunc_reconstruct", su("numpy"), su("log1p")), set()),  # numpy 1.x ufuncs
        (_call("numpy.core", "_ufunc_reconstruct", su("os"), su("system")), {"MLG-PKL-002"}),
        (_call("cloudpickle.cloudpickle", "subimport", su("os")), set()),  # a function's globals import os
        (_call("cloudpickle.cloudpickle", "subimport", su("antigravity")), {"MLG-PKL-003"}),  # import side effect
        (_call("functools", "partial", b"cbuiltins\nlen\n"), set()),
        (_call("functools", "partial", b"cacme\nhelper\n"), {"MLG-PKL-012"}),
    ],
)
def test_allowed_resolvers_are_judged_by_what_they_resolve(tmp_path, body: bytes, expected: set[str]):
    scan = scan_bytes(tmp_path, b"\x80\x02" + body + b".")
    assert rules(scan.findings) == expected
