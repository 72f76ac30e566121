"""SavedModel analysis on real TensorFlow saves (built by ../fixtures/keras_tf/build_savedmodels.py).

Expectations come from the threat model (docs/rules.md, SavedModel): the op class,
the function and node that hold it, the severity its phase and path imply,
and the phrase that says when it runs. Benign controls must stay silent.
"""

from __future__ import annotations

import re

import pytest
from google.protobuf import text_format

from keras_tf.helpers import FIXTURES, by, scan
from mlgate.analyzers.core.walker import scan_path
from mlgate.analyzers.savedmodel import schema

SERVE = "runs on every serving call of signature 'serving_default'"
LOAD = "runs at load time (tf.saved_model.load, TF Serving startup) via the init op (__saved_model_init_op)"
PB = "saved_model.pb:"


def _one(result, rule: str, location_re: str):
    hits = [f for f in by(result, "savedmodel") if f.rule == rule and re.fullmatch(location_re, f.location)]
    assert len(hits) == 1, [(f.rule, f.location) for f in by(result, "savedmodel")]
    return hits[0]


@pytest.mark.parametrize(
    "model",
    ["benign_keras_export", "benign_module", "benign_vocab_table", "benign_lstm_masking", "benign_transformer"],
)
def test_benign_controls_are_silent(model: str) -> None:
    """Saver SaveV2/RestoreV2/MergeV2Checkpoints and asset-fed table init are normal: no finding at all."""
    result = scan("savedmodel", model)
    assert result.complete
    assert by(result, "savedmodel") == []


@pytest.mark.parametrize(
    ("model", "rule", "location", "severity", "phrase", "detail"),
    [
        # Const sensitive path on a serving call: HIGH raised to CRITICAL.
        ("evil_rw", "MLG-TF-001", r"__inference_serve_\d+/ReadFile", "critical", SERVE, "'/etc/hostname'"),
        ("evil_rw", "MLG-TF-002", r"__inference_serve_\d+/WriteFile", "critical", SERVE, "/tmp/mlgate-canary/evil_rw"),
        # A nested tf.function reached through StatefulPartitionedCall.
        ("evil_nested", "MLG-TF-001", r"__inference_helper_\d+/ReadFile", "critical", SERVE, "'/root/.ssh/id_rsa'"),
        # A tf.cond branch function reached through the If/StatelessIf branch attribute.
        ("evil_cond", "MLG-TF-002", r"cond_true_\d+/cond/WriteFile", "critical", SERVE, "evil_cond"),
        # Listing a sensitive directory and printing into a file:// stream.
        ("evil_print", "MLG-TF-003", r"__inference_serve_\d+/MatchingFiles", "critical", SERVE, "'/root/.ssh/*'"),
        (
            "evil_print",
            "MLG-TF-004",
            r"__inference_serve_\d+/PrintV2",
            "high",
            SERVE,
            "file:///tmp/mlgate-canary/evil_print",
        ),
        # tf.data TFRecord writer.
        ("evil_tfrecord", "MLG-TF-002", r"__inference_serve_\d+/DatasetToTFRecord", "critical", SERVE, "evil_tfrecord"),
        # A resource initializer: runs inside tf.saved_model.load.
        ("evil_loadtime", "MLG-TF-001", r"__inference__initializer_\d+/ReadFile", "critical", LOAD, "'/etc/hostname'"),
        ("evil_loadtime", "MLG-TF-002", r"__inference__initializer_\d+/WriteFile", "critical", LOAD, "evil_loadtime"),
        # The request chooses the file name: a read oracle for any API client.
        ("evil_input_path", "MLG-TF-001", r"__inference_serve_\d+/ReadFile", "high", SERVE, "request input 'name'"),
        # The malicious twin of the asset-fed vocabulary table.
        (
            "evil_table_abs_path",
            "MLG-TF-001",
            r"__inference_serve_\d+/InitializeTableFromTextFileV2",
            "critical",
            SERVE,
            "'/etc/passwd'",
        ),
        # Only callable from Python after loading (object-graph function).
        (
            "evil_object_fn",
            "MLG-TF-001",
            r"__inference_steal_\d+/ReadFile",
            "critical",
            "runs only if called from Python as loaded.steal()",
            "'/etc/shadow'",
        ),
        # PyFunc: the callable is not in the file: MEDIUM.
        ("evil_pyfunc", "MLG-TF-008", r"__inference_serve_\d+/EagerPyFunc", "medium", SERVE, "'pyfunc_0'"),
        # The hiding itself, and the file read inside the decoded hidden graph.
        (
            "evil_dataset_from_graph",
            "MLG-TF-010",
            r"__inference_serve_\d+/DatasetFromGraph",
            "medium",
            SERVE,
            "serialized graph",
        ),
        (
            "evil_dataset_from_graph",
            "MLG-TF-001",
            r"__inference_serve_\d+/DatasetFromGraph!graph_def:__inference_Dataset_flat_map_read_one_file_\d+/TextLineDataset",
            "critical",
            SERVE,
            "'/etc/passwd'",
        ),
    ],
)
def test_malicious_op_is_located_graded_and_timed(model, rule, location, severity, phrase, detail) -> None:
    result = scan("savedmodel", model)
    finding = _one(result, rule, re.escape(PB) + location)
    assert finding.severity.label == severity
    assert phrase in finding.message
    assert detail in finding.message


