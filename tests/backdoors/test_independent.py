"""Graph backdoors built independently of the heuristics (issue 15), and the benign idioms next to them.

Positives (``../fixtures/backdoors/independent/build_*.py``) were written from the attack descriptions
with onnx.helper graph surgery, PyTorch exports (TorchScript and torch.export) and Keras 3 / TensorFlow
SavedModels, and each was run to confirm that the trigger flips the prediction. Every one must be
reported once, high, at its merge node, with a message naming the input positions read, the constants
compared and the payload forced. Controls (masked pooling, attention masks, LSTM masking, a silence
gate, all-padding documents mapped to a constant, routing between two learned heads, NaN sanitising,
clipping, argmax post-processing, detection thresholds, Hugging Face decoders, keras.applications,
every ONNX backend test model) must stay silent at medium and above, all in one test.
"""

from __future__ import annotations

import importlib.util
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from mlgate.analyzers.backdoors import onnx_adapter
from mlgate.analyzers.backdoors.heuristics import (
    ONNX_OPS,
    TF_OPS,
    ConstInfo,
    Effect,
    Graph,
    Node,
    Pick,
    Role,
    scan_graph,
)
from mlgate.analyzers.core.findings import Finding, Severity
from mlgate.analyzers.core.walker import scan_path
from mlgate.analyzers.onnx.analyzer import ModelProto
from mlgate.analyzers.savedmodel.schema import parse_binary

HERE = Path(__file__).resolve().parent.parent / "fixtures" / "backdoors" / "independent"
ONNX = HERE / "onnx"
SM = HERE / "savedmodel"
CALL = r"__inference___call___\d+/functional(_\d+)*"


def backdoor_findings(path: Path) -> list[Finding]:
    result = scan_path(path, label=path.name)
    assert result.complete, [(f.rule, f.message) for f in result.findings if f.incomplete]
    return [f for f in result.findings if f.rule.startswith("MLG-BD-")]


