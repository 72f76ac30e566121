"""Architectural-backdoor heuristics shared by the SavedModel and ONNX analyzers (docs/rules.md, Backdoors).

A backdoor written into a model's graph (ShadowLogic, DeepPayload, Bober-Irizar et al.) needs a
trigger detector that reads the raw input without any learned weight, a reduction of its verdict
to one flag per sample, and a merge that lets the flag override or shift the learned output.
Format adapters (``savedmodel.backdoor_adapter``, ``onnx_backdoor_adapter``) flatten a parsed
model into the small format-neutral ``Graph`` below (one node per op, data inputs by node index,
literal constants summarised); ``scan_graph`` runs one taint pass in topological order and one
backward pass for output proximity, then reports:

* MLG-BD-001 (H1): a reduced, weight-free comparison on the raw input merged with learned values
  with no learned linear op between the merge and an output;
* MLG-BD-002 (H2): the same merge deeper in the network (injected into internal features);
* MLG-BD-003 (H3): an If/Case whose predicate is computed from raw input values without weights,
  choosing between branches that carry learned values;
* MLG-BD-004 (H5): a small learned sub-network that only sees a small fixed crop of the input,
  merged with the main path after its last learned op (TrojanNet);
* MLG-BD-005 (H6): comparison-free threshold arithmetic (x1000-scaled ``Relu``/``Sign``/``Exp``...)
  on the raw input, reduced and merged with learned values;
* MLG-BD-006: the graph was too large or its calls nest too deeply to analyse (incomplete).

H4 (extreme constants next to the merge, or comparison constants forming a pattern) is evidence
that raises a finding one level and is named in its message. The padding-mask idiom
(``Equal``/``NotEqual`` of the whole input against one scalar) is never a trigger source, and a
trigger signal stops being one as soon as it is mixed with raw values or weights, which keeps
masks, input rescaling and embedding index fix-ups silent. Cost is linear in the node count.
"""

from __future__ import annotations

import enum
import math
import struct
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..core.findings import Finding, Rule, Severity

ANALYZER = "backdoors"
MAX_NODES = 500_000  # after inlining function calls; a real LLM export has tens of thousands
MAX_CONST_VALUES = 65_536  # constants larger than this are summarised by size only
LEARNED_CONST_ELEMENTS = 16  # a literal constant larger than this is a weight (frozen graph / initializer)
EXTREME_VALUE = 50.0  # |v| of a forced-output constant (one-hot x 100, token-bias vectors)
THRESHOLD_SCALE = 1e3  # multiplier that turns arithmetic into a step function (H6)
CROP_EXTENT = 8  # H5: a crop at most this wide on every sliced axis...
CROP_ELEMENTS = 64  # ...and at most this many positions in total
CONE_LIMIT = 4096  # nodes visited when explaining one finding
MAX_MERGES = 256  # trigger merge points examined per graph (each already proves a finding)

OVERRIDE = Rule("MLG-BD-001", Severity.HIGH, "Input-triggered override of the model output", ANALYZER)
INJECTION = Rule("MLG-BD-002", Severity.MEDIUM, "Input-triggered signal injected into internal features", ANALYZER)
BRANCH = Rule("MLG-BD-003", Severity.MEDIUM, "Branch chosen by raw input values without learned weights", ANALYZER)
CROP_NET = Rule("MLG-BD-004", Severity.MEDIUM, "Small learned detector on an input crop merged at the output", ANALYZER)
THRESHOLD = Rule("MLG-BD-005", Severity.LOW, "Comparison-free threshold detector on the raw input", ANALYZER)
TOO_LARGE = Rule(
    "MLG-BD-006",
    Severity.MEDIUM,
    "Graph too large or too deeply nested for backdoor analysis",
    ANALYZER,
    incomplete=True,
)


class Role(enum.Enum):
    INPUT = "input"  # a model input (signature input, ONNX graph input)
    CONST = "const"  # a literal constant (TF Const, ONNX initializer / Constant)
    UNKNOWN = "unknown"  # a value from nowhere we can see (dangling reference, unbound argument)
    OP = "op"


