"""Issue 17, item 1: every start of a model file that a real loader accepts is recognised.

Each reproducer is built here from the standard library, numpy, h5py or joblib (no fixture
file), confirmed reachable by a real loader (the recording unpickler in ``recording``, numpy's
header reader, joblib's own decoder, h5py), and must be quarantined; its benign twin, built
the same way, must be approved. The payload, if it ever ran, would only touch a canary file.
"""

from __future__ import annotations

import io
import lzma
import os
import pickle
import struct
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest

from mlgate.analyzers.core.policy import Policy, Verdict
from mlgate.analyzers.pickles.vm import Call, Events, Global, PickleVM
from mlgate.controller.scanning import scan_target

from .recording import reaches, record

CANARY = "/tmp/mlgate-canary/hardening-starts"
# Protocol 0: os.system("touch <canary>") -- imported and called by every unpickler.
PAYLOAD0 = f"cos\nsystem\n(S'touch {CANARY}'\ntR.".encode()
BENIGN0 = b"ccollections\nOrderedDict\n(tR."
POP = b"0"
KERAS_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "keras_tf" / "keras"


class _Evil:
    def __reduce__(self) -> tuple[object, ...]:
        return os.system, (f"touch {CANARY}",)


def _reaches_system(data: bytes) -> bool:
    return reaches(data, "os", "system") or reaches(data, "posix", "system")


def _verdict(path: Path) -> tuple[Verdict, bool, list[str]]:
    report = scan_target(path, Policy())
    return report.verdict, report.scan_complete, [f"{f.rule} {f.message}" for f in report.findings]


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _check_pair(tmp_path: Path, name: str, evil: bytes, benign: bytes) -> None:
    assert _reaches_system(evil), "reproducer does not reach os.system in a real unpickler"
    assert not record(benign).error and not record(benign, python=True).error, record(benign).error
    verdict, _complete, findings = _verdict(_write(tmp_path, "evil_" + name, evil))
    assert verdict is Verdict.QUARANTINED, findings
    verdict, complete, findings = _verdict(_write(tmp_path, "benign_" + name, benign))
    assert verdict is Verdict.APPROVED and complete, findings


# --- pickle starts the sniffer used to miss (routing: issue 13) --------------------------------

_LEADS = {
    "NEWTRUE": b"\x88",
    "NEWFALSE": b"\x89",
    "LONG1": b"\x8a\x01\x07",
    "LONG4": b"\x8b\x01\x00\x00\x00\x07",
    "SHORT_BINUNICODE": b"\x8c\x02hi",
    "BINUNICODE8": b"\x8d" + struct.pack("<Q", 2) + b"hi",
    "BINBYTES8": b"\x8e" + struct.pack("<Q", 2) + b"hi",
    "BYTEARRAY8": b"\x96" + struct.pack("<Q", 2) + b"hi",
    "BINBYTES": b"B" + struct.pack("<I", 2) + b"hi",
    "SHORT_BINBYTES": b"C\x02hi",
}


@pytest.mark.parametrize("opcode", sorted(_LEADS))
def test_first_opcode_outside_the_protocol_0_start_set(tmp_path: Path, opcode: str) -> None:
    lead = _LEADS[opcode]
    _check_pair(tmp_path, f"{opcode}.pkl", lead + POP + PAYLOAD0, lead + POP + BENIGN0)


def test_frame_without_proto(tmp_path: Path) -> None:
    def framed(body: bytes) -> bytes:
        return b"\x95" + struct.pack("<Q", len(body)) + body

    _check_pair(tmp_path, "frame.pkl", framed(PAYLOAD0), framed(BENIGN0))


@pytest.mark.parametrize("size", [5000, 70000])
def test_first_operand_runs_past_the_sniff_window(tmp_path: Path, size: int) -> None:
    lead = b"B" + struct.pack("<I", size) + b"\x00" * size
    _check_pair(tmp_path, f"long_operand_{size}.pkl", lead + POP + PAYLOAD0, lead + POP + BENIGN0)


@pytest.mark.parametrize("proto", [0, 1])
def test_proto_0_and_1_headers(tmp_path: Path, proto: int) -> None:
    head = b"\x80" + bytes([proto])
    _check_pair(tmp_path, f"proto{proto}.pkl", head + PAYLOAD0, head + BENIGN0)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_large_first_value_then_payload(tmp_path: Path, protocol: int) -> None:
    """The normal ``pickle.dumps([large_bytes, obj])`` output: the first opcodes span the window."""
    big = bytes(range(256)) * 64
    evil = pickle.dumps([big, _Evil()], protocol=protocol)
    benign = pickle.dumps([big, {"weights": [1.0, 2.0]}], protocol=protocol)
    _check_pair(tmp_path, f"large_first_p{protocol}.pkl", evil, benign)


