"""The VM's bulk paths (string runs, fused memo puts, bulk memo compaction) against CPython and
against the VM's own opcode-by-opcode loop (bulk string runs switched off).

Every stream here is built from builtins only (strings, ints, dicts, lists), so loading it with
CPython runs nothing. The memo is read back by appending GET opcodes that push chosen memo
entries into a tuple: the VM must return what ``pickle.loads`` returns.
"""

from __future__ import annotations

import io
import pickle
import struct

import pytest

from mlgate.analyzers.pickles import vm as pickle_vm
from mlgate.analyzers.pickles.vm import UNTRACKED, Events, PickleVM, StreamResult


def _run(data: bytes) -> StreamResult:
    return PickleVM(io.BytesIO(data), Events(), size=len(data)).run_stream()


def _without_bulk(monkeypatch: pytest.MonkeyPatch, data: bytes) -> StreamResult:
    with monkeypatch.context() as m:
        m.setattr(pickle_vm, "_STR_RUN_NEXT", {})
        return _run(data)


def _get(key: int) -> bytes:
    return b"h" + bytes([key]) if key < 256 else b"j" + struct.pack("<I", key)


def _with_memo_tail(data: bytes, keys: list[int]) -> bytes:
    """``data`` without its STOP, then POP, then a tuple of the memo entries at ``keys``."""
    assert data.endswith(b".")
    return data[:-1] + b"0(" + b"".join(_get(k) for k in keys) + b"t."


def _vocab(n: int, start: int = 0, text: str = "tok") -> dict[str, int]:
    return {f"{text}{i}": start + i for i in range(n)}


