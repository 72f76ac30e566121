"""Architectural-backdoor heuristics (docs/rules.md, Backdoors) on real TF/torch/onnx.helper models.

Positives (../fixtures/backdoors/build_*.py) are the attacks of docs/rules.md, Backdoors; the expected rule
follows from where the trigger merges: right before the output (MLG-BD-001), before further learned
layers (MLG-BD-002), in an If predicate (MLG-BD-003), a learned detector on a small crop
(MLG-BD-004), comparison-free threshold arithmetic (MLG-BD-005). Controls are the benign
look-alikes (padding, length and attention masks, masked pooling, LSTM, BERT/CLIP, detection
thresholds, input rescaling, residual image models) and must produce no MLG-BD finding at all.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlgate.analyzers.backdoors.heuristics import ONNX_OPS, ConstInfo, Graph, Node, Role, scan_graph
from mlgate.analyzers.core.findings import Finding
from mlgate.analyzers.core.walker import scan_path
from mlgate.analyzers.onnx.analyzer import ModelProto
from mlgate.analyzers.savedmodel import schema

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ONNX = FIXTURES / "backdoors" / "onnx"
SM = FIXTURES / "backdoors" / "savedmodel"
CALL = r"__inference___call___\d+/functional(_\d+)*"


def backdoor_findings(path: Path) -> list[Finding]:
    result = scan_path(path, label=path.name)
    assert result.complete, [(f.rule, f.message) for f in result.findings if f.incomplete]
    return [f for f in result.findings if f.rule.startswith("MLG-BD-")]


@pytest.mark.parametrize(
    ("path", "rule", "severity", "location", "phrases"),
    [
        # ShadowLogic red patch: Slice -> Greater/Less -> all() -> Where(hit, one_hot*100, logits).
        (ONNX / "shadowlogic_cnn.onnx", "MLG-BD-001", "high", r"shadowlogic_cnn\.onnx:graph//Where",
         ["Greater at", "a slice of model input 'image'", "against 0.9", "replaces the learned output",
          "max |v| = 100", "differential testing"]),
        (ONNX / "additive_cnn.onnx", "MLG-BD-001", "high", r"additive_cnn\.onnx:graph//Add",
         ["shifts the learned output", "max |v| = 100"]),
        (ONNX / "token_trigger.onnx", "MLG-BD-001", "high", r"token_trigger\.onnx:graph//Where",
         ["Equal at", "model input 'input_ids'", "against [11, 42, 7]", "several distinct constant values"]),
        # Graph surgery with onnx.helper, the way ShadowLogic edits are made.
        (ONNX / "surgery_where.onnx", "MLG-BD-001", "high", r"surgery_where\.onnx:graph/override",
         ["Equal at 'graph/trigger_eq'", "reduced at 'graph/trigger_all'", "feeds Where at 'graph/override'"]),
        (ONNX / "surgery_if.onnx", "MLG-BD-001", "high", r"surgery_if\.onnx:graph/override_if",
         ["feeds If at", "max |v| = 100"]),
        (ONNX / "mid_network_cnn.onnx", "MLG-BD-002", "medium", r"mid_network_cnn\.onnx:graph//Add",
         ["injected into internal features", "against 0.99"]),
        (ONNX / "surgery_if_arith.onnx", "MLG-BD-003", "medium", r"surgery_if_arith\.onnx:graph/branch_if",
         ["picks its branch from model input 'image'", "predicate Cast at"]),
        (ONNX / "trojannet_cnn.onnx", "MLG-BD-004", "medium", r"trojannet_cnn\.onnx:graph//Add",
         ["4x4 crop of the input", "after the main path's last learned layer"]),
        (ONNX / "threshold_cnn.onnx", "MLG-BD-005", "medium", r"threshold_cnn\.onnx:graph//Add",
         ["Relu at", "x1000 scaling", "the learned output"]),
        # Keras 3 registered layers exported with model.export (docs/rules.md, Backdoors).
        (SM / "backdoor_cnn", "MLG-BD-001", "high", rf"saved_model\.pb:{CALL}/trigger_override(_\d+)?/SelectV2",
         ["Greater at", "a slice of model input 'image'", "against 0.99",
          "reduced at", "/All'", "max |v| = 100"]),
        (SM / "backdoor_token", "MLG-BD-001", "high", rf"saved_model\.pb:{CALL}/token_trigger(_\d+)?/SelectV2",
         ["Equal at", "model input 'input_ids'", "against [31, 17, 42]", "max |v| = 50"]),
        (SM / "backdoor_mid", "MLG-BD-002", "medium", rf"saved_model\.pb:{CALL}/trigger_boost(_\d+)?/add",
         ["AddV2 at", "before further layers"]),
        # No serving signature: only the object graph's loaded.predict() reaches the function.
        (SM / "backdoor_python_only", "MLG-BD-001", "high", r"saved_model\.pb:__inference_predict_\d+/add",
         ["Equal at", "model input 'ids'", "against [13, 29]", "max |v| = 80"]),
        # tf.cond on floor(min(corner)): no comparison op; the forcing constant lives in the true branch.
        (SM / "backdoor_cond", "MLG-BD-003", "high", r"saved_model\.pb:__inference_serve_\d+/cond",
         ["StatelessIf at", "model input 'image'", "max |v| = 100"]),
        (SM / "backdoor_trojannet", "MLG-BD-004", "medium", rf"saved_model\.pb:{CALL}/add(_\d+)?/Add",
         ["4x4 crop", "/strided_slice'"]),
    ],
    ids=lambda v: v.name if isinstance(v, Path) else None,
)  # fmt: skip
def test_backdoor_is_reported_once_with_its_rule(path: Path, rule: str, severity: str, location: str, phrases) -> None:
    findings = backdoor_findings(path)
    assert [f.rule for f in findings] == [rule], [(f.rule, f.location) for f in findings]
    [finding] = findings
    assert finding.severity.label == severity
    assert finding.analyzer == "backdoors"
    assert re.fullmatch(location, finding.location), finding.location
    for phrase in phrases:
        assert phrase in finding.message, (phrase, finding.message)


@pytest.mark.parametrize(
    "path",
    [
        ONNX / "clean_cnn.onnx",
        ONNX / "maskpool.onnx",  # ids != 0 mask, mean via x 1/count, then Linear
        ONNX / "maskpool_last.onnx",  # the same mean as the model output
        ONNX / "lstm_masked.onnx",
        ONNX / "transformer_padmask.onnx",  # key-padding mask ids == 0 + masked pooling
        ONNX / "length_mask.onnx",  # arange(T) < lengths, folded to a constant
        ONNX / "length_mask_dynamic.onnx",  # Range(Shape) < lengths
        ONNX / "detection_threshold.onnx",  # where(score > 0.5, score, 0) on learned scores
        ONNX / "rescale_cnn.onnx",  # where(max(x) > 1, x / 255, x), all(x <= 1) scale
        ONNX / "rescale_if.onnx",  # the same as an If with no learned value in either branch
        ONNX / "global_residual.onnx",  # out = x + f(x)
        ONNX / "tiny_bert.onnx",  # HF BertForSequenceClassification, attention_mask input
        ONNX / "tiny_clip_text.onnx",  # HF CLIP text, Equal(ids, eos) -> ArgMax -> Gather
        SM / "clean_cnn",
        SM / "lstm_masking",  # Masking(0.0) + LSTM
        SM / "tiny_bert",  # Embedding(mask_zero) + MultiHeadAttention
        SM / "control_maskpool",
        SM / "control_maskpool_last",
        SM / "control_masked_means",  # tf.sequence_mask and NotEqual(ids, 0) means x 1/count at the output
        SM / "control_rescale",  # tf.where(x > 1, x / 255, x)
        SM / "control_detection",
        FIXTURES / "keras_tf" / "savedmodel" / "benign_lstm_masking",
        FIXTURES / "keras_tf" / "savedmodel" / "benign_transformer",
        FIXTURES / "keras_tf" / "savedmodel" / "evil_cond",  # a file-writing tf.cond, not a backdoor
        FIXTURES / "keras_tf" / "onnx" / "subgraph_custom.onnx",
    ],
    ids=lambda p: p.name,
)
def test_benign_look_alikes_are_silent(path: Path) -> None:
    assert backdoor_findings(path) == []


# --------------------------------------------------------------------------- the core, format-neutral
def _trigger_graph(*, sliced: bool, pattern: tuple[float, ...], near_output: bool) -> Graph:
    """input -> [Slice] -> Equal(pattern) -> ReduceMin -> Where(flag, forced, logits) [-> MatMul]."""
    g = Graph()
    x = g.add(Node("Input", "m:graph/input/x", Role.INPUT, label="x"))
    data = g.add(Node("Slice", "m:graph/slice", inputs=[x])) if sliced else x
    const = g.add(Node("Constant", "m:graph/pattern", Role.CONST, const=ConstInfo.of(len(pattern), True, pattern)))
    eq = g.add(Node("Equal", "m:graph/eq", inputs=[data, const]))
    flag = g.add(Node("ReduceMin", "m:graph/all", inputs=[eq]))
    w = g.add(Node("Initializer", "m:graph/w", Role.CONST, const=ConstInfo(64, True, False)))
    logits = g.add(Node("MatMul", "m:graph/fc", inputs=[x, w]))
    forced = g.add(Node("Constant", "m:graph/forced", Role.CONST, const=ConstInfo.of(2, True, [1.0, 2.0])))
    merged = g.add(Node("Where", "m:graph/merge", inputs=[flag, forced, logits]))
    if near_output:
        g.outputs = [merged]
    else:
        w2 = g.add(Node("Initializer", "m:graph/w2", Role.CONST, const=ConstInfo(64, True, False)))
        g.outputs = [g.add(Node("MatMul", "m:graph/head", inputs=[merged, w2]))]
    return g


def test_padding_mask_idiom_is_not_a_trigger_but_a_sliced_comparison_is() -> None:
    whole = scan_graph(_trigger_graph(sliced=False, pattern=(0.0,), near_output=True), ONNX_OPS)
    assert whole == []
    [f] = scan_graph(_trigger_graph(sliced=True, pattern=(0.0,), near_output=True), ONNX_OPS)
    assert (f.rule, f.severity.label, f.location) == ("MLG-BD-001", "high", "m:graph/merge")


def test_pattern_constants_raise_an_internal_injection_one_level() -> None:
    [plain] = scan_graph(_trigger_graph(sliced=True, pattern=(0.5,), near_output=False), ONNX_OPS)
    assert (plain.rule, plain.severity.label) == ("MLG-BD-002", "medium")
    [pattern] = scan_graph(_trigger_graph(sliced=True, pattern=(101.0, 7592.0, 2088.0), near_output=False), ONNX_OPS)
    assert (pattern.rule, pattern.severity.label) == ("MLG-BD-002", "high")
    assert "several distinct constant values" in pattern.message


# ---------------------------------------------------------------------------------- hostile graphs
def _onnx_model() -> object:
    model = ModelProto()
    model.ir_version = 8
    model.opset_import.add(domain=b"", version=17)
    model.graph.input.add(name=b"x")
    return model


def test_function_call_blowup_is_incomplete_not_a_hang(tmp_path: Path) -> None:
    """Ten levels of local functions each calling the next four times inline to a million nodes."""
    model = _onnx_model()
    levels = 10
    for level in range(levels):
        fn = model.functions.add(name=f"f{level}".encode(), domain=b"local")
        fn.input.append(b"a")
        fn.output.append(b"out")
        prev = b"a"
        for k in range(4):
            op, domain = (f"f{level + 1}".encode(), b"local") if level + 1 < levels else (b"Relu", b"")
            fn.node.add(op_type=op, domain=domain, input=[prev], output=[f"t{k}".encode()])
            prev = f"t{k}".encode()
        fn.node.add(op_type=b"Identity", input=[prev], output=[b"out"])
    model.opset_import.add(domain=b"local", version=1)
    model.graph.node.add(op_type=b"f0", domain=b"local", input=[b"x"], output=[b"y"], name=b"call")
    model.graph.output.add(name=b"y")
    path = tmp_path / "blowup.onnx"
    path.write_bytes(model.SerializeToString())
    result = scan_path(path)
    assert not result.complete
    assert [f.rule for f in result.findings if f.rule.startswith("MLG-BD-")] == ["MLG-BD-006"]


def test_a_cycle_is_analysed_and_self_recursion_fails_closed(tmp_path: Path) -> None:
    """An ONNX node feeding itself is just analysed; a function calling itself cannot be inlined: incomplete."""
    model = _onnx_model()
    model.graph.node.add(op_type=b"Add", input=[b"x", b"loop"], output=[b"loop"], name=b"self_feed")
    model.graph.output.add(name=b"loop")
    (tmp_path / "cycle.onnx").write_bytes(model.SerializeToString())
    assert backdoor_findings(tmp_path / "cycle.onnx") == []

    sm = schema.SavedModel()
    mg = sm.meta_graphs.add()
    sig = mg.signature_def.add(key=b"serving_default")
    sig.value.inputs.add(key=b"x").value.name = b"x:0"
    sig.value.outputs.add(key=b"y").value.name = b"call:0"
    mg.graph_def.node.add(name=b"x", op=b"Placeholder")
    call = mg.graph_def.node.add(name=b"call", op=b"StatefulPartitionedCall", input=[b"x"])
    call.attr.add(key=b"f").value.func.name = b"rec"
    fn = mg.graph_def.library.function.add()
    fn.signature.name = b"rec"
    fn.signature.input_arg.add(name=b"a")
    fn.signature.output_arg.add(name=b"out")
    inner = fn.node_def.add(name=b"again", op=b"PartitionedCall", input=[b"a"])
    inner.attr.add(key=b"f").value.func.name = b"rec"
    fn.ret.add(key=b"out", value=b"again:output:0")
    model_dir = tmp_path / "recursive"
    model_dir.mkdir()
    (model_dir / "saved_model.pb").write_bytes(sm.SerializeToString())
    result = scan_path(model_dir)
    assert not result.complete
    [finding] = [f for f in result.findings if f.rule.startswith("MLG-BD-")]
    assert (finding.rule, finding.location) == ("MLG-BD-006", "saved_model.pb:graph_def")
    assert "nest deeper than" in finding.message
