"""A promised format that does not parse is an incomplete scan (issue 13 item 2).

1,000 random byte strings under each name that promises a format (a fixed seed; small files, scanned
in memory through the walker): none may come back approved as a complete scan. A third of them start
with the format's real magic bytes, so each analyzer's own failure path is exercised, not only the
sniffer. ``.bin`` and ``.dat`` are the named exception (content decides, with an info finding).
"""

from __future__ import annotations

import io
import random
import struct
from pathlib import Path

import pytest

from mlgate.analyzers.core.artifact import Artifact
from mlgate.analyzers.core.kinds import OPAQUE_SUFFIXES, PROMISES
from mlgate.analyzers.core.policy import Policy, Verdict
from mlgate.analyzers.core.walker import ScanContext, ScanOptions, TargetScan, scan_artifacts

FILES_PER_NAME = 1000
MAGIC = {
    ".pkl": [b"\x80\x04\x95", b"\x80\x02", b"(dp0\n"],
    ".pickle": [b"\x80\x05", b"]q\x00("],
    ".pt": [b"PK\x03\x04", b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 jQ"],
    ".pth": [b"PK\x03\x04", b"\x80\x02"],
    ".ckpt": [b"PK\x03\x04", b"\x80\x04"],
    ".joblib": [b"\x80\x04", b"x\x9c", b"\x1f\x8b\x08", b"BZh9", b"\xfd7zXZ\x00", b"\x04\x22\x4d\x18"],
    ".npy": [b"\x93NUMPY\x01\x00", b"\x93NUMPY\x02\x00"],
    ".npz": [b"PK\x03\x04", b"\x93NUMPY\x01\x00"],
    ".h5": [b"\x89HDF\r\n\x1a\n"],
    ".hdf5": [b"\x89HDF\r\n\x1a\n"],
    ".keras": [b"PK\x03\x04", b"\x89HDF\r\n\x1a\n"],
    ".onnx": [b"\x08\x07\x12\x04", b"\x08"],
    ".safetensors": [struct.pack("<Q", 40) + b'{"', struct.pack("<Q", 2) + b"{}"],
    ".gguf": [b"GGUF\x03\x00\x00\x00"],
    ".msgpack": [b"\x81\xa6params", b"\xde\x00\x02"],
    "saved_model.pb": [b"\x08\x01\x12", b"\x12"],
}
NAMES = sorted(MAGIC)


def _name(key: str) -> str:
    return key if not key.startswith(".") else f"model{key}"


def scan_named(data: bytes, name: str) -> TargetScan:
    ctx = ScanContext(name, ScanOptions(compute_digest=False))
    return scan_artifacts([Artifact.from_bytes(data, name)], ctx, None)


def test_every_strict_promise_is_covered() -> None:
    strict = {suffix for suffix, promise in PROMISES.items() if promise.strict} | {"saved_model.pb"}
    assert strict == set(NAMES)
    assert {s for s, p in PROMISES.items() if not p.strict} == OPAQUE_SUFFIXES == {".bin", ".dat"}


@pytest.mark.parametrize("key", NAMES)
def test_random_bytes_under_a_promising_name_are_never_approved_complete(key: str) -> None:
    rng = random.Random(f"issue13:{key}")
    name = _name(key)
    policy = Policy()
    approved = []
    for i in range(FILES_PER_NAME):
        body = rng.randbytes(rng.randint(1, 600))
        if i % 3 == 0:
            body = rng.choice(MAGIC[key]) + body
        scan = scan_named(body, name)
        decision = policy.decide(scan.findings, scan.complete, [])
        if decision is Verdict.APPROVED and scan.complete:
            approved.append((i, body[:32], [f.rule for f in scan.findings]))
    assert approved == [], f"{len(approved)} random files approved as a complete {name}: {approved[:3]}"


@pytest.mark.parametrize("key", NAMES)
def test_not_as_promised_names_the_format(key: str) -> None:
    scan = scan_named(b"\x00\x01 certainly not a model \xff", _name(key))
    assert not scan.complete
    assert any(f.rule in ("MLG-CORE-011", "MLG-CORE-003") for f in scan.findings), [f.rule for f in scan.findings]


@pytest.mark.parametrize("suffix", sorted(OPAQUE_SUFFIXES))
def test_opaque_names_let_content_decide(suffix: str) -> None:
    scan = scan_named(b"\x00\x01 raw weights \xff" * 20, f"model{suffix}")
    assert scan.complete and [(f.rule, f.severity.label) for f in scan.findings] == [("MLG-CORE-012", "info")]


def test_truncated_real_files_are_never_approved_complete() -> None:
    """Real files cut short: every cut of a pickle, a safetensors header and a GGUF header."""
    import pickle

    import numpy as np

    from mlgate.analyzers.core.kinds import Kind  # noqa: F401 - import check only

    real = {
        "model.pkl": pickle.dumps({"w": list(range(50)), "name": "model"}, protocol=4),
        "model.safetensors": struct.pack("<Q", 64)
        + b'{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'.ljust(64)
        + np.ones(2, "<f4").tobytes(),
        "model.npy": b"\x93NUMPY\x01\x00v\x00"
        + b"{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }".ljust(117)
        + b"\n"
        + np.ones(4, "<f4").tobytes(),
    }
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}, "text", 3], dtype=object), allow_pickle=True)
    real["objects.npy"] = buf.getvalue()  # the object array's pickle is cut too
    legacy = Path(__file__).resolve().parents[1] / "fixtures" / "pickles" / "benign" / "torch_legacy.pt"
    real["torch_legacy.pt"] = legacy.read_bytes()  # five pickles, then raw storages sized by the pickles
    policy = Policy()
    for name, data in real.items():
        whole = scan_named(data, name)
        assert policy.decide(whole.findings, whole.complete, []) is Verdict.APPROVED, (name, whole.findings)
        for cut in range(1, len(data)):
            scan = scan_named(data[:cut], name)
            assert not (policy.decide(scan.findings, scan.complete, []) is Verdict.APPROVED and scan.complete), (
                name,
                cut,
                [f.rule for f in scan.findings],
            )