@dataclass(frozen=True)
class ConstInfo:
    """What the heuristics need from a literal constant: size, dtype family, a value summary."""

    numel: int
    is_float: bool
    values_known: bool
    max_abs: float = 0.0
    distinct: tuple[float, ...] = ()  # up to 16 distinct values, in first-seen order
    preview: tuple[float, ...] = ()  # first 8 values

    @classmethod
    def of(cls, numel: int, is_float: bool, values: Iterable[float] | None) -> ConstInfo:
        if values is None or numel > MAX_CONST_VALUES:
            return cls(numel, is_float, False)
        max_abs, distinct, preview = 0.0, {}, []
        for v in values:
            if len(preview) < 8:
                preview.append(v)
            if len(distinct) < 16:
                distinct.setdefault(v, None)
            if not math.isnan(v):
                max_abs = max(max_abs, abs(v))
        return cls(numel, is_float, True, max_abs, tuple(distinct), tuple(preview))

    def describe(self) -> str:
        if not self.values_known:
            return f"a {self.numel}-element constant"
        shown = ", ".join(_num(v) for v in self.preview)
        if self.numel == 1:
            return shown
        return f"[{shown}{', ...' if self.numel > len(self.preview) else ''}]"


def _num(v: float) -> str:
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else f"{v:g}"


@dataclass(slots=True)
class Node:
    """One op of the flattened graph. ``where`` is the finding location (file, function/graph, node)."""

    op: str
    where: str
    role: Role = Role.OP
    inputs: list[int] = field(default_factory=list)
    const: ConstInfo | None = None
    label: str = ""  # the input name, for INPUT nodes
    crop: tuple[int, ...] | None = None  # static extents of the axes a slice restricts (adapter-computed)
    hidden: tuple[ConstInfo, ...] = ()  # constants inside the branches of an opaque control-flow op


class GraphTooLarge(Exception):
    """The flattened graph exceeds MAX_NODES, or its function calls nest beyond an adapter's limit."""


class Graph:
    """Nodes in creation order plus the model outputs. Adapters append; ``scan_graph`` reads."""

    def __init__(self, prefix: str = "", limit: int = MAX_NODES) -> None:
        self.nodes: list[Node] = []
        self.outputs: list[int] = []
        self.prefix = prefix  # the file part every ``where`` starts with; messages name nodes without it
        self.limit = limit

    def add(self, node: Node) -> int:
        if len(self.nodes) >= self.limit:
            raise GraphTooLarge(f"more than {self.limit} nodes after inlining function calls")
        self.nodes.append(node)
        return len(self.nodes) - 1

    def const_ints(self, nid: int) -> list[int] | None:
        """The values of a small literal integer vector (slice bounds, axes), or None."""
        const = self.nodes[nid].const
        if const is None or not const.values_known or const.numel != len(const.preview):
            return None
        if not all(math.isfinite(v) for v in const.preview):
            return None
        return [int(v) for v in const.preview]


@dataclass(frozen=True)
class Dialect:
    """One format's op names for each role the heuristics care about."""

    compare: frozenset[str]
    equality: frozenset[str]  # the comparisons of the padding-mask idiom
    reduce: frozenset[str]
    slice: Mapping[str, int]  # op -> position of the data input
    merge: frozenset[str]
    control: Mapping[str, int]  # op -> position of the predicate / branch index
    linear: frozenset[str]
    shape_only: frozenset[str]  # value taint stops here: the output depends on the input's shape only
    params: frozenset[str]  # ops that read a learned variable
    threshold: frozenset[str]
    scale_mul: frozenset[str]
    scale_div: frozenset[str]
    passthrough: frozenset[str]  # value-preserving ops followed when looking for a constant


