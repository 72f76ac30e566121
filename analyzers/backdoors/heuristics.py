"""Architectural-backdoor heuristics shared by the SavedModel and ONNX analyzers (docs/rules.md, Backdoors).

A backdoor written into a model's graph (ShadowLogic, DeepPayload, Bober-Irizar et al.) needs a
trigger detector that reads the raw input without any learned weight, a verdict with one value per
sample, and a merge that lets it override or shift the learned output. Format adapters
(``savedmodel_adapter``, ``onnx_adapter``) flatten a parsed model into the small format-neutral
``Graph`` below (one node per op, data inputs by node index, literal constants summarised, input
ranks and static indexing decoded); ``scan_graph`` runs one taint pass in topological order and one
backward pass for output proximity, then reports:

* MLG-BD-001 (H1): a weight-free trigger flag on the raw input merged with learned values with no
  learned linear op between the merge and an output;
* MLG-BD-002 (H2): the same merge deeper in the network (injected into internal features);
* MLG-BD-003 (H3): an If/Case whose predicate is computed from raw input values without weights,
  choosing between branches that carry learned values;
* MLG-BD-004 (H5): a small learned sub-network that only sees a small fixed crop of the input,
  merged with the main path after its last learned op (TrojanNet);
* MLG-BD-005 (H6): comparison-free threshold arithmetic (x1000-scaled ``Relu``/``Sign``/``Exp``...)
  on the raw input, reduced and merged with learned values;
* MLG-BD-006: the graph was too large or its calls nest too deeply to analyse (incomplete).

A trigger flag (one value per sample) comes from any order or form: a comparison reduced over a
region (``all(patch > 0.9)``); a comparison of a per-sample statistic (``min(patch) > 0.99``, a
token count ``> 0``); a comparison of one indexed element on every non-batch axis (``x[:, 7] ==
c``, ``Gather(x, 7, axis=1)``); logical combinations of flags; tolerance equality (``|x - c| < eps``
reads as ``x == c``). Whole-input equality against one scalar (``ids == pad``) is decided by use:
per-position masks, counts used as divisors and "all positions are padding" tests stay silent,
while "the input contains c" (Any/Max of the comparison, a count compared with 0) is a trigger.
Flags of those newer forms count only where they meet the output next to a weight-free payload
(a constant vector with two distinct values, or a OneHot) that replaces or blends the learned
output; the classic form (a comparison on a slice, reduced) counts at every learned merge. H4
(extreme constants next to the merge, comparison constants forming a pattern) raises a finding one
level and is named in its message. A trigger signal stops being one as soon as it is mixed with
raw values or weights, which keeps masks, input rescaling and index fix-ups silent; whole-input
statistics against a threshold (silence, blank or saturated input) are data gates, not triggers.
Cost is linear in the node count.
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
    scalar: bool = False  # a 0-d tensor (as an index it removes the axis it reads)

    @classmethod
    def of(cls, numel: int, is_float: bool, values: Iterable[float] | None, scalar: bool = False) -> ConstInfo:
        if values is None or numel > MAX_CONST_VALUES:
            return cls(numel, is_float, False, scalar=scalar)
        max_abs, distinct, preview = 0.0, {}, []
        for v in values:
            if len(preview) < 8:
                preview.append(v)
            if len(distinct) < 16:
                distinct.setdefault(v, None)
            if not math.isnan(v):
                max_abs = max(max_abs, abs(v))
        return cls(numel, is_float, True, max_abs, tuple(distinct), tuple(preview), scalar)

    def describe(self) -> str:
        if not self.values_known:
            return f"a {self.numel}-element constant"
        shown = ", ".join(_num(v) for v in self.preview)
        if self.numel == 1:
            return shown
        return f"[{shown}{', ...' if self.numel > len(self.preview) else ''}]"


def _num(v: float) -> str:
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else f"{v:g}"


class Effect(enum.Enum):
    """What a static index does to one axis of a slice op's data input."""

    DROP = "drop"  # one element, axis removed (x[:, 7], Gather with a scalar index)
    PIN = "pin"  # one element, axis kept (x[:, 7:8], Gather with [7])
    RANGE = "range"  # several elements (x[:, 0:3])


