"""Container specifics: NumPy headers, joblib inline arrays, torch zip roots and legacy plans."""

from __future__ import annotations

import io
import pickle
import struct

import numpy as np
import pytest

from mlgate.analyzers.pickles.joblib_arrays import dtype_info, inline_data
from mlgate.analyzers.pickles.numpy_arrays import has_objects, itemsize
from mlgate.analyzers.pickles.pytorch import LegacyStorages, torch_root
from mlgate.analyzers.pickles.vm import Call, Events, Global, InlineBytes, InlinePickle, PickleVM

from .helpers import by_rule, rules, scan_bytes


def npy(header: str, body: bytes = b"", version: int = 1) -> bytes:
    text = header + " " * (63 - (len(header) + 10) % 64) + "\n"
    size = struct.pack("<H", len(text)) if version == 1 else struct.pack("<I", len(text))
    return b"\x93NUMPY" + bytes([version, 0]) + size + text.encode("latin-1") + body


@pytest.mark.parametrize(
    ("descr", "objects", "size"),
    [
        ("<f8", False, 8),
        ("|O", True, 8),
        ("<U5", False, 20),
        ("|S3", False, 3),
        ("|b1", False, 1),
        ("<M8[ns]", False, 8),
        ("<c16", False, 16),
        ("|V7", False, 7),
        ([("a", "<i4"), ("b", "|O")], True, 12),
        ([("a", "<i4"), ("b", [("c", "<f8"), ("d", "|O")])], True, 20),  # nested structured
        ([("a", "<i4"), ("b", "<f8", (2, 3))], False, 52),
    ],
)
def test_descr_objects_and_itemsize(descr, objects: bool, size: int):
    assert has_objects(descr) is objects
    assert itemsize(descr) == size
    if not isinstance(descr, list) or not objects:
        assert np.dtype(descr).itemsize == size  # numpy agrees


def test_npy_versions_and_header_is_literal_only(tmp_path):
    plain = np.arange(6, dtype="<f4").tobytes()
    for version in (1, 2, 3):
        data = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", plain, version)
        assert rules(scan_bytes(tmp_path, data, "a.npy").findings) == set()
    evil = npy("{'descr': __import__('os').system('touch /tmp/mlgate-canary/npy_header'), 'shape': ()}")
    scan = scan_bytes(tmp_path, evil, "evil.npy")
    assert "MLG-CORE-003" in rules(scan.findings, mine=False) and not scan.complete


def test_npy_size_checks(tmp_path):
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }"
    short = scan_bytes(tmp_path, npy(header, b"\x00" * 8), "short.npy")
    assert rules(short.findings) == {"MLG-NPY-002"}
    extra = scan_bytes(tmp_path, npy(header, b"\x00" * 16 + pickle.dumps([1], protocol=2)), "extra.npy")
    assert rules(extra.findings) == {"MLG-NPY-003"}


def dtype_call(descr: str, state: tuple | None) -> Call:
    call = Call(Global("numpy", "dtype", 0, "GLOBAL"), (descr, False, True), None, "REDUCE", 0)
    call.state = state
    return call


def test_joblib_sizes_from_the_wrapper_state():
    f8 = dtype_call("f8", (3, "<", None, None, None, -1, -1, 0))
    u5 = dtype_call("U5", (3, "<", None, None, None, 20, 4, 8))
    obj = dtype_call("O8", (3, "|", None, None, None, -1, -1, 63))
    assert dtype_info(f8) == (8, False) and dtype_info(u5) == (20, False) and dtype_info(obj) == (8, True)
    state = {"shape": (3, 4), "dtype": f8, "order": "C", "numpy_array_alignment_bytes": 16}
    assert inline_data(state) == InlineBytes(nbytes=96, padded=True)
    assert inline_data({**state, "dtype": obj}) == InlinePickle()
    assert inline_data({"shape": (2,), "dtype": f8}) == InlineBytes(nbytes=16, padded=False)  # joblib < 1.2
    assert inline_data({"shape": ("x",), "dtype": f8}) is None


def test_joblib_wrapper_that_cannot_be_sized_fails_closed(tmp_path):
    wrapper = (
        b"\x80\x04\x8c\x13joblib.numpy_pickle\x8c\x11NumpyArrayWrapper\x93)\x81}(\x8c\x05shape"
        b"\x8c\x01x\x8c\x05dtypeNub" + b"\x01\x02\x03 raw array bytes"
    )
    scan = scan_bytes(tmp_path, wrapper, "m.joblib")
    assert {"MLG-PKL-025", "MLG-PKL-023"} <= rules(scan.findings)
    assert not scan.complete


def test_torch_root_is_taken_from_the_first_entry():
    class E:
        def __init__(self, name: str) -> None:
            self.name = name

    assert torch_root([E("anything/data.pkl"), E("anything/version")]) == "anything"  # type: ignore[list-item]
    assert torch_root([E("data.pkl")]) == ""  # type: ignore[list-item]
    assert torch_root([E("a/version"), E("b/data.pkl")]) is None  # type: ignore[list-item]


def test_legacy_storages_plan_steps_over_raw_data():
    storage = Global("torch", "FloatStorage", 0, "GLOBAL")
    data = (
        pickle.dumps(1, protocol=2)
        + b"\x80\x02(X\x01\x00\x00\x000X\x03\x00\x00\x00cpuctorch\nFloatStorage\nt."
        + struct.pack("<q", 3)
        + b"\x00" * 12
        + pickle.dumps([], protocol=2)
    )
    vm = PickleVM(io.BytesIO(data), Events(), size=len(data))
    plan = LegacyStorages()
    values = []
    while not vm.at_eof():
        result = vm.run_stream()
        assert result.stopped, result.error
        values.append(result.value)
        if not plan.after(len(values), result.value, vm):
            break
    assert values[0] == 1 and values[1][2].dotted() == storage.dotted() and values[2] == []
    assert vm.at_eof()


def test_torchscript_custom_ops_are_flagged_but_standard_ones_are_not(tmp_path):
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("m/data.pkl", pickle.dumps({}, protocol=2))
        z.writestr("m/version", "3\n")
        z.writestr("m/code/__torch__/m.py", "def f(x):\n  y = torch.ops.aten.relu(x)\n  return torch.ops.evil.run(y)\n")
    scan = scan_bytes(tmp_path, out.getvalue(), "m.pt")
    (finding,) = by_rule(scan.findings, "MLG-PT-002")
    assert "torch.ops.evil" in finding.message and finding.location == "m.pt!m/code/__torch__/m.py"


def test_torchscript_source_is_not_reported_as_remote_code():
    """torch.jit.save writes code/__torch__/*.py; torch.jit compiles it, nothing imports it."""
    import zipfile
    from pathlib import Path

    from mlgate.analyzers.core.walker import scan_path

    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "pickles" / "benign" / "torchscript.pt"
    assert any("/code/__torch__/" in n and n.endswith(".py") for n in zipfile.ZipFile(fixture).namelist())
    assert [f for f in scan_path(fixture).findings if f.rule == "MLG-CODE-001"] == []