TF_OPS = Dialect(
    compare=frozenset({"Equal", "NotEqual", "Greater", "GreaterEqual", "Less", "LessEqual", "ApproximateEqual"}),
    equality=frozenset({"Equal", "NotEqual"}),
    reduce=frozenset({"All", "Any", "Min", "Max", "Prod", "Sum", "Mean", "EuclideanNorm",
                      "AvgPool", "AvgPool3D", "MaxPool", "MaxPoolV2", "MaxPool3D"}),
    slice={"StridedSlice": 0, "Slice": 0, "Gather": 0, "GatherV2": 0, "GatherNd": 0, "Split": 1, "SplitV": 0,
           "Unpack": 0},
    merge=frozenset({"Select", "SelectV2", "If", "StatelessIf", "Case", "StatelessCase", "Mul", "Add", "AddV2",
                     "AddN", "Sub", "Maximum", "Minimum"}),
    control={"If": 0, "StatelessIf": 0, "Case": 0, "StatelessCase": 0},
    linear=frozenset({"MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "SparseMatMul", "Conv", "Conv2D",
                      "Conv3D", "DepthwiseConv2dNative", "Conv2DBackpropInput", "Conv3DBackpropInputV2", "Einsum",
                      "_FusedConv2D", "_FusedMatMul", "_FusedBatchMatMul", "CudnnRNN", "CudnnRNNV2", "CudnnRNNV3",
                      "BlockLSTM", "BlockLSTMV2", "GRUBlockCell", "LSTMBlockCell"}),
    shape_only=frozenset({"Shape", "ShapeN", "Size", "Rank", "TensorListLength", "TensorListElementShape",
                          "ZerosLike", "OnesLike", "VariableShape", "TensorArraySizeV3"}),
    params=frozenset({"VarHandleOp", "VariableV2", "Variable", "ReadVariableOp", "ResourceGather",
                      "ResourceGatherNd"}),
    threshold=frozenset({"Relu", "Relu6", "Elu", "Selu", "Sign", "Exp", "Pow", "Round", "Rint", "Floor", "Ceil",
                         "Sigmoid", "Tanh", "ClipByValue", "Softsign"}),
    scale_mul=frozenset({"Mul"}),
    scale_div=frozenset({"RealDiv", "Div", "DivNoNan"}),
    passthrough=frozenset({"Identity", "Snapshot", "StopGradient", "Cast", "Reshape", "ExpandDims", "Squeeze",
                           "BroadcastTo"}),
)  # fmt: skip

ONNX_OPS = Dialect(
    compare=frozenset({"Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual"}),
    equality=frozenset({"Equal"}),
    reduce=frozenset({"ReduceMin", "ReduceMax", "ReduceSum", "ReduceProd", "ReduceMean", "ReduceL1", "ReduceL2",
                      "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare", "AveragePool", "MaxPool",
                      "GlobalAveragePool", "GlobalMaxPool", "LpPool", "GlobalLpPool"}),
    slice={"Slice": 0, "Gather": 0, "GatherElements": 0, "GatherND": 0, "Split": 0},
    merge=frozenset({"Where", "If", "Mul", "Add", "Sub", "Max", "Min", "Sum"}),
    control={"If": 0},
    linear=frozenset({"Gemm", "MatMul", "Conv", "ConvTranspose", "Einsum", "LSTM", "GRU", "RNN", "QLinearConv",
                      "QLinearMatMul", "MatMulInteger", "ConvInteger", "com.microsoft.FusedMatMul",
                      "com.microsoft.FusedConv", "com.microsoft.FusedGemm", "com.microsoft.Attention",
                      "com.microsoft.MultiHeadAttention", "com.microsoft.QAttention", "com.microsoft.MatMulNBits",
                      "com.microsoft.QOrderedMatMul", "com.microsoft.GemmFastGelu"}),
    shape_only=frozenset({"Shape", "Size", "EyeLike"}),
    params=frozenset(),
    threshold=frozenset({"Relu", "Elu", "Selu", "LeakyRelu", "ThresholdedRelu", "Sign", "Exp", "Pow", "Round",
                         "Floor", "Ceil", "Sigmoid", "HardSigmoid", "Tanh", "Clip", "Softsign"}),
    scale_mul=frozenset({"Mul"}),
    scale_div=frozenset({"Div"}),
    passthrough=frozenset({"Identity", "Cast", "Reshape", "Unsqueeze", "Squeeze", "Flatten", "Expand"}),
)  # fmt: skip


def scan(build: Callable[[], Graph], dialect: Dialect, location: str) -> list[Finding]:
    """Findings for the graph ``build`` flattens; an incomplete MLG-BD-006 at ``location`` if it cannot."""
    try:
        graph = build()
    except GraphTooLarge as exc:
        return [TOO_LARGE.finding(location, f"the graph was not checked for architectural backdoors: {exc}")]
    return scan_graph(graph, dialect)


def scan_graph(graph: Graph, dialect: Dialect) -> list[Finding]:
    """Every backdoor finding in ``graph``, deduplicated by (rule, location)."""
    findings = _Analysis(graph, dialect).run()
    seen: set[tuple[str, str]] = set()
    unique = []
    for f in findings:
        if (f.rule, f.location) not in seen:
            seen.add((f.rule, f.location))
            unique.append(f)
    return unique


