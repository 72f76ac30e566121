"""Loader parity (issue 13 items 1, 2, 8; the routing classes of issue 17 item 1).

Routing must never let a loadable pickle through: a name that selects a pickle loader always goes
through the pickle VM, any other stream starting with a pickle opcode does too, and the VM decides.
Every malicious stream here is first confirmed by a recording ``pickle`` unpickler (nothing runs),
so each test fails if mlgate approves what a loader would import and call.
"""

from __future__ import annotations

import io
import random
import struct
import zipfile

import numpy as np
import pytest

from mlgate.analyzers.core.artifact import Artifact
from mlgate.analyzers.core.policy import Policy, Verdict
from mlgate.analyzers.core.walker import ScanContext, ScanOptions, TargetScan, scan_artifacts
from mlgate.analyzers.pickles.names import Tier, classify

from .parity_builders import (
    PUSH_KINDS,
    frame,
    memoized,
    payload,
    proto,
    push_pop,
    random_stream,
    record,
)


def scan_named(data: bytes, name: str) -> TargetScan:
    """Scan ``data`` as a top-level file called ``name``, in memory, through the walker."""
    ctx = ScanContext(name, ScanOptions(compute_digest=False))
    return scan_artifacts([Artifact.from_bytes(data, name)], ctx, None)


def verdict(scan: TargetScan) -> Verdict:
    return Policy().decide(scan.findings, scan.complete, [])


def reaches_os_system(data: bytes) -> bool:
    rec_c, rec_py = record(data), record(data, python=True)
    return ("os", "system") in rec_c.globals and ("os", "system") in rec_py.globals and "os.system" in rec_c.calls


def names_system(scan: TargetScan) -> bool:
    return any(f.severity.label == "critical" and "os.system" in f.message for f in scan.findings)


# --- the sniffer's blind spots, one class at a time --------------------------------------------------
BIG = 6000  # past the 4096-byte sniff window
CLASSES: dict[str, bytes] = {
    "binbytes_p3": proto(3) + push_pop("BINBYTES", BIG) + payload("c1"),
    "short_binbytes_p3": proto(3) + push_pop("SHORT_BINBYTES", 200) + payload("c2"),
    "binunicode_no_proto": push_pop("BINUNICODE", BIG) + payload("c3"),
    "binstring_no_proto": push_pop("BINSTRING", BIG) + payload("c4"),
    "long_literal_p0": push_pop("LONG", 3000) + payload("c5"),
    "push_pop_pairs_p2": proto(2) + b"".join(push_pop("BININT1", 1) for _ in range(3000)) + payload("c6"),
    "proto0_header": proto(0) + payload("c7"),
    "proto1_header": proto(1) + push_pop("EMPTY_LIST", 0) + payload("c8"),
    "newtrue_first": push_pop("NEWTRUE", 0) + payload("c9"),
    "long1_first": push_pop("LONG1", 9) + payload("c10"),
    "short_binunicode_first": push_pop("SHORT_BINUNICODE", 5) + payload("c11"),
    "binunicode8_p4": proto(4) + push_pop("BINUNICODE8", BIG) + payload("c12", "stack_global"),
    "binbytes8_p4_framed": proto(4) + frame(push_pop("BINBYTES8", BIG) + payload("c13", "stack_global")),
    "frame_without_proto": frame(push_pop("BININT", 0) + payload("c14")),
    "bytearray8_p5": proto(5) + push_pop("BYTEARRAY8", BIG) + payload("c15"),
    "memoized_big_p4": proto(4) + memoized(push_pop("BINBYTES", BIG)) + payload("c16", "inst"),
}
NAMES = ["model.pkl", "pytorch_model.bin", "weights.ckpt", "archive.joblib", "data.dat", "notes.txt", "blob"]


