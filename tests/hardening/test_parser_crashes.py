"""Issue 17, item 3: inputs that crashed an analyzer (MLG-CORE-004) are parsed, not crashed on.

Each reproducer was found by mutation fuzzing; a crash failed closed already, but was a parser bug.
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest

from mlgate.analyzers.configs.parsing import parse_yaml
from mlgate.analyzers.core.budget import Budgets
from mlgate.analyzers.core.policy import Policy, Verdict
from mlgate.analyzers.core.walker import Malformed
from mlgate.controller.scanning import scan_target

from .recording import record

MUTANTS = Path(__file__).resolve().parents[1] / "fixtures" / "hardening"
CANARY = "/tmp/mlgate-canary/hardening-crashes"
PAYLOAD0 = f"cos\nsystem\n(S'touch {CANARY}'\ntR".encode()


def _report(tmp_path: Path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return scan_target(path, Policy(budgets=Budgets(max_native_seconds=3)))  # zero-filled HDF5 can spin too


def _rules(report) -> set[str]:
    return {f.rule for f in report.findings}


@pytest.mark.parametrize(
    "opcode", [b"\x8c\x02\xff\xfe", b"X\x02\x00\x00\x00\xc3\x28", b"\x8d\x01" + bytes(7) + b"\xa0"]
)
def test_invalid_utf8_text_operand_after_a_payload(tmp_path: Path, opcode: bytes) -> None:
    """The unpicklers stop with UnicodeDecodeError there, after the call already ran."""
    data = b"\x80\x04]" + PAYLOAD0 + b"a" + opcode + b"a."
    rec = record(data)
    assert ("os", "system") in rec.imports and rec.error and "UnicodeDecodeError" in rec.error
    report = _report(tmp_path, "bad_utf8.pkl", data)
    assert "MLG-CORE-004" not in _rules(report), [f.message for f in report.findings]
    assert report.verdict is Verdict.QUARANTINED


def test_invalid_utf8_inside_a_nested_hex_pickle(tmp_path: Path) -> None:
    inner = b"\x80\x04]" + PAYLOAD0 + b"a\x8c\x01\xffa."
    outer = (
        b"cpickle\nloads\n(cbuiltins\ngetattr\n(cbuiltins\nbytes\nS'fromhex'\ntR(S'"
        + inner.hex().encode()
        + b"'\ntRtR."
    )
    assert ("builtins", "getattr") in record(outer).imports
    report = _report(tmp_path, "nested_hex_bad_utf8.pkl", outer)
    assert "MLG-CORE-004" not in _rules(report), [f.message for f in report.findings]
    assert report.verdict is Verdict.QUARANTINED


def test_stdlib_values_with_broken_text_do_not_crash(tmp_path: Path) -> None:
    data = bytearray(pickle.dumps({"name": "ü" * 10, "values": [1.5, None, True]}, protocol=4))
    at = data.index("ü".encode())
    data[at] = 0xFF  # the first byte of a two-byte character
    report = _report(tmp_path, "values.pkl", bytes(data))
    assert "MLG-CORE-004" not in _rules(report), [f.message for f in report.findings]


def test_savedmodel_input_naming_a_missing_node(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    shutil.copy(MUTANTS / "savedmodel_missing_input.pb", model / "saved_model.pb")
    report = scan_target(model, Policy())
    assert "MLG-CORE-004" not in _rules(report), [f.message for f in report.findings]


@pytest.mark.parametrize("bad", [b"a: \x01b\n", b"key: value\x7f\n", b"\x1b[31m: x\n"])
def test_yaml_reader_errors_are_malformed(bad: bytes, tmp_path: Path) -> None:
    text = b"name: model\nlayers: 3\n" * 20 + bad  # mostly text: sniffed as YAML by its name
    with pytest.raises(Malformed):
        parse_yaml(text)
    report = _report(tmp_path, "config.yaml", text)
    assert "MLG-CORE-004" not in _rules(report) and not report.scan_complete


@pytest.mark.parametrize("cut", [100, 1000, 3000])
def test_broken_hdf5_is_malformed_not_a_crash(tmp_path: Path, cut: int) -> None:
    raw = (Path(__file__).resolve().parents[1] / "fixtures" / "keras_tf" / "keras" / "evil_lambda_k3.h5").read_bytes()
    report = _report(tmp_path, "cut.h5", raw[:cut] + bytes(len(raw) - cut))
    assert "MLG-CORE-004" not in _rules(report), [f.message for f in report.findings]
    assert report.verdict is Verdict.QUARANTINED