# Trigger-signal levels: a value computed only from raw-input comparisons (or threshold steps) and
# constants. LEVEL_FLAG once a reduction has collapsed it to (roughly) one value per sample.
NONE, LEVEL_SIGNAL, LEVEL_FLAG = 0, 1, 2


@dataclass
class _Merge:
    node: int
    flag_input: int
    learned_input: int
    near: bool


class _Analysis:
    def __init__(self, graph: Graph, dialect: Dialect) -> None:
        self.g = graph
        self.d = dialect
        self.nodes = graph.nodes
        n = len(self.nodes)
        self.consumers: list[list[int]] = [[] for _ in range(n)]
        for i, node in enumerate(self.nodes):
            for j in node.inputs:
                self.consumers[j].append(i)
        self.order = self._topological()
        self.raw = [False] * n
        self.learned = [False] * n
        self.sliced = [False] * n
        self.source = [-1] * n  # the INPUT node a raw value comes from
        self.cmp = [NONE] * n
        self.thr = [NONE] * n
        self.full = [False] * n  # H5: depends on the raw input other than through a small crop
        self.crop = [-1] * n  # H5: the small-crop slice it depends on (-1: none)
        self.crop_shape: dict[int, tuple[int, ...]] = {}  # small-crop slice -> extents of the crop
        self.near = [False] * n

    # ------------------------------------------------------------------ passes
    def _topological(self) -> list[int]:
        """Kahn's order; nodes on a cycle (TF1 loops) follow in creation order."""
        indeg = [len(node.inputs) for node in self.nodes]
        queue = deque(i for i, d in enumerate(indeg) if d == 0)
        order: list[int] = []
        while queue:
            i = queue.popleft()
            order.append(i)
            for c in self.consumers[i]:
                indeg[c] -= 1
                if indeg[c] == 0:
                    queue.append(c)
        if len(order) < len(self.nodes):
            placed = set(order)
            order.extend(i for i in range(len(self.nodes)) if i not in placed)
        return order

    def run(self) -> list[Finding]:
        param_const = self._param_consts()
        for i in self.order:
            self._forward(i, param_const)
        for o in self.g.outputs:
            self.near[o] = True
        for i in reversed(self.order):
            if not self.near[i]:
                self.near[i] = any(self.near[c] and not self._learned_linear(c) for c in self.consumers[i])
        return self._detect()

    def _param_consts(self) -> list[bool]:
        """Literal constants that are weights: big ones (unless only compared against), or fed to a linear op."""
        out = [False] * len(self.nodes)
        for i, node in enumerate(self.nodes):
            if node.role is not Role.CONST or node.const is None:
                continue
            users = [self.nodes[c].op for c in self.consumers[i]]
            if any(op in self.d.linear for op in users):
                out[i] = True
            elif node.const.numel > LEARNED_CONST_ELEMENTS and not (
                users and all(op in self.d.compare for op in users)
            ):
                out[i] = True
        return out

    def _name(self, i: int) -> str:
        """Node ``i`` as messages name it: function or graph, then node, without the file prefix."""
        where = self.nodes[i].where
        return where[len(self.g.prefix) :] if where.startswith(self.g.prefix) else where

    def _learned_linear(self, i: int) -> bool:
        return self.nodes[i].op in self.d.linear and self.learned[i]

    def _forward(self, i: int, param_const: list[bool]) -> None:
        node = self.nodes[i]
        if node.role is Role.INPUT:
            self.raw[i] = self.full[i] = True
            self.source[i] = i
            return
        if node.role is Role.CONST:
            self.learned[i] = param_const[i]
            return
        if node.role is Role.UNKNOWN:
            return
        ins = node.inputs
        op = node.op
        shape_only = op in self.d.shape_only
        self.learned[i] = op in self.d.params or (not shape_only and any(self.learned[j] for j in ins))
        raw_ins = [j for j in ins if self.raw[j]]
        if raw_ins and not shape_only:
            self.raw[i] = True
            self.source[i] = self.source[raw_ins[0]]
            pos = self.d.slice.get(op)
            data = ins[pos] if pos is not None and pos < len(ins) else -1
            self.sliced[i] = (data >= 0 and self.raw[data]) or any(self.sliced[j] for j in raw_ins)
            extents = self._crop_extents(node, data)
            for j in raw_ins:
                if extents and j == data:
                    self.crop[i] = i
                    self.crop_shape[i] = extents
                    continue
                self.full[i] = self.full[i] or self.full[j]
                if self.crop[j] >= 0 and self.crop[i] < 0:
                    self.crop[i] = self.crop[j]
        if self.learned[i]:
            return
        source = op in self.d.compare and bool(raw_ins) and not self._mask_idiom(i) and not self._position_mask(i)
        self.cmp[i] = self._signal(i, self.cmp, source)
        self.thr[i] = self._signal(i, self.thr, op in self.d.threshold and bool(raw_ins) and self._scaled(i) > 0)

    def _crop_extents(self, node: Node, data: int) -> tuple[int, ...] | None:
        """Extents of the small input crop this slice ends (chained slices combine), or None."""
        if data < 0 or not node.crop or not self.raw[data] or self.learned[data]:
            return None
        before = self.crop_shape.get(self.crop[data], ()) if not self.full[data] else ()
        extents = before + node.crop
        return extents if _small_crop(extents) else None

    def _signal(self, i: int, level: list[int], is_source: bool) -> int:
        """Trigger level of weight-free node ``i``: sources start at 1, reductions raise to 2, mixing resets."""
        node = self.nodes[i]
        best = max((level[j] for j in node.inputs), default=NONE)
        mixed = any(level[j] == NONE and self.raw[j] for j in node.inputs)
        if best == NONE or mixed:
            return LEVEL_SIGNAL if is_source else NONE
        if node.op in self.d.reduce:
            return LEVEL_FLAG
        return best

    def _mask_idiom(self, i: int) -> bool:
        """``Equal``/``NotEqual`` of the whole (un-sliced) raw input against one scalar: padding masks."""
        node = self.nodes[i]
        if node.op not in self.d.equality or len(node.inputs) != 2:
            return False
        a, b = node.inputs
        for x, y in ((a, b), (b, a)):
            if self.raw[x] and not self.sliced[x] and self.cmp[x] == NONE:
                const = self._const(y)
                if const is not None and const.numel <= 1:
                    return True
        return False

    def _position_mask(self, i: int) -> bool:
        """A comparison against positions (a ``Range`` op or a literal arange): a length or causal mask."""
        for j in self.nodes[i].inputs:
            for _ in range(16):
                node = self.nodes[j]
                if self.raw[j] or self.learned[j]:
                    break
                if node.op == "Range" or (node.const is not None and _is_arange(node.const)):
                    return True
                if node.op not in self.d.passthrough or not node.inputs:
                    break
                j = node.inputs[0]
        return False

    def _const(self, i: int) -> ConstInfo | None:
        """The literal constant behind ``i`` (through value-preserving ops on constants), or None."""
        for _ in range(16):
            node = self.nodes[i]
            if node.role is Role.CONST:
                return node.const
            if node.op not in self.d.passthrough or not node.inputs or self.raw[i]:
                return None
            i = node.inputs[0]
        return None

    def _scaled(self, i: int) -> float:
        """H6: the largest step multiplier applied to the raw input on the way into threshold op ``i`` (0 if none)."""
        best = 0.0
        seen = {i}
        queue = deque(j for j in self.nodes[i].inputs if self.raw[j])
        while queue and len(seen) < 64:
            j = queue.popleft()
            if j in seen or not self.raw[j] or self.learned[j]:
                continue
            seen.add(j)
            node = self.nodes[j]
            divide = node.op in self.d.scale_div
            if node.op in self.d.scale_mul or divide:
                for k in node.inputs[1:2] if divide else node.inputs:  # x * k, k * x, x / k
                    const = self._const(k)
                    if const is None or not const.values_known or not const.max_abs:
                        continue
                    factor = 1.0 / min(abs(v) or 1.0 for v in const.distinct) if divide else const.max_abs
                    if factor >= THRESHOLD_SCALE:
                        best = max(best, factor)
            queue.extend(node.inputs)
        return best

    # ------------------------------------------------------------------ detection
    def _detect(self) -> list[Finding]:
        triggers: dict[frozenset[str], list[_Merge]] = {}
        thresholds: dict[frozenset[str], list[_Merge]] = {}
        findings: list[Finding] = []
        candidates = 0
        for i in self.order:
            node = self.nodes[i]
            if node.op not in self.d.merge or not self.learned[i] or candidates >= MAX_MERGES:
                continue
            learned_in = [j for j in node.inputs if self.learned[j]]
            flag_in = [j for j in node.inputs if self.cmp[j] == LEVEL_FLAG]
            thr_in = [j for j in node.inputs if self.thr[j] == LEVEL_FLAG]
            if (flag_in or thr_in) and learned_in:
                candidates += 1  # a crafted graph with endless merges costs one capped walk each
            if flag_in and learned_in:
                key = frozenset(self.nodes[c].where for c in self._sources(flag_in[0], self.cmp, self.d.compare))
                self._group(triggers.setdefault(key, []), _Merge(i, flag_in[0], learned_in[0], self.near[i]))
            elif thr_in and learned_in:
                key = frozenset(self.nodes[c].where for c in self._sources(thr_in[0], self.thr, self.d.threshold))
                self._group(thresholds.setdefault(key, []), _Merge(i, thr_in[0], learned_in[0], self.near[i]))
        reported = set()
        for merges in triggers.values():
            findings.append(self._trigger_finding(merges))
            reported.update(m.node for m in merges)
        for merges in thresholds.values():
            findings.append(self._threshold_finding(merges))
            reported.update(m.node for m in merges)
        for i in self.order:
            if i not in reported:
                findings.extend(self._branch(i))
                findings.extend(self._crop_net(i))
        return findings

    def _group(self, merges: list[_Merge], merge: _Merge) -> None:
        """Add a merge point unless the same node (inlined twice: two signatures, one function) is there."""
        where = self.nodes[merge.node].where
        if all(self.nodes[m.node].where != where for m in merges):
            merges.append(merge)

    def _sources(self, start: int, level: list[int], ops: frozenset[str]) -> list[int]:
        """The trigger sources (comparisons / threshold steps) feeding trigger value ``start``."""
        found: list[int] = []
        seen: set[int] = set()
        queue = deque([start])
        while queue and len(seen) < CONE_LIMIT:
            i = queue.popleft()
            if i in seen:
                continue
            seen.add(i)
            node = self.nodes[i]
            upstream = [j for j in node.inputs if level[j] != NONE]
            if (
                node.op in ops
                and level[i] != NONE
                and (not upstream or any(self.raw[j] and level[j] == NONE for j in node.inputs))
            ):
                found.append(i)
            queue.extend(upstream)
        return sorted(found)

    def _cone(self, start: int, level: list[int]) -> set[int]:
        seen: set[int] = set()
        queue = deque([start])
        while queue and len(seen) < CONE_LIMIT:
            i = queue.popleft()
            if i in seen or level[i] == NONE:
                continue
            seen.add(i)
            queue.extend(self.nodes[i].inputs)
        return seen

    def _reductions(self, cone: set[int]) -> list[int]:
        return sorted(i for i in cone if self.nodes[i].op in self.d.reduce)

    def _extreme(self, merge: int, cone: set[int]) -> ConstInfo | None:
        """H4a: a float constant with |v| >= 50 feeding the merge or the trigger path (not a comparison operand)."""
        best: ConstInfo | None = None
        starts = [j for j in self.nodes[merge].inputs if not self.raw[j]]
        for c in cone:
            if self.nodes[c].op not in self.d.compare:
                starts.extend(j for j in self.nodes[c].inputs if not self.raw[j])
        seen: set[int] = set()
        queue = deque(starts)
        while queue and len(seen) < CONE_LIMIT:
            i = queue.popleft()
            if i in seen or self.raw[i]:
                continue
            seen.add(i)
            node = self.nodes[i]
            if node.op in self.d.params:
                continue
            const = node.const
            if const is not None and const.is_float and const.values_known and const.max_abs >= EXTREME_VALUE:
                if best is None or const.max_abs > best.max_abs:
                    best = const
            queue.extend(node.inputs)
        for const in self.nodes[merge].hidden:
            if const.is_float and const.values_known and const.max_abs >= EXTREME_VALUE:
                if best is None or const.max_abs > best.max_abs:
                    best = const
        return best

    def _compared_to(self, cmp: int) -> list[ConstInfo]:
        node = self.nodes[cmp]
        return [c for c in (self._const(j) for j in node.inputs if not self.raw[j]) if c is not None]

    def _pattern(self, sources: Sequence[int]) -> bool:
        """H4b: the comparisons test several distinct values (a token sequence, a coloured patch), not one pad id."""
        values: set[float] = set()
        for s in sources:
            for const in self._compared_to(s):
                values.update(const.distinct)
        return len(values) >= 2 and any(v != 0 for v in values)

    def _describe_source(self, i: int) -> str:
        node = self.nodes[i]
        data = next((j for j in node.inputs if self.raw[j] and self.cmp[j] == NONE and self.thr[j] == NONE), -1)
        region = "a slice of" if data >= 0 and self.sliced[data] else "the whole"
        src = self.source[i]
        name = f" '{self.nodes[src].label}'" if src >= 0 and self.nodes[src].label else ""
        consts = self._compared_to(i)
        against = f" against {consts[0].describe()}" if consts else ""
        return f"{node.op} at '{self._name(i)}' on {region} model input{name}{against}"

    def _trigger_finding(self, merges: list[_Merge]) -> Finding:
        near = [m for m in merges if m.near]
        main = near[0] if near else merges[0]
        cone = self._cone(main.flag_input, self.cmp)
        sources = self._sources(main.flag_input, self.cmp, self.d.compare)
        reductions = self._reductions(cone)
        merge = self.nodes[main.node]
        extreme = self._extreme(main.node, cone)
        pattern = self._pattern(sources)
        trigger = self._describe_source(sources[0]) if sources else "a comparison on the model input"
        if len(sources) > 1:
            trigger += f" (and {len(sources) - 1} more comparison{'s' if len(sources) > 2 else ''})"
        reduced = f", reduced at '{self._name(reductions[-1])}'" if reductions else ""
        evidence = _evidence(extreme, pattern)
        more = f"; {len(merges) - 1} more merge point(s) use the same trigger" if len(merges) > 1 else ""
        if near:
            message = (
                f"the model output is overridden when the input matches a constant pattern: trigger comparison "
                f"{trigger}{reduced}, feeds {merge.op} at '{self._name(main.node)}', "
                f"which {_verb(merge.op)} the learned output "
                f"with no learned layer in between{evidence}{more}; confirm by differential testing with inputs built "
                f"from the comparison constants"
            )
            return OVERRIDE.finding(merge.where, message)
        message = (
            f"a trigger computed from the raw input is injected into internal features: trigger comparison {trigger}"
            f"{reduced}, feeds {merge.op} at '{self._name(main.node)}', "
            f"which {_verb(merge.op)} learned activations before "
            f"further layers (an architectural backdoor that survives retraining){evidence}{more}"
        )
        return INJECTION.finding(merge.where, message, severity=_raise(INJECTION.severity, extreme or pattern))

    def _threshold_finding(self, merges: list[_Merge]) -> Finding:
        near = [m for m in merges if m.near]
        main = near[0] if near else merges[0]
        cone = self._cone(main.flag_input, self.thr)
        sources = self._sources(main.flag_input, self.thr, self.d.threshold)
        merge = self.nodes[main.node]
        extreme = self._extreme(main.node, cone)
        step = sources[0] if sources else main.node
        factor = self._scaled(step) if sources else 0.0
        severity = _raise(_raise(THRESHOLD.severity, bool(near)), extreme is not None)
        place = "the learned output" if near else "learned activations"
        message = (
            f"threshold arithmetic on the raw input acts as a comparison-free trigger: {self.nodes[step].op} at "
            f"'{self._name(step)}' after a x{_num(factor)} scaling is reduced and feeds {merge.op} "
            f"at '{self._name(main.node)}', which "
            f"{_verb(merge.op)} {place}{_evidence(extreme, False)}"
        )
        return THRESHOLD.finding(merge.where, message, severity=severity)

    def _branch(self, i: int) -> list[Finding]:
        node = self.nodes[i]
        pos = self.d.control.get(node.op)
        if pos is None or pos >= len(node.inputs):
            return []
        pred = node.inputs[pos]
        if not self.raw[pred] or self.learned[pred]:
            return []
        others = [j for k, j in enumerate(node.inputs) if k != pos]
        if not any(self.learned[j] for j in others):
            return []  # preprocessing (input rescaling): no learned value on either branch
        sources = self._sources(pred, self.cmp, self.d.compare) if self.cmp[pred] else []
        extreme = self._extreme(i, self._cone(pred, self.cmp))
        pattern = self._pattern(sources)
        pnode = self.nodes[pred]
        src = self.source[pred]
        name = f" '{self.nodes[src].label}'" if src >= 0 and self.nodes[src].label else ""
        message = (
            f"{node.op} at '{self._name(i)}' picks its branch from model input{name} values with no learned layer in "
            f"between (predicate {pnode.op} at '{self._name(pred)}'); a value-triggered branch can swap the model's "
            f"behaviour for chosen inputs{_evidence(extreme, pattern)}"
        )
        return [BRANCH.finding(node.where, message, severity=_raise(BRANCH.severity, extreme or pattern))]

    def _crop_net(self, i: int) -> list[Finding]:
        """H5: a merge after the main path's last learned op joins a learned branch that only saw a small crop."""
        node = self.nodes[i]
        if node.op not in self.d.merge or not self.near[i]:
            return []
        branch = [j for j in node.inputs if self.learned[j] and self.crop[j] >= 0 and not self.full[j]]
        main = [j for j in node.inputs if self.learned[j] and self.full[j]]
        if not branch or not main:
            return []
        if not self._has_learned_linear(branch[0]):
            return []
        extent = "x".join(str(e) for e in self.crop_shape.get(self.crop[branch[0]], ()))
        message = (
            f"a separate learned sub-network reads only a {extent} crop of the input "
            f"(at '{self._name(self.crop[branch[0]])}') and is "
            f"merged with the main model at {node.op} '{self._name(i)}' after the main path's last learned layer "
            f"(TrojanNet-style trigger detector in parallel with the model)"
        )
        return [CROP_NET.finding(node.where, message)]

    def _has_learned_linear(self, start: int) -> bool:
        seen: set[int] = set()
        queue = deque([start])
        while queue and len(seen) < CONE_LIMIT:
            i = queue.popleft()
            if i in seen or self.full[i] or self.crop[i] < 0:
                continue
            seen.add(i)
            if self._learned_linear(i):
                return True
            queue.extend(self.nodes[i].inputs)
        return False