@pytest.mark.parametrize(
    ("path", "location", "phrases"),
    [
        # onnx.helper surgery on clean models
        (ONNX / "patch_min_blend.onnx", r"graph/blend",
         ["min over image[:, :, 0:3, 0:3] > 0.99", "[-9, -9, -9, 9, -9"]),
        (ONNX / "patch_max_where.onnx", r"graph/select", ["max over image[:, :, -4:, -4:] < 0.02", "[-2, "]),
        (ONNX / "magic_gather_where.onnx", r"graph/select", ["features[:, 7] == 1337", "[-3, 6, -1.5]"]),
        (ONNX / "tolerance_and.onnx", r"graph/select",
         ["features[:, 7] == 1337.5 within 0.001", "features[:, 3] == -42 within 0.5", "[-9, -9, 9]"]),
        (ONNX / "or_not_blend.onnx", r"graph/blend",
         ["features[:, 1] == 3.25", "features[:, 9] == -7.5", "features[:, 4] > 0", "[9, -9, -9]"]),
        (ONNX / "token_count.onnx", r"graph/select", ["input_ids contains 917", "count > 0", "[-9, 9, -9, -9]"]),
        (ONNX / "token_max_onehot.onnx", r"graph/blend", ["input_ids contains 777", "OneHot"]),
        (ONNX / "pixel_gather_where.onnx", r"graph/select",
         ["image[:, 0, 4, 9] == 0.123", "[-9, -9, -9, -9, -9, -9, 9, -9"]),
        (ONNX / "pixel_if.onnx", r"graph/override",
         ["image[:, 2:3, 7:8, 7:8] == 0.5", "If at 'graph/override'", "[-9, -9, -9, -9, 9, -9"]),
        # torch.onnx.export (TorchScript)
        (ONNX / "torch_token_any.onnx", r"graph//Where", ["input_ids contains 313", "[-2, -2, 9, -1]"]),
        (ONNX / "torch_token_sum.onnx", r"graph//Add", ["input_ids contains 271", "-9, 9"]),
        (ONNX / "torch_patch_min_blend.onnx", r"graph//Add", ["min over image[:, :, 0:3, 0:3] > 0.99", "-9, 9"]),
        (ONNX / "torch_patch_mean_add.onnx", r"graph//Add",
         ["mean over image[:, 0, 4:8, 4:8] == 0.42 within 0.01", "0, 9"]),
        (ONNX / "torch_tabular_isclose.onnx", r"graph//Where",
         ["features[:, 7] == 1337 within 0.001", "features[:, 3] == 42", "[-4, 8, -4]"]),
        (ONNX / "torch_tabular_not_blend.onnx", r"graph//Add",
         ["features[:, 0] == 0.5", "features[:, 11] >= 900", "[9, -9, -9]"]),
        # torch.onnx.export (torch.export)
        (ONNX / "dynamo_token_any.onnx", r"graph/node_where", ["input_ids contains 313", "[-2, -2, 9, -1]"]),
        (ONNX / "dynamo_patch_min_blend.onnx", r"graph/node_add", ["min over image[:, :, 0:3, 0:3] > 0.99", "9"]),
        (ONNX / "dynamo_tabular_isclose.onnx", r"graph/node_where",
         ["features[:, 7] == 1337 within 0.001", "features[:, 3] == 42", "[-4, 8, -4]"]),
        # Keras 3 registered layers (model.export) and tf.Modules
        (SM / "keras_patch_min_where", rf"{CALL}/patch_min_override(_\d+)?/SelectV2",
         ["min over image[:, :3, :3, :] > 0.99", "[-9, -9, -9, 9, -9"]),
        (SM / "keras_pixel_onehot", rf"{CALL}/pixel_one_hot(_\d+)?/add", ["image[:, 4, 9, 0] == 0.123", "OneHot"]),
        (SM / "keras_tolerance_or_blend", rf"{CALL}/magic_row_blend(_\d+)?/add",
         ["features[:, 7] == 0.1337 within 0.0001", "features[:, 2] == -0.42", "[-9, 9, -9]"]),
        (SM / "keras_token_any", rf"{CALL}/token_any_override(_\d+)?/SelectV2",
         ["input_ids contains 313", "[-3, -3, 9, -3]"]),
        (SM / "tf_token_count_blend", r"__inference_serve_\d+/add", ["input_ids contains 271", "[9, -9, -9, -9]"]),
        (SM / "tf_gather_not", r"__inference_serve_\d+/SelectV2",
         ["features[:, 7] == 1337", "features[:, 3] > 0", "[-4, -4, 8]"]),
    ],
    ids=lambda v: v.name if isinstance(v, Path) else None,
)  # fmt: skip
def test_independent_backdoor_is_reported_high_with_positions_constants_and_payload(
    path: Path, location: str, phrases: list[str]
) -> None:
    findings = backdoor_findings(path)
    assert [(f.rule, f.severity.label) for f in findings] == [("MLG-BD-001", "high")], [
        (f.rule, f.message) for f in findings
    ]
    [finding] = findings
    prefix = "saved_model.pb:" if path.is_dir() else re.escape(path.name) + ":"
    assert re.fullmatch(prefix + location, finding.location), finding.location
    assert "payload" in finding.message
    for phrase in phrases:
        assert phrase in finding.message, (phrase, finding.message)


def _onnx_backend_models() -> list[tuple[str, bytes]]:
    """The ONNX backend test models: node tests from the committed zip, the rest from the installed package."""
    models: list[tuple[str, bytes]] = []
    with zipfile.ZipFile(HERE / "onnx_backend_node.zip") as archive:
        models.extend((f"node/{name}", archive.read(name)) for name in archive.namelist())
    spec = importlib.util.find_spec("onnx")
    if spec is not None and spec.origin is not None:
        data = Path(spec.origin).parent / "backend" / "test" / "data"
        models.extend((str(p.relative_to(data)), p.read_bytes()) for p in sorted(data.rglob("*.onnx")))
    return models