def test_only_the_payload_fires_in_malicious_models() -> None:
    """The saver functions next to the payload stay silent (no ModelAudit-style false positives)."""
    result = scan("savedmodel", "evil_rw")
    rules = sorted(f.rule for f in by(result, "savedmodel"))
    assert rules == ["MLG-TF-001", "MLG-TF-002"]
    assert all("traced_" not in f.location for f in result.findings)


def test_text_form_saved_model_is_parsed_like_the_binary(tmp_path) -> None:
    binary = (FIXTURES / "savedmodel" / "evil_rw" / "saved_model.pb").read_bytes()
    message = schema.parse_binary(schema.SavedModel, binary)
    (tmp_path / "saved_model.pbtxt").write_text(text_format.MessageToString(message))
    result = scan_path(tmp_path, label="m")
    got = {(f.rule, f.severity.label) for f in by(result, "savedmodel")}
    assert got == {("MLG-TF-001", "critical"), ("MLG-TF-002", "critical"), ("MLG-TF-014", "info")}
    assert any(f.location.startswith("saved_model.pbtxt:__inference_serve_") for f in result.findings)


def _write(tmp_path, data: bytes):
    (tmp_path / "saved_model.pb").write_bytes(data)
    return scan_path(tmp_path, label="m")


def test_truncated_protobuf_is_incomplete_not_clean(tmp_path) -> None:
    data = (FIXTURES / "savedmodel" / "evil_rw" / "saved_model.pb").read_bytes()
    result = _write(tmp_path, data[: len(data) // 2])
    assert not result.complete
    assert [f.rule for f in result.findings if not f.rule.startswith("MLG-NET-")] == ["MLG-CORE-003"]


def test_deeply_nested_protobuf_is_incomplete_not_a_crash(tmp_path) -> None:
    """AttrValue.func -> NameAttrList.attr -> AttrEntry.value -> AttrValue ... 3000 levels, inside a graph node."""
    value = b""
    for _ in range(3000):
        entry = _field(2, value)  # AttrEntry.value
        name_attr_list = _field(2, entry)  # NameAttrList.attr
        value = _field(10, name_attr_list)  # AttrValue.func
    node = _field(2, b"Const") + _field(5, _field(2, value))  # NodeDef.op, NodeDef.attr[].value
    data = _field(2, _field(2, _field(1, node)))  # SavedModel.meta_graphs -> MetaGraphDef.graph_def -> GraphDef.node
    result = _write(tmp_path, data)
    assert not result.complete
    assert {f.rule for f in result.findings} == {"MLG-CORE-003"}


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def test_non_utf8_names_parse_and_are_reported(tmp_path) -> None:
    """Op and node names that are not UTF-8 must not stop the scan (bytes-typed schema)."""
    model = schema.SavedModel()
    meta = model.meta_graphs.add()
    fn = meta.graph_def.library.function.add()
    fn.signature.name = b"f\xff\xfe"
    node = fn.node_def.add(name=b"n\xc3", op=b"Evil\xffOp")
    assert node.op
    result = _write(tmp_path, model.SerializeToString())
    assert result.complete
    [finding] = by(result, "savedmodel")
    assert finding.rule == "MLG-TF-009"
    assert finding.location == "saved_model.pb:f\ufffd\ufffd/n\ufffd"
    assert "unreachable" in finding.message


def test_garbage_is_incomplete(tmp_path) -> None:
    result = _write(tmp_path, b"\x12\xff\xff\xff\xff\x0f garbage")
    assert not result.complete


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)