@pytest.mark.parametrize("literal", [b"I0x1f\n", b"I0o17\n", b"I0b101\n", b"L0x1fL\n", b"I 0x1f\n"])
def test_base_0_integer_literals(tmp_path: Path, literal: bytes) -> None:
    """The unpicklers read INT/LONG with ``int(x, 0)``; pickletools with ``int(x)``."""
    _check_pair(tmp_path, "int_literal.pkl", literal + POP + PAYLOAD0, literal + POP + BENIGN0)


@pytest.mark.parametrize("literal", [b"I0x1f\n", b"I0o17\n", b"I0b101\n", b"L0x1fL\n", b"I 0x1f\n", b"I-0x10\n"])
def test_vm_reads_base_0_literals_like_the_unpickler(literal: bytes) -> None:
    data = b"]" + literal + b"a" + PAYLOAD0[:-1] + b"a."
    events = _VMRecorder()
    result = PickleVM(io.BytesIO(data), events, size=len(data)).run_stream()
    assert result.stopped and result.error is None, result.error
    assert result.value[0] == pickle.loads(literal + b".")  # harmless: a bare integer
    assert events.globals == [("os", "system")] == record(data).imports


class _VMRecorder(Events):
    def __init__(self) -> None:
        self.globals: list[tuple[str | None, str | None]] = []

    def global_ref(self, module, name, offset, opcode, proto):
        self.globals.append((module, name))
        return Global(module, name, offset, opcode)

    def call(self, shape, func, args, kwargs, offset):
        return Call(func, args, kwargs, shape, offset)


def test_base_0_integer_literal_inside_the_stream(tmp_path: Path) -> None:
    """The VM follows the unpickler: the literal is a value, the stream goes on to the payload."""
    evil = b"]I0x1f\na" + PAYLOAD0[:-1] + b"a."  # list, append 0x1f, append os.system(...)
    benign = b"]I0x1f\na" + BENIGN0[:-1] + b"a."
    _check_pair(tmp_path, "int_inside.pkl", evil, benign)


# --- joblib ------------------------------------------------------------------------------------


def _joblib_decode(path: Path) -> bytes:
    """The pickle bytes ``joblib.load`` unpickles from ``path`` (joblib's own detection and decoders)."""
    from joblib import numpy_pickle_compat, numpy_pickle_utils

    with open(path, "rb") as fh:
        compressor = numpy_pickle_utils._detect_compressor(fh)
        fh.seek(0)
        if compressor == "compat":
            return numpy_pickle_compat.read_zfile(fh)
        wrapper = numpy_pickle_utils._COMPRESSORS[compressor]
        with wrapper.decompressor_file(fh) as dec:
            return dec.read()


def _check_joblib_pair(tmp_path: Path, name: str, build) -> None:
    evil_path = _write(tmp_path, "evil_" + name, build(pickle.dumps(_Evil(), protocol=2)))
    benign_path = _write(tmp_path, "benign_" + name, build(pickle.dumps({"w": [1, 2]}, protocol=2)))
    assert _reaches_system(_joblib_decode(evil_path))
    verdict, _complete, findings = _verdict(evil_path)
    assert verdict is Verdict.QUARANTINED, findings
    verdict, complete, findings = _verdict(benign_path)
    assert verdict is Verdict.APPROVED and complete, findings


@pytest.mark.parametrize("extra_space", [False, True])
def test_joblib_zf_compatibility_format(tmp_path: Path, extra_space: bool) -> None:
    from joblib import numpy_pickle_compat

    def build(data: bytes) -> bytes:
        out = io.BytesIO()
        numpy_pickle_compat.write_zfile(out, data)
        raw = out.getvalue()
        return raw[:21] + b" " + raw[21:] if extra_space else raw  # joblib <= 0.8.4 wrote one more space

    _check_joblib_pair(tmp_path, f"zf_{extra_space}.joblib", build)


@pytest.mark.parametrize("dict_size", [0, 3 << 16, 1 << 16, 3 << 23, 1 << 20])
def test_joblib_lzma_alone_dictionary_sizes(tmp_path: Path, dict_size: int) -> None:
    """joblib routes any ``]\\x00`` prefix to lzma.LZMAFile (FORMAT_AUTO), which accepts 2^n and 2^n+2^(n-1)."""

    def build(data: bytes) -> bytes:
        raw = lzma.compress(data, format=lzma.FORMAT_ALONE)
        return raw[:1] + struct.pack("<I", dict_size) + raw[5:]

    _check_joblib_pair(tmp_path, f"lzma_{dict_size}.joblib", build)


# --- numpy -------------------------------------------------------------------------------------


def _npy(descr: object, payload: bytes, shape: tuple[int, ...] = (1,)) -> bytes:
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode("latin-1")
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + payload