@dataclass(frozen=True, slots=True)
class Pick:
    """One statically indexed axis of a slice op's data input (axis 0 is the batch; negative from the end)."""

    axis: int
    label: str  # the index as messages show it: "7", "0:3", "-4:"
    effect: Effect


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
    rank: int | None = None  # INPUT nodes: the input's rank, batch axis included (None: unknown)
    picks: tuple[Pick, ...] | None = None  # slice ops: the static indexing of the data input (None: unknown)
    inner_learned: bool = False  # an opaque control-flow op whose bodies hold weights of their own


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
    exists: frozenset[str]  # reductions that ask "some position" (Any, Max)
    forall: frozenset[str]  # reductions that ask "every position" (All, Min, Prod)
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
    elementwise: frozenset[str]  # ops that keep every element where it is (views of the input survive them)
    negate: frozenset[str]  # boolean negation
    subtract: frozenset[str]
    add: frozenset[str]
    magnitude: frozenset[str]  # |d| or d * d: with a subtracted constant, a distance for tolerance equality
    onehot: frozenset[str]
    builders: frozenset[str]  # ops that place different constant values at positions (ScatterND, Concat)
    data_inputs: Mapping[str, tuple[int, ...]]  # ops whose other inputs are shapes, axes or indices
    axis_last: frozenset[str]  # ops whose last input is an axis


_SWAP = {"Greater": "Less", "Less": "Greater", "GreaterEqual": "LessEqual", "LessEqual": "GreaterEqual",
         "GreaterOrEqual": "LessOrEqual", "LessOrEqual": "GreaterOrEqual"}  # fmt: skip
_SYMBOL = {"Equal": "==", "ApproximateEqual": "==", "NotEqual": "!=", "Greater": ">", "Less": "<",
           "GreaterEqual": ">=", "GreaterOrEqual": ">=", "LessEqual": "<=", "LessOrEqual": "<="}  # fmt: skip
_BELOW = frozenset({"Less", "LessEqual", "LessOrEqual"})
_REDUCE_WORD = {"Min": "min", "ReduceMin": "min", "Max": "max", "ReduceMax": "max", "All": "all", "Any": "any",
                "Sum": "sum", "ReduceSum": "sum", "Mean": "mean", "ReduceMean": "mean", "Prod": "product",
                "ReduceProd": "product"}  # fmt: skip

TF_OPS = Dialect(
    compare=frozenset({"Equal", "NotEqual", "Greater", "GreaterEqual", "Less", "LessEqual", "ApproximateEqual"}),
    equality=frozenset({"Equal", "NotEqual"}),
    reduce=frozenset({"All", "Any", "Min", "Max", "Prod", "Sum", "Mean", "EuclideanNorm",
                      "AvgPool", "AvgPool3D", "MaxPool", "MaxPoolV2", "MaxPool3D"}),
    exists=frozenset({"Any", "Max", "MaxPool", "MaxPoolV2", "MaxPool3D"}),
    forall=frozenset({"All", "Min", "Prod"}),
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
    elementwise=frozenset({"Identity", "Snapshot", "StopGradient", "Cast", "Abs", "Neg", "Sub", "Add", "AddV2",
                           "Mul", "RealDiv", "Div", "Square", "Sqrt", "Rsqrt", "Reciprocal", "Exp", "Log",
                           "Floor", "Ceil", "Round", "Rint", "Sign", "Maximum", "Minimum", "ClipByValue",
                           "LogicalNot", "SquaredDifference"}),
    negate=frozenset({"LogicalNot"}),
    subtract=frozenset({"Sub"}),
    add=frozenset({"Add", "AddV2"}),
    magnitude=frozenset({"Abs", "Square"}),
    onehot=frozenset({"OneHot"}),
    builders=frozenset({"TensorScatterUpdate", "TensorScatterAdd", "ScatterNd", "ConcatV2", "Concat", "Pack",
                        "Pad", "PadV2", "MirrorPad"}),
    data_inputs={"Reshape": (0,), "ExpandDims": (0,), "Squeeze": (0,), "BroadcastTo": (0,), "Tile": (0,),
                 "StridedSlice": (0,), "Slice": (0,), "GatherV2": (0,), "Fill": (1,), "Select": (1, 2),
                 "SelectV2": (1, 2), "TensorScatterUpdate": (0, 2), "TensorScatterAdd": (0, 2), "ScatterNd": (1,),
                 "Pad": (0,), "PadV2": (0, 2), "Transpose": (0,), "Range": ()},
    axis_last=frozenset({"ConcatV2"}),
)  # fmt: skip