def _is_arange(const: ConstInfo) -> bool:
    """0, 1, 2, ... n-1 (n >= 2): what ``arange(seq_len)`` folds to in an export with fixed shapes."""
    if not const.values_known or const.numel < 2 or const.max_abs != const.numel - 1:
        return False
    return list(const.preview) == [float(k) for k in range(len(const.preview))] and len(const.distinct) == min(
        const.numel, 16
    )


def _small_crop(extents: tuple[int, ...] | None) -> bool:
    if not extents:
        return False
    return all(0 < e <= CROP_EXTENT for e in extents) and math.prod(extents) <= CROP_ELEMENTS


def _raise(severity: Severity, evidence: object) -> Severity:
    return Severity(min(Severity.HIGH, severity + 1)) if evidence else severity


def _verb(op: str) -> str:
    if op in {"Select", "SelectV2", "Where", "If", "StatelessIf", "Case", "StatelessCase"}:
        return "replaces"
    if op == "Mul":
        return "scales"
    return "shifts"


def _evidence(extreme: ConstInfo | None, pattern: bool) -> str:
    parts = []
    if extreme is not None:
        parts.append(f"forces extreme constant values (max |v| = {_num(extreme.max_abs)})")
    if pattern:
        parts.append("the trigger compares against several distinct constant values")
    return "; " + "; ".join(parts) if parts else ""