_OBJECT_DESCRS = [
    "|O",
    "object",
    "object_",
    "O8",
    "<O",
    ("O", (1,)),
    ("|O", ()),
    "i4,O",
    "(2,)O",
    [("a", "<i4"), ("b", "|O")],
    [("a", "<i4"), ("nested", [("x", "object")])],
    [(("title", "a"), "O", (2,))],
]


@pytest.mark.parametrize("descr", _OBJECT_DESCRS, ids=repr)
def test_npy_object_dtypes_in_every_spelling(tmp_path: Path, descr: object) -> None:
    from numpy.lib import format as npformat

    data = _npy(descr, pickle.dumps(_Evil(), protocol=2))
    stream = io.BytesIO(data)
    npformat.read_magic(stream)
    _shape, _fortran, dtype = npformat.read_array_header_1_0(stream)  # numpy's own header reader
    assert dtype.hasobject, f"numpy does not read {descr!r} as an object dtype"
    assert _reaches_system(stream.read())
    verdict, _complete, findings = _verdict(_write(tmp_path, "evil.npy", data))
    assert verdict is Verdict.QUARANTINED, findings


def test_npy_benign_object_array_and_plain_array_are_approved(tmp_path: Path) -> None:
    out = io.BytesIO()
    np.save(out, np.array([{"a": 1}, "x"], dtype=object), allow_pickle=True)
    verdict, _c, findings = _verdict(_write(tmp_path, "objects.npy", out.getvalue()))
    assert verdict is Verdict.APPROVED, findings
    out = io.BytesIO()
    np.save(out, np.zeros((2, 3), dtype=[("a", "<i4"), ("b", "<f8")]))
    verdict, complete, findings = _verdict(_write(tmp_path, "plain.npy", out.getvalue()))
    assert verdict is Verdict.APPROVED and complete, findings


# --- HDF5 user blocks --------------------------------------------------------------------------


def _with_user_block(source: Path, target: Path, userblock: int) -> Path:
    with h5py.File(source, "r") as src, h5py.File(target, "w", userblock_size=userblock) as dst:
        for key, value in src.attrs.items():
            dst.attrs[key] = value
        for key in src:
            src.copy(src[key], dst, name=key)
    return target


@pytest.mark.parametrize("userblock", [512, 4096, 16384])
def test_hdf5_superblock_after_a_user_block(tmp_path: Path, userblock: int) -> None:
    evil = _with_user_block(KERAS_FIXTURES / "evil_lambda_k3.h5", tmp_path / "evil.h5", userblock)
    benign = _with_user_block(KERAS_FIXTURES / "benign_k3.h5", tmp_path / "benign.h5", userblock)
    raw = evil.read_bytes()
    assert raw[:8] != b"\x89HDF\r\n\x1a\n" and raw[userblock : userblock + 8] == b"\x89HDF\r\n\x1a\n"
    with h5py.File(evil, "r") as h5:  # libhdf5 finds it
        assert "Lambda" in str(h5.attrs["model_config"])
    verdict, _complete, findings = _verdict(evil)
    assert verdict is Verdict.QUARANTINED, findings
    assert any("MLG-KER" in f for f in findings), findings
    verdict, complete, findings = _verdict(benign)
    assert verdict is Verdict.APPROVED and complete, findings


def test_hdf5_user_block_holding_other_content_is_read_both_ways(tmp_path: Path) -> None:
    """A user block may itself look like another format: the HDF5 view past it is read as well."""
    evil = _with_user_block(KERAS_FIXTURES / "evil_lambda_k3.h5", tmp_path / "evil.bin", 8192)
    raw = bytearray(evil.read_bytes())
    raw[: len(BENIGN0)] = BENIGN0  # a harmless pickle in the user block
    evil.write_bytes(bytes(raw))
    verdict, _complete, findings = _verdict(evil)
    assert verdict is Verdict.QUARANTINED, findings
    assert any("MLG-KER" in f for f in findings), findings


# --- truncation (item 3) -----------------------------------------------------------------------


@pytest.mark.parametrize("cut", [1, 2, 3, 7])
def test_pickle_cut_mid_opcode_is_incomplete(tmp_path: Path, cut: int) -> None:
    data = pickle.dumps({"weights": [1.5] * 40, "name": "x" * 300}, protocol=4)
    report = scan_target(_write(tmp_path, "cut.pkl", data[:-cut]), Policy())
    assert not report.scan_complete, [f.message for f in report.findings]
    assert report.verdict is Verdict.QUARANTINED


def test_zlib_of_pickle_round_trips(tmp_path: Path) -> None:
    """Control: a plain zlib-compressed joblib-style pickle is approved (the ZF codec reuses zlib)."""
    data = zlib.compress(pickle.dumps({"w": [1, 2]}, protocol=2))
    verdict, complete, findings = _verdict(_write(tmp_path, "plain.joblib", data))
    assert verdict is Verdict.APPROVED and complete, findings
