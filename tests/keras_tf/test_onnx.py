"""ONNX analyzer on small models built with the onnx helper API (../fixtures/keras_tf/build_onnx.py)."""

from __future__ import annotations

from keras_tf.helpers import FIXTURES, by, scan
from mlgate.analyzers.core.walker import scan_path


def test_benign_model_is_silent() -> None:
    result = scan("onnx", "benign.onnx")
    assert result.complete and by(result, "onnx") == []


def test_custom_domain_op() -> None:
    [f] = by(scan("onnx", "custom_domain.onnx"), "onnx")
    assert (f.rule, f.severity.label, f.location) == ("MLG-ONNX-001", "medium", "custom_domain.onnx:graph/evil_op")
    assert "com.attacker.ops" in f.message


def test_external_data_traversal() -> None:
    [f] = by(scan("onnx", "external_traversal.onnx"), "onnx")
    assert (f.rule, f.severity.label) == ("MLG-ONNX-002", "high")
    assert f.location == "external_traversal.onnx:graph/initializer/w"
    assert "'../../etc/passwd'" in f.message


def test_subgraphs_and_local_functions_are_walked() -> None:
    """Custom ops inside an If branch and inside a model-local function; the call to the local function is not one."""
    findings = by(scan("onnx", "subgraph_custom.onnx"), "onnx")
    assert sorted((f.rule, f.location) for f in findings) == [
        ("MLG-ONNX-001", "subgraph_custom.onnx:functions/local.fn.Helper/steal"),
        ("MLG-ONNX-001", "subgraph_custom.onnx:graph/branch/else_branch/hidden"),
    ]


def test_truncated_model_is_incomplete(tmp_path) -> None:
    data = (FIXTURES / "onnx" / "subgraph_custom.onnx").read_bytes()
    (tmp_path / "m.onnx").write_bytes(data[:-40])
    result = scan_path(tmp_path / "m.onnx")
    assert not result.complete
    assert {f.rule for f in result.findings} == {"MLG-CORE-003"}