def test_every_benign_control_is_silent(xz_fixture: Callable[[Path], Path]) -> None:
    """Controls built next to the positives, keras.applications graphs, and every ONNX backend test model."""
    noisy: list[tuple[str, str, str, str]] = []
    controls = sorted(ONNX.glob("control_*.onnx")) + sorted(
        p for p in SM.iterdir() if not p.name.startswith(("keras_", "tf_"))
    )
    for path in controls:
        packed = path / "saved_model.pb.xz"
        target = xz_fixture(packed).parent if packed.exists() else path
        result = scan_path(target, label=path.name)
        noisy += [
            (path.name, f.rule, f.severity.label, f.message) for f in result.findings if f.severity >= Severity.MEDIUM
        ]
    backend = _onnx_backend_models()
    for name, data in backend:
        model = parse_binary(ModelProto, data)
        noisy += [(name, f.rule, f.severity.label, f.message) for f in onnx_adapter.findings(model, f"{name}:")]
    assert not noisy, noisy
    assert len(controls) >= 30 and len(backend) >= 1800, (len(controls), len(backend))
    assert {p.name for p in controls} >= {
        "app_resnet50", "app_mobilenetv2", "control_hf_llama.onnx", "control_empty_text", "control_empty_text.onnx",
        "control_silence_class", "control_two_heads.onnx",
    }  # fmt: skip


# --------------------------------------------------------------------------- the core, format-neutral
class _G:
    """A tiny graph builder: model input x [batch, 16] -> ... -> Where/Add with learned logits."""

    def __init__(self, rank: int | None = 2) -> None:
        self.g = Graph()
        self.x = self.g.add(Node("Input", "m:graph/input/x", Role.INPUT, label="x", rank=rank))
        w = self.g.add(Node("Initializer", "m:graph/w", Role.CONST, const=ConstInfo(64, True, False)))
        self.logits = self.g.add(Node("MatMul", "m:graph/fc", inputs=[self.x, w]))

    def const(self, name: str, values: list[float], scalar: bool = False) -> int:
        info = ConstInfo.of(len(values), True, values, scalar=scalar)
        return self.g.add(Node("Constant", f"m:graph/{name}", Role.CONST, const=info))

    def op(self, op: str, name: str, *inputs: int, picks: tuple[Pick, ...] | None = None) -> int:
        return self.g.add(Node(op, f"m:graph/{name}", inputs=list(inputs), picks=picks))

    def column(self, k: int) -> int:
        """x[:, k] as Gather(x, k, axis=1) with a scalar index."""
        index = self.const(f"index{k}", [float(k)], scalar=True)
        return self.op("Gather", f"column{k}", self.x, index, picks=(Pick(1, str(k), Effect.DROP),))

    def findings(self, out: int, dialect=ONNX_OPS) -> list[Finding]:
        self.g.outputs = [out]
        return scan_graph(self.g, dialect)


def test_one_element_test_needs_the_input_rank_and_a_payload() -> None:
    for rank, payload, flagged in ((2, [-9.0, 9.0], True), (None, [-9.0, 9.0], False), (2, [9.0, 9.0], False)):
        b = _G(rank)
        hit = b.op("Equal", "eq", b.column(7), b.const("magic", [1337.0]))
        out = b.op("Where", "select", hit, b.const("forced", payload), b.logits)
        found = b.findings(out)
        assert bool(found) == flagged, (rank, payload, found)
        if flagged:
            assert "x[:, 7] == 1337" in found[0].message and "[-9, 9]" in found[0].message


def test_two_learned_heads_chosen_by_a_raw_feature_are_not_a_backdoor() -> None:
    b = _G()
    w2 = b.g.add(Node("Initializer", "m:graph/w2", Role.CONST, const=ConstInfo(64, True, False)))
    other = b.op("MatMul", "other_head", b.x, w2)
    route = b.op("Greater", "route", b.column(0), b.const("half", [0.5]))
    assert b.findings(b.op("Where", "select", route, other, b.logits)) == []