VOCABS = {
    "ascii-BININT1": _vocab(200),
    "ascii-BININT2": _vocab(3000, start=300),
    "ascii-BININT": _vocab(3000, start=70_000),
    "widths-mixed": _vocab(3000, start=0),
    "negative-ids": _vocab(2000, start=-5000),
    "non-ascii": _vocab(2000, text="Ġtök✓"),
    "empty-and-long-tokens": {"": 1, **{"x" * (i % 140): i for i in range(1, 400)}, **_vocab(500)},
}


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize("name", sorted(VOCABS))
def test_vocabularies_and_their_memo_match_cpython(monkeypatch, name: str, protocol: int):
    vocab = VOCABS[name]
    base = pickle.dumps(vocab, protocol=protocol)
    count = len(vocab) + 1
    keys = sorted({1, 2, 7, 255, 256, count // 2, count - 2, count - 1} & set(range(1, count)))  # 0: the dict
    data = _with_memo_tail(base, keys)
    expected = pickle.loads(data)
    result = _run(data)
    assert result.stopped, result.error
    assert result.value == expected
    assert result.end == len(data)
    slow = _without_bulk(monkeypatch, data)
    assert (slow.value, slow.end) == (result.value, result.end)


@pytest.mark.parametrize("protocol", [4, 5])
def test_lists_of_strings_match_cpython(monkeypatch, protocol: int):
    items = [f"s{i}" for i in range(5000)] + ["é" * 3, "", "z"] * 50
    data = _with_memo_tail(pickle.dumps(items, protocol=protocol), [1, 2, 100, 4999, 5000, 5001, 5003])
    result = _run(data)
    assert result.stopped, result.error
    assert result.value == pickle.loads(data)
    assert _without_bulk(monkeypatch, data).value == result.value


def _su(raw: bytes) -> bytes:
    return b"\x8c" + bytes([len(raw)]) + raw


@pytest.mark.parametrize("bad_at", [0, 5, 19])
def test_invalid_utf8_in_a_run_breaks_where_the_opcode_loop_does(monkeypatch, bad_at: int):
    entries = [_su(b"tok%d" % i) + b"\x94" + b"J" + struct.pack("<i", 70_000 + i) for i in range(20)]
    entries[bad_at] = _su(b"bad\xff\xfe") + b"\x94" + b"J" + struct.pack("<i", 7)
    data = b"\x80\x04}\x94(" + b"".join(entries) + b"u."
    with pytest.raises(UnicodeDecodeError):
        pickle.loads(data)
    result = _run(data)
    slow = _without_bulk(monkeypatch, data)
    assert not result.stopped and "UTF-8" in (result.error or "")
    assert (result.error, result.error_offset) == (slow.error, slow.error_offset)
    assert result.error_offset == 5 + sum(len(e) for e in entries[:bad_at])


def test_put_over_a_run_entry_is_what_get_returns():
    body = b"".join(_su(b"w%d" % i) + b"\x94" + b"K" + bytes([i]) for i in range(40))
    overwrite = _su(b"replaced") + b"q\x05" + b"0"  # BINPUT onto memo 5, inside the run's range
    data = b"\x80\x04}\x94(" + body + b"u" + overwrite + b"0(h\x05h\x06h\x28t."
    result = _run(data)
    assert result.stopped, result.error
    assert result.value == pickle.loads(data) == ("replaced", "w5", "w39")


def test_frame_ending_inside_a_run_is_transparent(monkeypatch):
    units = [_su(b"f%d" % i) + b"\x94" + b"M" + struct.pack("<H", 1000 + i) for i in range(300)]
    inner = b"}\x94(" + b"".join(units) + b"u0(h\x01h\x96t."
    cut = 3 + sum(map(len, units[:150])) + len(_su(b"f150")) + 1  # between a string's MEMOIZE and its int
    data = (
        b"\x80\x04"
        + b"\x95"
        + struct.pack("<Q", cut)
        + inner[:cut]
        + b"\x95"
        + struct.pack("<Q", len(inner) - cut + 1)
        + inner[cut:]
        + b"."
    )
    result = _run(data)
    assert result.stopped, result.error
    assert result.value == pickle.loads(data) == ("f0", "f149")
    assert _without_bulk(monkeypatch, data).value == result.value


def test_bulk_compaction_keeps_named_strings_and_drops_the_rest(monkeypatch):
    monkeypatch.setattr(pickle_vm, "HOT_MEMO", 1500)
    monkeypatch.setattr(pickle_vm, "RECENT_MEMO", 8)
    monkeypatch.setattr(pickle_vm, "CHUNK", 4096)
    monkeypatch.setattr(pickle_vm, "KEEP_STRINGS", 0)
    head = b"\x80\x04" + _su(b"os") + b"\x94" + b"0"  # memo 0: a string that names a module
    filler = b"".join(_su(b"word%d" % i) + b"\x94" + b"0" for i in range(4000))  # memo 1..4000
    data = head + filler + b"h\x00h\x05j" + struct.pack("<I", 3999) + b"\x87."
    result = PickleVM(io.BytesIO(data), Events(), size=len(data), names={"os"}).run_stream()
    assert result.stopped, result.error
    assert result.value == ("os", UNTRACKED, "word3998")


def test_bulk_compaction_respects_the_string_budget(monkeypatch):
    monkeypatch.setattr(pickle_vm, "HOT_MEMO", 1500)
    monkeypatch.setattr(pickle_vm, "RECENT_MEMO", 8)
    monkeypatch.setattr(pickle_vm, "CHUNK", 4096)
    monkeypatch.setattr(pickle_vm, "KEEP_STRINGS", 100)
    filler = b"".join(_su(b"word%d" % i) + b"\x94" + b"0" for i in range(4000))  # memo 0..3999
    data = b"\x80\x04" + filler + b"(h\x00h\x63h\x64j" + struct.pack("<I", 2000) + b"t."
    result = _run(data)
    assert result.stopped, result.error
    assert result.value == ("word0", "word99", UNTRACKED, UNTRACKED)


def test_a_run_longer_than_one_batch_is_decoded_in_several(monkeypatch):
    count = 2 * pickle_vm.RUN_MAX + 17  # one MARK group, no 1,000-item batching: several bulk runs
    units = b"".join(_su(b"t%d" % i) + b"\x94" + b"J" + struct.pack("<i", -i) for i in range(count))
    data = b"\x80\x04}\x94(" + units + b"u0(h\x01" + b"".join(_get(k) for k in (4096, 4097, 8192, count)) + b"t."
    result = _run(data)
    assert result.stopped, result.error
    assert result.value == pickle.loads(data) == ("t0", "t4095", "t4096", "t8191", f"t{count - 1}")
    assert _without_bulk(monkeypatch, data).value == result.value


def test_a_run_that_is_not_utf8_is_tried_once(monkeypatch):
    """The loop goes back to one opcode at a time up to the bad string, not to a retry every few
    hundred bytes (which would decode the same long run again and again)."""
    entries = [_su(b"tok%d" % i) + b"\x94" + b"K" + bytes([i % 256]) for i in range(3000)]
    entries[-1] = _su(b"bad\xff") + b"\x94" + b"K\x00"
    data = b"\x80\x04}\x94(" + b"".join(entries) + b"u."
    calls = []
    decode = pickle_vm._StrRun.decode

    def counted(self, buf, at):
        calls.append(at)
        return decode(self, buf, at)

    monkeypatch.setattr(pickle_vm._StrRun, "decode", counted)
    result = _run(data)
    assert not result.stopped and "UTF-8" in (result.error or "")
    assert result.error_offset == 5 + sum(map(len, entries[:-1]))
    assert len(calls) == 1


@pytest.mark.parametrize("int_op", [None, b"K", b"M", b"J"])
@pytest.mark.parametrize(
    "count", [7, 8, 9, pickle_vm.SHORT_RUN - 1, pickle_vm.SHORT_RUN, pickle_vm.SHORT_RUN + 1, 2000]
)
@pytest.mark.parametrize("cut", [0, 1, 3])
def test_short_runs_walked_in_python_read_as_the_regexes_do(monkeypatch, int_op, count: int, cut: int) -> None:
    """Runs up to ``SHORT_RUN`` units are walked without compiling the regexes: the same units and the
    same end as the regexes read, also when the buffer ends inside the last unit (``cut`` bytes short)."""
    width = {None: 0, b"K": 1, b"M": 2, b"J": 4}[int_op]
    tail = int_op + bytes(range(1, width + 1)) if int_op else b""
    buf = b"".join(_su(b"w%d" % i) + b"\x94" + tail for i in range(count)) + _su(b"abcde") + b"\x94"
    buf = buf[: len(buf) - cut]
    run = pickle_vm._STR_RUNS[int_op[0] if int_op else 0x8C]
    walked = run.decode(buf, 0)
    units = count + (int_op is None and cut == 0)  # "abcde" is a unit when no int is expected
    if units >= 8:
        assert walked is not None and walked[1][:7] == [f"w{i}" for i in range(7)]
    else:
        assert walked is None
    monkeypatch.setattr(pickle_vm, "SHORT_RUN", -1)  # every run through the regexes
    assert run.decode(buf, 0) == walked