@pytest.mark.parametrize("case", sorted(CLASSES))
def test_every_class_reaches_os_system_in_the_real_unpickler(case: str) -> None:
    assert reaches_os_system(CLASSES[case]), record(CLASSES[case]).error


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("case", sorted(CLASSES))
def test_sniffer_blind_spots_are_quarantined_under_any_name(case: str, name: str) -> None:
    scan = scan_named(CLASSES[case], name)
    assert verdict(scan) is Verdict.QUARANTINED
    assert names_system(scan), [f.message for f in scan.findings]
    hit = next(f for f in scan.findings if "os.system" in f.message)
    assert hit.location.startswith(f"{name}@")  # the byte offset of the call in the file


def test_object_array_pickle_is_always_run_through_the_vm() -> None:
    body = proto(3) + push_pop("BINBYTES", BIG) + payload("npy_obj")
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    text = header + " " * (63 - (len(header) + 10) % 64) + "\n"
    data = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode() + body
    scan = scan_named(data, "weights.npy")
    assert verdict(scan) is Verdict.QUARANTINED and names_system(scan)


def test_torch_zip_member_with_leading_operand_is_run_through_the_vm() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", proto(2) + push_pop("BINBYTES", BIG) + payload("torch_member"))
        zf.writestr("archive/version", b"3\n")
    scan = scan_named(buf.getvalue(), "model.pt")
    assert verdict(scan) is Verdict.QUARANTINED and names_system(scan)
    assert any(f.location.startswith("model.pt!archive/data.pkl@") for f in scan.findings if "os.system" in f.message)


def test_nested_loads_payload_with_leading_operand_is_walked() -> None:
    inner = proto(3) + push_pop("BINBYTES", 300) + payload("nested_inner")
    outer = b"\x80\x03cpickle\nloads\nC" + bytes([0]) + b"0" + b"B" + struct.pack("<I", len(inner)) + inner + b"\x85R."
    scan = scan_named(outer, "outer.pkl")
    assert any("os.system" in f.message for f in scan.findings)


# --- benign twins ------------------------------------------------------------------------------------
def _ctranslate2() -> bytes:
    return struct.pack("<I", 6) + b"\x0bmodel_spec\x00" + np.arange(64, dtype="<f4").tobytes()


def _fasttext() -> bytes:
    return struct.pack("<ii", 793712314, 12) + np.linspace(-1, 1, 64, dtype="<f4").tobytes()


def _word2vec() -> bytes:
    rng = np.random.default_rng(7)
    words = b"".join(
        w + b" " + rng.standard_normal(4).astype("<f4").tobytes() + b"\n" for w in (b"cat", b"dog", b"cow")
    )
    return b"3 4\n" + words


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("model.bin", _ctranslate2()),
        ("cc.en.300.bin", _fasttext()),
        ("vectors.bin", _word2vec()),
        ("raw_weights.bin", np.random.default_rng(3).standard_normal(4096).astype("<f4").tobytes()),
        ("table.dat", np.random.default_rng(4).integers(0, 2**31, 2048, dtype="<i4").tobytes()),
    ],
)
def test_opaque_bin_and_dat_files_are_approved_with_an_info_finding(name: str, data: bytes) -> None:
    scan = scan_named(data, name)
    assert verdict(scan) is Verdict.APPROVED and scan.complete
    assert [(f.rule, f.severity.label) for f in scan.findings] == [("MLG-CORE-012", "info")]
    assert "opaque to every loader" in scan.findings[0].message


def test_text_named_bin_is_not_mistaken_for_a_pickle() -> None:
    """``cat\ndog\n`` is a GLOBAL of ``at.dog`` that nothing calls: .bin content decides, and it is text."""
    scan = scan_named(b"cat\ndog\nfish\ncow\n", "labels.bin")
    assert [f for f in scan.findings if f.rule.startswith("MLG-PKL-")] == []
    assert "MLG-CORE-012" in {f.rule for f in scan.findings} and verdict(scan) is Verdict.APPROVED


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("vocab.txt", b"cat\ndog\nfish\ncow\n"),
        ("README.md", b"The model card.\n\nIt says things.\n"),
        ("requirements.txt", b"certifi==2024.1\nnumpy>=1.26\n"),
        ("merges.txt", b"#version: 0.2\nc a\nt h\n"),
        ("labels", b"cat\ndog\n"),
        ("tokens.txt", b"(\n)\n]\n}\n"),
    ],
)
def test_text_that_starts_with_opcode_letters_stays_clean(name: str, data: bytes) -> None:
    scan = scan_named(data, name)
    assert [f for f in scan.findings if f.rule.startswith(("MLG-PKL-", "MLG-CORE-"))] == []
    assert verdict(scan) is Verdict.APPROVED