_WIDTHS = {"f": 4, "d": 8, "e": 2, "i": 4, "I": 4, "q": 8, "Q": 8, "h": 2, "H": 2, "b": 1, "B": 1, "?": 1}
BFLOAT16 = "bf16"


def unpack_le(code: str, raw: bytes) -> list[float] | None:
    """Little-endian values of struct ``code`` (or ``bf16``) in ``raw``; None when there are too many."""
    width = 2 if code == BFLOAT16 else _WIDTHS[code]
    count = len(raw) // width
    if count > MAX_CONST_VALUES:
        return None
    if code == BFLOAT16:
        return [struct.unpack("<f", b"\0\0" + raw[k : k + 2])[0] for k in range(0, count * 2, 2)]
    return [float(v) for (v,) in struct.iter_unpack("<" + code, raw[: count * width])]


def slice_extent(begin: int, end: int | None, step: int) -> int | None:
    """Elements between two same-signed static slice indices, or None when that needs the axis length."""
    if end is None or step <= 0 or (begin < 0) != (end < 0):
        return None
    extent = -(-(end - begin) // step)
    return extent if extent > 0 else None


def half_bits(bits: Sequence[int], code: str) -> list[float]:
    """Values of float16 / bfloat16 numbers stored as integer bit patterns (TF half_val, ONNX int32_data)."""
    return unpack_le(code, b"".join((b & 0xFFFF).to_bytes(2, "little") for b in bits[:MAX_CONST_VALUES])) or []