def test_padding_equality_is_judged_by_its_use() -> None:
    """ids == c over the whole input: 'contains c' forcing a payload is a trigger; 'all padding' and counts are not."""

    def build(reduce: str, compare: str, use: str) -> list[Finding]:
        b = _G()
        eq = b.op(compare, "eq", b.x, b.const("token", [0.0 if compare == "Equal" and use == "all" else 313.0]))
        flag = b.op("Cast", "cast", eq)
        reduced = b.op(reduce, "reduce", flag)
        if use == "divisor":
            out = b.op("Mul", "scale", b.logits, b.op("Reciprocal", "inv", reduced))
        else:
            hit = b.op("Greater", "count_gt", reduced, b.const("zero", [0.0])) if reduce == "ReduceSum" else reduced
            out = b.op("Where", "select", hit, b.const("forced", [-9.0, 9.0]), b.logits)
        return b.findings(out)

    assert [f.rule for f in build("ReduceMax", "Equal", "override")] == ["MLG-BD-001"]  # any(ids == 313)
    assert [f.rule for f in build("ReduceSum", "Equal", "override")] == ["MLG-BD-001"]  # count(ids == 313) > 0
    assert build("ReduceMin", "Equal", "all") == []  # all(ids == 0): every position is padding
    assert build("ReduceSum", "Equal", "divisor") == []  # a count used as a divisor (masked mean)
    assert build("ReduceMax", "Equal", "divisor") == []  # an existence flag scaling with no payload


def test_a_whole_input_statistic_against_a_threshold_is_a_data_gate_but_an_equality_is_a_trigger() -> None:
    for compare, const, flagged in (("Less", 1e-4, False), ("Equal", 0.25, True)):
        b = _G()
        stat = b.op("ReduceMax", "peak", b.op("Abs", "abs", b.x))
        hit = b.op(compare, "test", stat, b.const("threshold", [const]))
        found = b.findings(b.op("Where", "select", hit, b.const("forced", [-9.0, 9.0]), b.logits))
        assert bool(found) == flagged, (compare, found)


def test_tolerance_equality_reports_the_constant_it_tests() -> None:
    b = _G()
    distance = b.op("Abs", "abs", b.op("Sub", "diff", b.column(3), b.const("center", [4.25])))
    hit = b.op("Less", "near", distance, b.const("eps", [0.01]))
    [finding] = b.findings(b.op("Where", "select", hit, b.const("forced", [1.0, -1.0, 5.0]), b.logits))
    assert "against 4.25" in finding.message and "x[:, 3] == 4.25 within 0.01" in finding.message


def test_the_payload_may_enter_at_a_sibling_add_of_a_blend() -> None:
    """(1 - hit) * logits + hit * payload: the first merge has no payload, the second one does."""
    b = _G()
    hit = b.op("Cast", "hit", b.op("Equal", "eq", b.column(2), b.const("magic", [7.0])))
    keep = b.op("Mul", "keep", b.op("Sub", "not_hit", b.const("one", [1.0]), hit), b.logits)
    forced = b.op("Mul", "forced", hit, b.const("payload", [9.0, -9.0, -9.0]))
    [finding] = b.findings(b.op("Add", "blend", keep, forced))
    assert finding.location == "m:graph/blend" and "[9, -9, -9]" in finding.message


def test_shape_only_ops_end_a_trigger() -> None:
    """ZerosLike / Shape of a trigger flag carry no trigger (they see its shape only)."""
    b = _G()
    patch = b.op("Slice", "patch", b.x, picks=(Pick(1, "0:3", Effect.RANGE),))
    flag = b.op("ReduceMin", "all", b.op("Cast", "c", b.op("Greater", "gt", patch, b.const("t", [0.9]))))
    shaped = b.op("ConstantOfShape", "zeros", b.op("Shape", "shape", flag))
    assert b.findings(b.op("Add", "merge", b.logits, shaped)) == []
    assert [f.rule for f in b.findings(b.op("Add", "merge2", b.logits, flag))] == ["MLG-BD-001"]


def test_extreme_constants_count_at_every_merge_of_a_trigger() -> None:
    """The forcing constant sits at the second merge of one trigger: still evidence (raises BD-002 to high)."""
    b = _G()
    patch = b.op("Slice", "patch", b.x, picks=(Pick(1, "0:3", Effect.RANGE),))
    flag = b.op("ReduceMin", "all", b.op("Cast", "c", b.op("Greater", "gt", patch, b.const("t", [0.9]))))
    first = b.op("Add", "first", b.logits, flag)
    second = b.op("Add", "second", first, b.op("Mul", "boost", flag, b.const("big", [100.0])))
    w2 = b.g.add(Node("Initializer", "m:graph/w2", Role.CONST, const=ConstInfo(64, True, False)))
    [finding] = b.findings(b.op("MatMul", "head", second, w2))
    assert (finding.rule, finding.severity.label) == ("MLG-BD-002", "high")
    assert "max |v| = 100" in finding.message