def test_benign_pickles_behind_leading_operands_are_approved() -> None:
    data = proto(2) + push_pop("BINBYTES", BIG) + b"ccollections\nOrderedDict\n)R."
    for name in ("state.pkl", "pytorch_model.bin", "odd.txt"):
        scan = scan_named(data, name)
        assert verdict(scan) is Verdict.APPROVED, [f.message for f in scan.findings]


def test_empty_file_is_a_low_finding() -> None:
    for name in ("model.pkl", "model.bin", "notes.txt"):
        scan = scan_named(b"", name)
        assert [(f.rule, f.severity.label) for f in scan.findings] == [("MLG-CORE-013", "low")]


# --- the differential test ---------------------------------------------------------------------------
EXTENSIONS = [".pkl", ".pickle", ".pt", ".pth", ".bin", ".ckpt", ".joblib", ".dat", ".npy", ".npz", ".txt", "",
              ".json", ".h5", ".onnx", ".safetensors", ".msgpack", ".gguf", ".data", ".model", ".yaml"]  # fmt: skip


def test_differential_against_a_recording_unpickler() -> None:
    """600 generated streams (random protocol, harmless leading opcodes with random operands, memo use,
    framing, random extension): each one the real unpickler shows importing a global outside the
    allowlist is quarantined by mlgate with that global named."""
    rng = random.Random(1313)
    checked = benign = 0
    for i in range(600):
        stream = random_stream(rng, f"diff{i}")
        rec = record(stream.data)
        assert rec.error is None, (i, stream.leading, rec.error)  # every generated stream is loadable
        denied = [(m, n) for m, n in rec.globals if classify(m, n).tier is not Tier.ALLOWED]
        name = f"file{i}{rng.choice(EXTENSIONS)}"
        scan = scan_named(stream.data, name)
        if denied:
            checked += 1
            assert verdict(scan) is Verdict.QUARANTINED, (name, stream.protocol, stream.leading)
            module, func = denied[0]
            assert any(func in f.message and f.severity.label in ("high", "critical") for f in scan.findings), (
                name,
                stream.leading,
                [f.message for f in scan.findings],
            )
        else:
            benign += 1
    assert checked >= 500 and benign > 0


def test_every_push_kind_is_exercised() -> None:
    for kind in PUSH_KINDS:
        data = proto(5) + push_pop(kind, 5000) + payload(f"kind_{kind}")
        assert reaches_os_system(data), kind
        assert names_system(scan_named(data, f"{kind}.txt")), kind


class _Evil:
    """Pickled by the real pickler; its reduction names os.system (dumps never calls it)."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, ("touch /tmp/mlgate-canary/real_pickler_big_head",))


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
@pytest.mark.parametrize("name", ["model.pkl", "pytorch_model.bin", "blob", "notes.txt"])
def test_real_pickler_output_with_a_large_first_value(protocol: int, name: str) -> None:
    """``pickle.dumps([large_bytes, obj])``: the head the sniffer sees is one big operand."""
    import pickle

    data = pickle.dumps([bytes(range(256)) * 40, _Evil()], protocol=protocol)
    rec = record(data)
    assert ("posix", "system") in rec.globals and "posix.system" in rec.calls, rec
    scan = scan_named(data, name)
    assert verdict(scan) is Verdict.QUARANTINED
    assert any(f.severity.label == "critical" and "system" in f.message for f in scan.findings)