# --- msgpack (Flax) has no magic: its structure is the check ------------------------------------------
def _pack(value: object) -> bytes:
    """A minimal msgpack encoder (maps, arrays, str, bin, small ints, ext) for Flax-shaped files."""
    if isinstance(value, _Ext):
        return b"\xc9" + struct.pack(">I", len(value.data)) + bytes([value.code]) + value.data
    if isinstance(value, dict):
        out = bytes([0x80 | len(value)]) if len(value) < 16 else b"\xde" + struct.pack(">H", len(value))
        return out + b"".join(_pack(k) + _pack(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return bytes([0x90 | len(value)]) + b"".join(_pack(v) for v in value)
    if isinstance(value, str):
        raw = value.encode()
        return (bytes([0xA0 | len(raw)]) if len(raw) < 32 else b"\xd9" + bytes([len(raw)])) + raw
    if isinstance(value, bytes):
        return b"\xc6" + struct.pack(">I", len(value)) + value
    if isinstance(value, int) and 0 <= value < 128:
        return bytes([value])
    raise TypeError(value)


class _Ext:
    def __init__(self, code: int, data: bytes) -> None:
        self.code, self.data = code, data


def _flax_weights() -> bytes:
    """What ``flax.serialization.to_bytes`` writes: nested maps, arrays as ext 1 of (shape, dtype, buffer)."""
    import numpy as np

    def array(a: np.ndarray) -> _Ext:
        return _Ext(1, _pack([list(a.shape), a.dtype.name, a.tobytes()]))

    kernel = np.ones((4, 3), "<f4")
    return _pack({"params": {"Dense_0": {"kernel": array(kernel), "bias": array(np.zeros(3, "<f4"))}}})


def test_flax_msgpack_weights_are_approved_and_every_cut_is_not() -> None:
    data = _flax_weights()
    policy = Policy()
    whole = scan_named(data, "flax_model.msgpack")
    assert whole.findings == [] and policy.decide(whole.findings, whole.complete, []) is Verdict.APPROVED
    for cut in range(1, len(data)):
        scan = scan_named(data[:cut], "flax_model.msgpack")
        assert not scan.complete, cut
    extra = scan_named(data + b"\x00", "flax_model.msgpack")
    assert not extra.complete and "ExtraData" in extra.findings[0].message