ONNX_OPS = Dialect(
    compare=frozenset({"Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual"}),
    equality=frozenset({"Equal"}),
    reduce=frozenset({"ReduceMin", "ReduceMax", "ReduceSum", "ReduceProd", "ReduceMean", "ReduceL1", "ReduceL2",
                      "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare", "AveragePool", "MaxPool",
                      "GlobalAveragePool", "GlobalMaxPool", "LpPool", "GlobalLpPool"}),
    exists=frozenset({"ReduceMax", "MaxPool", "GlobalMaxPool"}),
    forall=frozenset({"ReduceMin", "ReduceProd"}),
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
    elementwise=frozenset({"Identity", "Cast", "Abs", "Neg", "Sub", "Add", "Mul", "Div", "Sqrt", "Reciprocal",
                           "Exp", "Log", "Floor", "Ceil", "Round", "Sign", "Max", "Min", "Clip", "Not"}),
    negate=frozenset({"Not"}),
    subtract=frozenset({"Sub"}),
    add=frozenset({"Add"}),
    magnitude=frozenset({"Abs"}),
    onehot=frozenset({"OneHot"}),
    builders=frozenset({"ScatterND", "ScatterElements", "Scatter", "Concat", "Pad"}),
    data_inputs={"Reshape": (0,), "Unsqueeze": (0,), "Squeeze": (0,), "Expand": (0,), "Tile": (0,), "Slice": (0,),
                 "Gather": (0,), "ScatterND": (0, 2), "ScatterElements": (0, 2), "Scatter": (0, 2), "Pad": (0, 2),
                 "ConstantOfShape": (), "Where": (1, 2), "Transpose": (0,), "Range": ()},
    axis_last=frozenset(),
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
# constants. LEVEL_FLAG once it holds (roughly) one value per sample.
NONE, LEVEL_SIGNAL, LEVEL_FLAG = 0, 1, 2


@dataclass(frozen=True, slots=True)
class _View:
    """Which positions of a model input a raw, weight-free value reads (for one-element tests and messages)."""

    source: int  # the INPUT node
    axes: tuple[int, ...]  # the input's non-batch axes (1-based) still present in the value
    labels: tuple[str, ...]  # the index read on each non-batch axis of the input (":" for all of it)
    pinned: frozenset[int] = frozenset()  # axes still present but narrowed to one element
    reduce: str = ""  # the reduction that turned the region into one statistic per sample

    @classmethod
    def whole(cls, source: int, rank: int | None) -> _View | None:
        if rank is None or rank < 1:
            return None
        return cls(source, tuple(range(1, rank)), (":",) * (rank - 1))

    @property
    def single(self) -> bool:
        """One element of the input per sample (every non-batch axis indexed down to one position)."""
        return all(a in self.pinned for a in self.axes)

    def apply(self, picks: tuple[Pick, ...]) -> _View | None:
        labels = list(self.labels)
        dropped: set[int] = set()
        pinned = set(self.pinned)
        for pick in picks:
            axis = pick.axis if pick.axis >= 0 else len(self.axes) + 1 + pick.axis
            if axis == 0:
                continue
            if not 0 < axis <= len(self.axes):
                return None
            original = self.axes[axis - 1]
            labels[original - 1] = pick.label
            if pick.effect is Effect.DROP:
                dropped.add(original)
            elif pick.effect is Effect.PIN:
                pinned.add(original)
            else:
                pinned.discard(original)
        axes = tuple(a for a in self.axes if a not in dropped)
        return _View(self.source, axes, tuple(labels), frozenset(pinned), self.reduce)

    def text(self, name: str) -> str:
        if all(label == ":" for label in self.labels):
            return f"the whole input '{name}'" if not self.reduce else f"{name}"
        return f"{name}[:, {', '.join(self.labels)}]"


@dataclass(frozen=True, slots=True)
class _Tolerance:
    """A raw value that is ``x - c`` (or ``|x - c|`` once ``magnitude``): the constant ``c`` a tolerance test reads."""

    center: int  # the constant node
    negate: bool  # x + c: the center is -c
    magnitude: bool


@dataclass(frozen=True, slots=True)
class _Test:
    """A trigger comparison: its raw operand, relation (operand on the left), compared constant, form."""

    operand: int
    relation: str
    constant: int  # node id of the compared constant, -1 when not a literal
    form: str  # "element" (per position), "single" (one element), "statistic", "count"


@dataclass
class _Payload:
    """The weight-free value a trigger forces into the output."""

    text: str


@dataclass(frozen=True, slots=True)
class _Pay:
    """Constant content a weight-free value carries: its largest vector of distinct values, a OneHot, values."""

    vector: ConstInfo | None = None  # a literal with at least two elements and two distinct values
    onehot: bool = False
    built: bool = False  # passed through an op that places values at positions (ScatterND, Concat)
    values: tuple[float, ...] = ()  # up to 8 distinct values of the literals, sorted

    @classmethod
    def of(cls, const: ConstInfo) -> _Pay | None:
        if not const.values_known:
            return None
        vector = const if const.numel >= 2 and len(const.distinct) >= 2 else None
        return cls(vector, values=tuple(sorted(v for v in const.distinct if not math.isnan(v))[:8]))

    @classmethod
    def combine(cls, parts: Iterable[_Pay | None], built: bool = False) -> _Pay | None:
        present = [p for p in parts if p is not None]
        if not present:
            return None
        if len(present) == 1 and not built:
            return present[0]
        vectors = [p.vector for p in present if p.vector is not None]
        vector = max(vectors, key=lambda c: c.numel) if vectors else None
        values = tuple(sorted({v for p in present for v in p.values})[:8])
        onehot = any(p.onehot for p in present)
        return cls(vector, onehot, built or any(p.built for p in present), values)


@dataclass
class _Merge:
    node: int
    flag_input: int
    learned_input: int
    near: bool
    guarded: bool = False
    payload: _Payload | None = None


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
        self.guard = [False] * n  # a trigger signal of the newer forms: it needs a payload at the output
        self.pol = [0] * n  # padding-idiom signals: +1 "position == c", -1 "position != c"
        self.thr = [NONE] * n
        self.view: list[_View | None] = [None] * n
        self.stat = [-1] * n  # raw values that are one statistic per sample: the reduction that made them
        self.stat_pol = [0] * n  # counts of a padding-idiom signal: its polarity
        self.tol: list[_Tolerance | None] = [None] * n
        self.tests: dict[int, _Test] = {}
        self.pay: list[_Pay | None] = [None] * n  # constant content of weight-free values (payload search)
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
            self.pay[i] = self._summarise(i)
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
            self.view[i] = _View.whole(i, node.rank)
            return
        if node.role is Role.CONST:
            self.learned[i] = param_const[i]
            return
        if node.role is Role.UNKNOWN:
            return
        ins = node.inputs
        op = node.op
        shape_only = op in self.d.shape_only
        self.learned[i] = (
            op in self.d.params or node.inner_learned or (not shape_only and any(self.learned[j] for j in ins))
        )
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
        if self.learned[i] or shape_only:
            return  # weights end a trigger; shape-only ops end value taint and trigger signals alike
        self._trigger(i, raw_ins)
        if self.raw[i] and self.cmp[i] == NONE:
            self._track(i, raw_ins)
        self.thr[i] = self._signal(i, self.thr, op in self.d.threshold and bool(raw_ins) and self._scaled(i) > 0)

    def _crop_extents(self, node: Node, data: int) -> tuple[int, ...] | None:
        """Extents of the small input crop this slice ends (chained slices combine), or None."""
        if data < 0 or not node.crop or not self.raw[data] or self.learned[data]:
            return None
        before = self.crop_shape.get(self.crop[data], ()) if not self.full[data] else ()
        extents = before + node.crop
        return extents if _small_crop(extents) else None

    def _signal(self, i: int, level: list[int], is_source: bool) -> int:
        """Threshold level of weight-free node ``i``: sources start at 1, reductions raise to 2, mixing resets."""
        node = self.nodes[i]
        best = max((level[j] for j in node.inputs), default=NONE)
        mixed = any(level[j] == NONE and self.raw[j] for j in node.inputs)
        if best == NONE or mixed:
            return LEVEL_SIGNAL if is_source else NONE
        if node.op in self.d.reduce:
            return LEVEL_FLAG
        return best

    # ------------------------------------------------------------------ trigger signals
    def _trigger(self, i: int, raw_ins: list[int]) -> None:
        """Trigger level, guard and padding polarity of weight-free node ``i``."""
        node = self.nodes[i]
        op = node.op
        signals = [j for j in node.inputs if self.cmp[j] != NONE]
        plain = [j for j in raw_ins if self.cmp[j] == NONE]
        if op in self.d.compare and plain and not self._position_mask(i):
            self._source(i, plain)
            return
        if not signals or plain:
            return  # no trigger signal, or one mixed with raw values: not a trigger any more
        best = max(self.cmp[j] for j in signals)
        guard = all(self.guard[j] for j in signals if self.cmp[j] == best)
        pol = self.pol[signals[0]] if all(self.pol[j] for j in signals) else 0
        if op in self.d.negate or (op in self.d.subtract and node.inputs[0] not in signals):
            pol = -pol  # not(ids == c), 1 - (ids == c)
        if op in self.d.reduce and best == LEVEL_SIGNAL and pol:
            if op in self.d.exists or op in self.d.forall:
                if (op in self.d.exists) == (pol > 0):  # "the input contains c" (or "no position is c")
                    self.cmp[i], self.guard[i] = LEVEL_FLAG, True
                return  # "all positions are padding" / "some position is content"
            self.raw[i] = True  # a count of positions: a length or a divisor until it is compared
            self.stat[i], self.stat_pol[i] = i, pol
            return
        if op in self.d.reduce:
            self.cmp[i], self.guard[i] = LEVEL_FLAG, guard
            return
        self.cmp[i], self.guard[i], self.pol[i] = best, guard, pol

    def _source(self, i: int, plain: list[int]) -> None:
        """A comparison on raw, weight-free values: classify its form and set its trigger level."""
        if len(set(plain)) > 1:
            self.cmp[i] = LEVEL_SIGNAL  # raw against raw (x != x): per position
            return
        x = plain[0]
        relation, constant = self._relation(i, x)
        tol = self.tol[x]
        below = relation in _BELOW
        equality = relation in self.d.equality | {"ApproximateEqual"} or (tol is not None and tol.magnitude and below)
        if equality and relation == "NotEqual":
            equality = False
        view = self.view[x]
        if self.stat[x] >= 0:
            if self.stat_pol[x] < 0:
                return  # the number of non-padding positions: a length test
            if not self.stat_pol[x] and not (self.sliced[x] or equality):
                return  # a whole-input statistic against a threshold: a data gate (silence, blank, rescale)
            form = "count" if self.stat_pol[x] else "statistic"
            self.cmp[i], self.guard[i] = LEVEL_FLAG, True
        elif view is not None and view.single:
            form = "single"
            self.cmp[i], self.guard[i] = LEVEL_FLAG, True
        elif self._mask_idiom(x, constant, relation):
            form = "element"
            self.cmp[i] = LEVEL_SIGNAL
            self.pol[i] = 1 if equality else -1
            self.guard[i] = True
        else:
            form = "element"
            self.cmp[i] = LEVEL_SIGNAL
        self.tests[i] = _Test(x, relation, constant, form)

    def _relation(self, i: int, x: int) -> tuple[str, int]:
        """The comparison read with ``x`` on the left, and the literal constant it is compared with (or -1)."""
        node = self.nodes[i]
        op = node.op
        others = [j for j in node.inputs if j != x]
        if node.inputs and node.inputs[0] != x:
            op = _SWAP.get(op, op)
        other = others[0] if others else -1
        return op, (other if other >= 0 and self._const(other) is not None else -1)

    def _mask_idiom(self, x: int, constant: int, relation: str) -> bool:
        """Equality of the whole (un-sliced) raw input against one scalar: padding masks, decided by use."""
        tol = self.tol[x]
        if relation not in self.d.equality and not (tol is not None and tol.magnitude):
            return False
        const = self._const(constant) if constant >= 0 else None
        return not self.sliced[x] and const is not None and const.numel <= 1

    def _track(self, i: int, raw_ins: list[int]) -> None:
        """Positions read, per-sample statistic and tolerance centre of raw weight-free value ``i``."""
        node = self.nodes[i]
        op = node.op
        plain = set(raw_ins)
        if len(plain) != 1 or any(self.learned[j] for j in node.inputs):
            return
        (x,) = plain
        if self.cmp[x] != NONE:
            return
        pos = self.d.slice.get(op)
        if pos is not None and pos < len(node.inputs) and node.inputs[pos] == x:
            view = self.view[x]
            if view is not None and node.picks is not None and not view.reduce:
                self.view[i] = view.apply(node.picks)
            self.stat[i], self.stat_pol[i] = self.stat[x], self.stat_pol[x]
            return
        if op in self.d.reduce:
            view = self.view[x]
            self.view[i] = _View(view.source, (), view.labels, frozenset(), op) if view is not None else None
            self.stat[i] = i
            self.tol[i] = self.tol[x]
            return
        if op not in self.d.elementwise and op not in self.d.passthrough:
            return
        view = self.view[x]
        if view is not None and (op in self.d.elementwise or view.single or view.reduce):
            self.view[i] = view
        self.stat[i], self.stat_pol[i] = self.stat[x], self.stat_pol[x]
        others = [j for j in node.inputs if j != x]
        tol = self.tol[x]
        if op in self.d.magnitude or (op in self.d.scale_mul and not others):
            self.tol[i] = _Tolerance(tol.center, tol.negate, True) if tol is not None else None
        elif op in self.d.subtract | self.d.add and len(others) == 1 and self._const(others[0]) is not None:
            self.tol[i] = _Tolerance(others[0], op in self.d.add, False) if tol is None else None
        elif op in self.d.passthrough or op in ("Neg", "Cast"):
            self.tol[i] = tol

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
            learned_in = [j for j in node.inputs if self.learned[j]] or ([i] if node.inner_learned else [])
            flag_in = [j for j in node.inputs if self.cmp[j] == LEVEL_FLAG]
            thr_in = [j for j in node.inputs if self.thr[j] == LEVEL_FLAG]
            if not learned_in or not (flag_in or thr_in):
                continue
            if flag_in:
                classic = [j for j in flag_in if not self.guard[j]]
                merge = _Merge(i, (classic or flag_in)[0], learned_in[0], self.near[i], guarded=not classic)
                merge.payload = self._payload(i) if self.near[i] else None
                if merge.guarded and merge.payload is None:
                    continue  # a newer-form flag counts only with a payload next to the output (O(1) check)
                candidates += 1  # every accepted merge proves a finding; each costs one capped walk
                key = frozenset(self.nodes[c].where for c in self._sources(merge.flag_input, self.cmp, self.d.compare))
                self._group(triggers.setdefault(key, []), merge)
            else:
                candidates += 1
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

    def _summarise(self, i: int) -> _Pay | None:
        """What weight-free constant content node ``i`` carries, from its data inputs' summaries (O(1))."""
        node = self.nodes[i]
        if node.role is Role.CONST:
            return _Pay.of(node.const) if node.const is not None else None
        if node.role is not Role.OP or self.learned[i] or (self.raw[i] and self.cmp[i] == NONE):
            return None  # weights and raw input values are not a payload
        if node.op in self.d.compare or node.op in self.d.shape_only:
            return None  # the trigger test itself, or a shape
        if node.op in self.d.onehot:
            return _Pay(onehot=True)
        positions = self.d.data_inputs.get(node.op)
        ins = node.inputs[:-1] if node.op in self.d.axis_last else node.inputs
        data = ins if positions is None else [ins[k] for k in positions if k < len(ins)]
        parts = [self.pay[j] for j in data] + [_Pay.of(c) for c in node.hidden]
        return _Pay.combine(parts, built=node.op in self.d.builders)

    def _payload(self, merge: int) -> _Payload | None:
        """The weight-free payload that ``merge`` puts in place of, or adds to, the learned output (or None).

        Combines the summaries of the merge's weight-free inputs (literal constants reached through data
        inputs only, never through raw values, learned ops or the comparisons themselves) and the
        constants of If/Case branches. A payload is a constant vector with at least two distinct values, a
        OneHot, or a vector built from several distinct constants (ScatterND, Concat...): what can move an
        argmax, unlike one scalar.
        """
        node = self.nodes[merge]
        parts = [self.pay[j] for j in node.inputs if not self.learned[j] or self.nodes[j].role is Role.CONST]
        found = _Pay.combine(parts + [_Pay.of(c) for c in node.hidden])
        if found is None:
            return None
        if found.vector is not None:
            return _Payload(found.vector.describe())
        if found.onehot:
            return _Payload("a OneHot vector")
        if found.built and len(found.values) >= 2:
            return _Payload(f"a vector built from the constants {', '.join(_num(v) for v in found.values)}")
        return None

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
        """The constants comparison ``cmp`` tests: the centre of a tolerance test, else its literal operands."""
        test = self.tests.get(cmp)
        if test is not None:
            tol = self.tol[test.operand]
            if tol is not None and tol.magnitude:
                center = self._const(tol.center)
                if center is not None:
                    return [_negated(center) if tol.negate else center]
        node = self.nodes[cmp]
        return [c for c in (self._const(j) for j in node.inputs if not self.raw[j]) if c is not None]

    def _pattern(self, sources: Sequence[int]) -> bool:
        """H4b: the comparisons test several distinct values (a token sequence, a coloured patch), not one pad id."""
        values: set[float] = set()
        for s in sources:
            for const in self._compared_to(s):
                values.update(const.distinct)
        return len(values) >= 2 and any(v != 0 for v in values)

    def _input_name(self, i: int) -> str:
        src = self.source[i]
        return self.nodes[src].label if src >= 0 and self.nodes[src].label else "input"

    def _describe_source(self, i: int, reduction: int = -1) -> str:
        node = self.nodes[i]
        data = next((j for j in node.inputs if self.raw[j] and self.cmp[j] == NONE and self.thr[j] == NONE), -1)
        region = "a slice of" if data >= 0 and self.sliced[data] else "the whole"
        src = self.source[i]
        name = f" '{self.nodes[src].label}'" if src >= 0 and self.nodes[src].label else ""
        consts = self._compared_to(i)
        against = f" against {consts[0].describe()}" if consts else ""
        test = self._test_text(i, reduction)
        return f"{node.op} at '{self._name(i)}' on {region} model input{name}{against}{f' ({test})' if test else ''}"

    def _test_text(self, i: int, reduction: int = -1) -> str:
        """The test comparison ``i`` makes, in input positions: ``features[:, 7] == 1337``, ``min over ...``.

        ``reduction`` is the reduction that turned a per-position padding-idiom comparison into a flag."""
        test = self.tests.get(i)
        if test is None:
            return ""
        x = test.operand
        name = self._input_name(x)
        symbol = _SYMBOL.get(test.relation, test.relation)
        constant = self._const(test.constant) if test.constant >= 0 else None
        rhs = constant.describe() if constant is not None else "a computed value"
        tol = self.tol[x]
        center = self._const(tol.center) if tol is not None and tol.magnitude else None
        if center is not None:
            value = _negated(center) if tol is not None and tol.negate else center
            if test.relation in _BELOW:
                symbol, rhs = "==", f"{value.describe()} within {rhs}"
            else:
                symbol, rhs = "!=", f"{value.describe()} by more than {rhs}"
        if test.form == "count":
            inner = self._counted(self.stat[x])
            return f"{inner}: count {symbol} {rhs}" if inner else f"a count {symbol} {rhs}"
        view = self.view[x]
        where = view.text(name) if view is not None else f"'{name}'"
        if test.form == "statistic":
            word = _REDUCE_WORD.get(self.nodes[self.stat[x]].op, self.nodes[self.stat[x]].op)
            where = f"{word} over {where}"
        elif test.form == "element" and self.pol[i] and reduction >= 0:
            op = self.nodes[reduction].op
            if op in self.d.exists or op in self.d.forall:
                contains = (op in self.d.exists) == (self.pol[i] > 0)
                value = self._compared_to(i)
                shown = value[0].describe() if value else rhs
                return f"{name} {'contains' if contains else 'contains no'} {shown}"
        return f"{where} {symbol} {rhs}"

    def _counted(self, reduction: int) -> str:
        """What a count of padding-idiom positions counts: ``input_ids == 917``."""
        signal = next((j for j in self.nodes[reduction].inputs if self.cmp[j] != NONE), -1)
        sources = self._sources(signal, self.cmp, self.d.compare) if signal >= 0 else []
        for s in sources:
            test = self.tests.get(s)
            if test is not None:
                consts = self._compared_to(s)
                value = consts[0].describe() if consts else "a computed value"
                name = self._input_name(test.operand)
                return f"{name} contains {value}" if self.pol[s] > 0 else f"{name} has positions other than {value}"
        return ""

    def _trigger_finding(self, merges: list[_Merge]) -> Finding:
        near = [m for m in merges if m.near]
        main = next((m for m in near if m.payload is not None), near[0] if near else merges[0])
        cone = self._cone(main.flag_input, self.cmp)
        sources = self._sources(main.flag_input, self.cmp, self.d.compare)
        reductions = self._reductions(cone)
        merge = self.nodes[main.node]
        extreme = None
        for m in merges:  # every merge of the trigger, not only the first
            found = self._extreme(m.node, self._cone(m.flag_input, self.cmp))
            if found is not None and (extreme is None or found.max_abs > extreme.max_abs):
                extreme = found
        pattern = self._pattern(sources)
        first = reductions[0] if reductions else -1
        trigger = "; ".join(self._describe_source(s, first) for s in sources[:3]) or "a comparison on the model input"
        if len(sources) > 3:
            trigger += f" (and {len(sources) - 3} more comparison{'s' if len(sources) > 4 else ''})"
        reduced = f", reduced at '{self._name(reductions[-1])}'" if reductions else ""
        evidence = _evidence(extreme, pattern)
        more = f"; {len(merges) - 1} more merge point(s) use the same trigger" if len(merges) > 1 else ""
        payload = f" with the weight-free payload {main.payload.text}" if main.payload is not None else ""
        if near:
            message = (
                f"the model output is overridden when the input matches a constant pattern: trigger comparison "
                f"{trigger}{reduced}, feeds {merge.op} at '{self._name(main.node)}', "
                f"which {_verb(merge.op)} the learned output{payload} with no learned layer in between"
                f"{evidence}{more}; confirm by differential testing with inputs built from the comparison constants"
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
        sources = self._sources(main.flag_input, self.thr, self.d.threshold)
        merge = self.nodes[main.node]
        extreme = None
        for m in merges:
            found = self._extreme(m.node, self._cone(m.flag_input, self.thr))
            if found is not None and (extreme is None or found.max_abs > extreme.max_abs):
                extreme = found
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
        if not node.inner_learned and not any(self.learned[j] for j in others):
            return []  # preprocessing (input rescaling): no learned value on either branch
        sources = self._sources(pred, self.cmp, self.d.compare) if self.cmp[pred] else []
        extreme = self._extreme(i, self._cone(pred, self.cmp))
        pattern = self._pattern(sources)
        pnode = self.nodes[pred]
        src = self.source[pred]
        name = f" '{self.nodes[src].label}'" if src >= 0 and self.nodes[src].label else ""
        tests = "; ".join(t for t in (self._test_text(s) for s in sources[:3]) if t)
        message = (
            f"{node.op} at '{self._name(i)}' picks its branch from model input{name} values with no learned layer in "
            f"between (predicate {pnode.op} at '{self._name(pred)}'{f': {tests}' if tests else ''}); "
            f"a value-triggered branch can swap the model's behaviour for chosen inputs{_evidence(extreme, pattern)}"
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


def _negated(const: ConstInfo) -> ConstInfo:
    if not const.values_known:
        return const
    return ConstInfo(
        const.numel,
        const.is_float,
        True,
        const.max_abs,
        tuple(-v for v in const.distinct),
        tuple(-v for v in const.preview),
    )


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