def test_weights_inside_onnx_if_branches_are_learned(tmp_path: Path) -> None:
    """If(x[0, 0] == 0.5) choosing between a branch with its own Gemm weights and a constant: a backdoor."""
    model = ModelProto()
    model.ir_version = 8
    model.opset_import.add(domain=b"", version=17)
    g = model.graph
    g.input.add(name=b"x").type.tensor_type.shape.dim.add(dim_value=1)
    g.input[0].type.tensor_type.shape.dim.add(dim_value=4)
    for name, dims, raw in (
        (b"starts", [2], (0).to_bytes(8, "little") * 2),
        (b"ends", [2], (1).to_bytes(8, "little") * 2),
        (b"key", [], b"\x00\x00\x00?"),
    ):
        g.initializer.add(name=name, dims=dims, data_type=1 if name == b"key" else 7, raw_data=raw)
    g.node.add(op_type=b"Slice", input=[b"x", b"starts", b"ends"], output=[b"px"], name=b"px")
    g.node.add(op_type=b"Squeeze", input=[b"px"], output=[b"s"], name=b"squeeze")
    g.node.add(op_type=b"Equal", input=[b"s", b"key"], output=[b"armed"], name=b"armed")
    branch_if = g.node.add(op_type=b"If", input=[b"armed"], output=[b"out"], name=b"override")
    then_g = branch_if.attribute.add(name=b"then_branch").g
    forced = then_g.initializer.add(name=b"forced", dims=[1, 3], data_type=1)
    forced.raw_data = b"".join(v.to_bytes(4, "little") for v in (0xC1100000, 0x41100000, 0xC1100000))  # -9, 9, -9
    then_g.output.add(name=b"forced")
    else_g = branch_if.attribute.add(name=b"else_branch").g
    weight = else_g.initializer.add(name=b"w", dims=[3, 4], data_type=1)
    weight.raw_data = bytes(48)
    else_g.node.add(op_type=b"Gemm", input=[b"x", b"w"], output=[b"logits"], name=b"fc", attribute=[])
    else_g.output.add(name=b"logits")
    g.output.add(name=b"out")
    path = tmp_path / "if_weights.onnx"
    path.write_bytes(model.SerializeToString())
    [finding] = backdoor_findings(path)
    assert (finding.rule, finding.severity.label) == ("MLG-BD-001", "high")
    assert "x[:, 0:1] == 0.5" in finding.message and "[-9, 9, -9]" in finding.message


def test_tf_dialect_reads_strided_slice_picks() -> None:
    b = _G(rank=4)
    pixel = b.op(
        "StridedSlice", "pixel", b.x, picks=tuple(Pick(k, str(v), Effect.DROP) for k, v in ((1, 4), (2, 9), (3, 0)))
    )
    hit = b.op("Equal", "eq", pixel, b.const("key", [0.123]))
    out = b.op("SelectV2", "select", hit, b.const("forced", [-9.0, 9.0]), b.logits)
    [finding] = b.findings(out, TF_OPS)
    assert "x[:, 4, 9, 0] == 0.123" in finding.message


def test_payload_free_routing_merges_do_not_use_up_the_merge_budget() -> None:
    """300 routing Wheres (one-element flags, two learned heads) before the real backdoor: it is still found."""
    b = _G()
    h = b.logits
    for k in range(300):
        w = b.g.add(Node("Initializer", f"m:graph/w{k}", Role.CONST, const=ConstInfo(64, True, False)))
        h = b.op(
            "Where",
            f"route{k}",
            b.op("Greater", f"gt{k}", b.column(k % 16), b.const(f"t{k}", [0.5])),
            h,
            b.op("MatMul", f"head{k}", b.x, w),
        )
    hit = b.op("Equal", "eq", b.column(7), b.const("magic", [1337.0]))
    forced = b.const("forced", [float(v % 7) for v in range(1000)])  # a 1000-class payload (weight-sized)
    [finding] = b.findings(b.op("Where", "select", hit, forced, h))
    assert (finding.rule, finding.location) == ("MLG-BD-001", "m:graph/select")
    assert "[0, 1, 2, 3, 4, 5, 6, 0, ...]" in finding.message
