"""safetensors header validation (docs/rules.md, safetensors): reference-loader checks plus Python-only readings."""

from __future__ import annotations

import json
import struct
import zipfile

import numpy as np
import pytest
from safetensors.numpy import save_file

from archives.builders import FIXTURES, findings_of, rules_of, scan, write, zip_bytes
from mlgate.analyzers.core.findings import Severity
from mlgate.analyzers.core.policy import Policy, Verdict
from mlgate.controller.scanning import scan_target


def st_bytes(header: str | dict, buffer: bytes) -> bytes:
    text = header if isinstance(header, str) else json.dumps(header)
    raw = text.encode()
    raw += b" " * (-len(raw) % 8)  # the writer pads with spaces
    return struct.pack("<Q", len(raw)) + raw + buffer


def f32(name_offsets: dict[str, tuple[list[int], int, int]]) -> dict:
    return {n: {"dtype": "F32", "shape": s, "data_offsets": [b, e]} for n, (s, b, e) in name_offsets.items()}


@pytest.mark.parametrize("name", ["clean_numpy.safetensors", "clean_torch.safetensors"])
def test_files_written_by_safetensors_are_clean(name):
    result = scan(FIXTURES / name)
    assert result.findings == [] and result.complete


def test_cost_is_the_header_not_the_tensors(tmp_path):
    path = tmp_path / "big.safetensors"
    save_file({"w": np.zeros((2048, 1024), dtype=np.float32)}, str(path))  # 8 MiB of tensor bytes
    result = scan(path)
    assert result.findings == []
    # The header, plus the walker's one tail read (at most 64 KiB + 22 bytes) looking for a
    # zip directory appended to a top-level file (polyglot check): constant, not tensor bytes.
    assert result.bytes_read < 16 * 1024 + 65557


def test_duplicate_tensor_keys_are_a_parser_differential(tmp_path):
    header = (
        '{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, '
        '"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}'
    )
    result = scan(write(tmp_path / "dup.safetensors", st_bytes(header, b"\0" * 16)))
    # Python keeps the last 'w' (bytes 8-16), so in its reading bytes 0-8 belong to no tensor
    assert rules_of(result, "MLG-ST-") == ["MLG-ST-001", "MLG-ST-002", "MLG-ST-007"]
    assert findings_of(result, "MLG-ST-001")[0].severity == Severity.HIGH


@pytest.mark.parametrize(
    ("tensors", "buffer", "words"),
    [
        ({"a": ([2], 0, 8), "b": ([2], 12, 20)}, 20, "unclaimed bytes before tensor 'b'"),
        ({"a": ([2], 0, 8), "b": ([2], 4, 12)}, 12, "overlaps the previous tensor"),
        ({"a": ([2], 0, 8)}, 16, "8 bytes after the last tensor"),
        ({"a": ([4], 0, 16)}, 8, "claim 16 bytes but the buffer holds 8"),
    ],
)
def test_offsets_must_tile_the_buffer(tmp_path, tensors, buffer, words):
    result = scan(write(tmp_path / "bad.safetensors", st_bytes(f32(tensors), b"\0" * buffer)))
    assert rules_of(result, "MLG-ST-") == ["MLG-ST-002", "MLG-ST-007"]
    assert not result.complete  # safetensors.safe_open refuses it: not a model mlgate read
    assert words in findings_of(result, "MLG-ST-002")[0].message


def test_size_must_match_dtype_times_shape(tmp_path):
    header = {
        "a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]},
        "n": {"dtype": "F4", "shape": [3], "data_offsets": [8, 10]},
    }
    result = scan(write(tmp_path / "size.safetensors", st_bytes(header, b"\0" * 10)))
    assert rules_of(result, "MLG-ST-") == [
        "MLG-ST-003",
        "MLG-ST-003",
        "MLG-ST-007",
    ]  # 12 bytes != 8; 12 bits is not whole bytes


def test_huge_shape_cannot_overflow_into_a_match(tmp_path):
    header = {"a": {"dtype": "F32", "shape": [2**62, 4], "data_offsets": [0, 0]}}
    result = scan(write(tmp_path / "overflow.safetensors", st_bytes(header, b"")))
    assert rules_of(result, "MLG-ST-") == ["MLG-ST-003", "MLG-ST-007"]


def test_unknown_dtype(tmp_path):
    header = {"a": {"dtype": "PYOBJ", "shape": [1], "data_offsets": [0, 8]}}
    assert rules_of(scan(write(tmp_path / "dt.safetensors", st_bytes(header, b"\0" * 8))), "MLG-ST-") == [
        "MLG-ST-004",
        "MLG-ST-007",
    ]


def test_metadata_must_be_strings(tmp_path):
    header = {"__metadata__": {"format": "pt", "epoch": 3}, **f32({"a": ([1], 0, 4)})}
    result = scan(write(tmp_path / "meta.safetensors", st_bytes(header, b"\0" * 4)))
    assert rules_of(result, "MLG-ST-") == ["MLG-ST-005", "MLG-ST-007"]
    assert "'epoch'" in findings_of(result, "MLG-ST-005")[0].message


def test_hydra_target_in_metadata_is_critical():
    path = FIXTURES / "hydra_target.safetensors"  # written by the safetensors package: it loads normally
    result = scan(path)
    (finding,) = findings_of(result, "MLG-ST-006")
    assert finding.severity == Severity.CRITICAL and "os.system" in finding.message
    assert scan_target(path, Policy()).verdict is Verdict.QUARANTINED


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (struct.pack("<Q", 4096) + b'{"a": 1}', "exceeds the limit or the file size"),
        (st_bytes('{"a": NaN}', b""), "not JSON"),
        (st_bytes('{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]', b"\0" * 4), "not valid JSON"),
        (struct.pack("<Q", 3) + b"{\xff}", "not UTF-8"),
        (st_bytes('{"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}', b"\0" * 4), "shape"),
    ],
)
def test_unparseable_headers_are_incomplete(tmp_path, data, words):
    result = scan(write(tmp_path / "broken.safetensors", data))
    (finding,) = result.findings
    assert finding.rule == "MLG-CORE-003" and words in finding.message and not result.complete


def test_safetensors_inside_a_zip_is_read_in_place(tmp_path):
    member = (FIXTURES / "hydra_target.safetensors").read_bytes()
    result = scan(write(tmp_path / "bundle.zip", zip_bytes([("model.safetensors", member)], zipfile.ZIP_STORED)))
    assert [f.location for f in findings_of(result, "MLG-ST-006")] == ["bundle.zip!model.safetensors@8"]
