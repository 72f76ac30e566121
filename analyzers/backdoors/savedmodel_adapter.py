"""SavedModel -> the backdoor heuristics' format-neutral graph (``mlgate.analyzers.backdoors.heuristics``).

Starts from every serving signature's outputs and from the object-graph functions Python callers
reach after ``tf.saved_model.load`` (``reach.find_roots``; their non-resource arguments are raw
inputs, resource arguments variables), and walks data inputs backwards. The init signature, the
saver and load-time resource functions compute no prediction and are skipped.
``(Stateful)PartitionedCall`` and nodes whose op is a library function are inlined per call site,
function arguments bound to the caller's inputs and outputs to the callee's ``ret`` entries, so
taint flows through Keras' nested wrappers; calls nested deeper than MAX_CALL_DEPTH (crafted
chains, recursion) make the analysis incomplete rather than hide the rest. Control-flow ops
(If/While/Case, tf.data functions) stay opaque nodes whose outputs depend on all their inputs.
Signature placeholders are the raw inputs; variables are learned (``VarHandleOp``,
``ReadVariableOp``); ``Const`` nodes carry a value summary. Input ranks come from the signature's
``TensorInfo.tensor_shape`` (for a Python-called function, the ``_output_shapes`` TF records for its
arguments); ``StridedSlice``/``Slice``/``GatherV2`` with literal indices record which positions they
read. Locations are ``saved_model.pb:<function>/<node>`` like the SavedModel analyzer's own findings.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

from google.protobuf.message import Message

from ..core.findings import Finding
from ..savedmodel.graph import GRAPH_SCOPE, GraphIndex, Scope, attr, data_inputs, text
from ..savedmodel.reach import INIT_SIGNATURE, Phase, find_roots
from ..savedmodel.schema import DT_RESOURCE
from .heuristics import (
    BFLOAT16,
    LEARNED_CONST_ELEMENTS,
    TF_OPS,
    ConstInfo,
    Effect,
    Graph,
    GraphTooLarge,
    Node,
    Pick,
    Role,
    half_bits,
    scan,
    slice_extent,
    unpack_le,
)

CALL_OPS = frozenset({"PartitionedCall", "StatefulPartitionedCall"})
BRANCH_ATTRS = (b"then_branch", b"else_branch", b"branches")
MAX_CALL_DEPTH = 10_000  # real exports nest a handful of levels; deeper is a crafted chain or recursion
MAX_HOPS = 4 * MAX_CALL_DEPTH  # argument/return indirections followed for one reference
MAX_HIDDEN_CONSTS = 64

# TF DataType -> struct code, and which are floating point (types.proto numbering)
_CODES = {1: "f", 2: "d", 3: "i", 4: "B", 5: "h", 6: "b", 9: "q", 10: "?", 14: BFLOAT16, 17: "H", 19: "e",
          22: "I", 23: "Q"}  # fmt: skip
_FLOATS = frozenset({1, 2, 14, 19})


def findings(index: GraphIndex, prefix: str) -> Iterator[Finding]:
    """Backdoor findings for one meta graph; ``prefix`` is the location prefix (``saved_model.pb:``)."""
    yield from scan(lambda: flatten(index, prefix), TF_OPS, f"{prefix}{GRAPH_SCOPE}")


def flatten(index: GraphIndex, prefix: str) -> Graph:
    """The meta graph's prediction paths as a format-neutral ``Graph``; raises GraphTooLarge past MAX_NODES."""
    return _Builder(index, prefix).build()


class _Frame:
    """One inlined instance of a scope: the graph_def, or a function at one call site."""

    __slots__ = ("bindings", "depth", "entry", "id", "scope")

    def __init__(
        self, fid: int, scope: Scope, bindings: dict[str, tuple[_Frame, str]], depth: int, entry: bool = False
    ) -> None:
        self.id = fid
        self.scope = scope
        self.bindings = bindings
        self.depth = depth
        self.entry = entry  # a function called from Python: its unbound arguments are the caller's values


class _Builder:
    def __init__(self, index: GraphIndex, prefix: str) -> None:
        self.index = index
        self.prefix = prefix
        self.graph = Graph(prefix)
        self.root = _Frame(0, index.scopes[GRAPH_SCOPE], {}, 0)
        self.frame_ids = itertools.count(1)
        self.frames: dict[tuple[int, str], _Frame] = {}  # (caller frame, call node) -> callee frame
        self.ids: dict[tuple[int, str], int] = {}
        self.args: dict[tuple[int, str], int] = {}  # (frame, argument) -> resolved node id
        self.pending: list[tuple[int, _Frame, Message]] = []
        self.inputs: dict[str, str] = {}  # graph_def node -> signature input key
        self.ranks: dict[str, int | None] = {}  # graph_def node -> rank the signature declares
        self.functions = {text(fn.signature.name): fn for fn in index.meta_graph.graph_def.library.function}
        self.arg_types = {  # function -> argument -> DataType, for functions called from Python
            text(fn.signature.name): {text(a.name): a.type for a in fn.signature.input_arg}
            for fn in index.meta_graph.graph_def.library.function
        }

    def build(self) -> Graph:
        signatures = [s for s in self.index.meta_graph.signature_def if s.key != INIT_SIGNATURE]
        for sig in signatures:
            for entry in sig.value.inputs:
                node_name = _split(text(entry.value.name))[0]
                self.inputs.setdefault(node_name, text(entry.key))
                shape = entry.value.tensor_shape if entry.value.HasField("tensor_shape") else None
                self.ranks.setdefault(node_name, _rank(shape))
        for sig in signatures:
            for entry in sig.value.outputs:
                self.graph.outputs.append(self._resolve(self.root, text(entry.value.name)))
        entries = {name for root in find_roots(self.index) if root.phase is Phase.PYTHON for name in root.functions}
        for name in sorted(entries):
            scope = self.index.scopes.get(name)
            if scope is None or name == GRAPH_SCOPE:
                continue
            frame = _Frame(next(self.frame_ids), scope, {}, 1, entry=True)
            for ref in scope.ret.values():
                self.graph.outputs.append(self._resolve(frame, ref))
        while self.pending:
            nid, frame, node = self.pending.pop()
            self.graph.nodes[nid].inputs = [self._resolve(frame, ref) for ref in data_inputs(node)]
            op = text(node.op)
            self.graph.nodes[nid].crop = _crop(op, node, self.graph.nodes[nid].inputs, self.graph)
            self.graph.nodes[nid].picks = _picks(op, node, self.graph.nodes[nid].inputs, self.graph)
        return self.graph

    def _resolve(self, frame: _Frame, ref: str) -> int:
        """Graph node id of the value ``ref`` names in ``frame``, through arguments, calls and returns."""
        crossed: list[tuple[int, str]] = []  # arguments passed on the way; they all resolve to the result
        for _ in range(MAX_HOPS):
            name, pos, out_arg = _split(ref)
            node = frame.scope.by_name.get(name)
            if node is None:
                key = (frame.id, name)
                result = self.args.get(key)
                if result is not None:
                    break
                crossed.append(key)
                bound = frame.bindings.get(name)
                if bound is None:
                    result = self._unknown(frame, name)
                    break
                frame, ref = bound
                continue
            callee = self._callee(node)
            if callee is None:
                result = self._node(frame, node)
                break
            if frame.depth >= MAX_CALL_DEPTH:
                raise GraphTooLarge(f"function calls nest deeper than {MAX_CALL_DEPTH} levels (recursive calls?)")
            out = _output_arg(text(node.op), callee, pos, out_arg)
            target = callee.ret.get(out) if out is not None else None
            if target is None:
                result = self._unknown(frame, name)
                break
            frame, ref = self._enter(frame, node, callee), target
        else:
            raise GraphTooLarge(f"a tensor reference does not resolve within {MAX_HOPS} call and argument steps")
        for key in crossed:
            self.args[key] = result
        return result

    def _callee(self, node: Message) -> Scope | None:
        op = text(node.op)
        if op in CALL_OPS:
            f = attr(node, b"f")
            name = text(f.func.name) if f is not None else ""
        else:
            name = op
        return self.index.scopes.get(name) if name and name != GRAPH_SCOPE else None

    def _enter(self, frame: _Frame, node: Message, callee: Scope) -> _Frame:
        key = (frame.id, text(node.name))
        sub = self.frames.get(key)
        if sub is None:
            refs = data_inputs(node)
            bindings = {arg: (frame, refs[i]) for i, arg in enumerate(callee.args) if i < len(refs)}
            sub = _Frame(next(self.frame_ids), callee, bindings, frame.depth + 1)
            self.frames[key] = sub
        return sub

    def _unknown(self, frame: _Frame, name: str) -> int:
        key = (frame.id, "\0" + name)
        if key not in self.ids:
            where = f"{self.prefix}{frame.scope.name}/{name}"
            if frame.entry and name in frame.scope.args:
                if self.arg_types.get(frame.scope.name, {}).get(name) == DT_RESOURCE:
                    node = Node("VarHandleOp", where)  # a captured variable
                else:
                    node = Node("_Arg", where, Role.INPUT, label=name, rank=self._arg_rank(frame.scope.name, name))
            else:
                node = Node("?", where, Role.UNKNOWN)
            self.ids[key] = self.graph.add(node)
        return self.ids[key]

    def _node(self, frame: _Frame, node: Message) -> int:
        name = text(node.name)
        key = (frame.id, name)
        nid = self.ids.get(key)
        if nid is not None:
            return nid
        op = text(node.op)
        where = f"{self.prefix}{frame.scope.name}/{name}"
        if frame is self.root and name in self.inputs:
            nid = self.graph.add(Node(op, where, Role.INPUT, label=self.inputs[name], rank=self.ranks.get(name)))
        elif op == "Const":
            value = attr(node, b"value")
            const = _const(value.tensor) if value is not None else ConstInfo(0, False, False)
            nid = self.graph.add(Node(op, where, Role.CONST, const=const))
        else:
            hidden, inner_learned = self._hidden(node)
            nid = self.graph.add(Node(op, where, hidden=hidden, inner_learned=inner_learned))
            self.pending.append((nid, frame, node))
        self.ids[key] = nid
        return nid

    def _hidden(self, node: Message) -> tuple[tuple[ConstInfo, ...], bool]:
        """Constants of the branch functions of an If/Case (opaque to the taint pass), and whether one is
        weight-sized (a frozen branch carrying its own weights)."""
        if text(node.op) not in TF_OPS.control:
            return (), False
        names: list[str] = []
        for key in BRANCH_ATTRS:
            value = attr(node, key)
            if value is not None:
                names.extend(text(f.name) for f in ([value.func] if value.HasField("func") else value.list.func))
        out: list[ConstInfo] = []
        learned = False
        for name in names:
            scope = self.index.scopes.get(name)
            for n in scope.nodes if scope is not None and name != GRAPH_SCOPE else ():
                value = attr(n, b"value") if n.op == b"Const" else None
                if value is None:
                    continue
                const = _const(value.tensor)
                learned = learned or const.numel > LEARNED_CONST_ELEMENTS
                if len(out) < MAX_HIDDEN_CONSTS:
                    out.append(const)
        return tuple(out), learned

    def _arg_rank(self, function: str, arg: str) -> int | None:
        """The rank TF recorded for a Python-called function's argument (``arg_attr`` ``_output_shapes``)."""
        fn = self.functions.get(function)
        if fn is None:
            return None
        names = [text(a.name) for a in fn.signature.input_arg]
        position = names.index(arg) if arg in names else -1
        for entry in fn.arg_attr:
            if entry.key != position:
                continue
            shapes = next((a.value.list.shape for a in entry.value.attr if a.key == b"_output_shapes"), None)
            return _rank(shapes[0]) if shapes else None
        return None


def _split(ref: str) -> tuple[str, int, str | None]:
    """``node`` / ``node:1`` (graph form) / ``node:out_arg:2`` (function form) -> (name, position, out_arg)."""
    parts = ref.lstrip("^").split(":")
    if len(parts) == 2 and parts[1].isdigit():
        return parts[0], int(parts[1]), None
    if len(parts) == 3 and parts[2].isdigit():
        return parts[0], int(parts[2]), parts[1]
    return parts[0], 0, None


def _output_arg(op: str, callee: Scope, pos: int, out_arg: str | None) -> str | None:
    """The callee output argument a reference to a call node's output selects."""
    if op not in CALL_OPS and out_arg is not None and out_arg in callee.outputs:
        return out_arg
    return callee.outputs[pos] if 0 <= pos < len(callee.outputs) else None


def _const(tensor: Message) -> ConstInfo:
    dtype = tensor.dtype
    dims = [d.size for d in tensor.tensor_shape.dim]
    numel = math.prod(max(d, 0) for d in dims) if dims else 1
    code = _CODES.get(dtype)
    values: list[float] | None = None
    if code is not None and tensor.tensor_content:
        values = unpack_le(code, tensor.tensor_content)
    elif code is not None:
        listed: list[float]
        if code in ("e", BFLOAT16):
            listed = half_bits(list(tensor.half_val), code)
        elif code == "?":
            listed = [float(b) for b in tensor.bool_val]
        elif code in ("q", "Q"):
            listed = [float(v) for v in tensor.int64_val]
        elif code in ("f", "d"):
            listed = [float(v) for v in tensor.float_val]
        else:
            listed = [float(v) for v in tensor.int_val]
        if listed:
            values = listed + [listed[-1]] * max(0, min(numel, 1 << 16) - len(listed))  # TF repeats the last value
        elif numel == 0:
            values = []
    return ConstInfo.of(numel, dtype in _FLOATS, values, scalar=not dims)


def _crop(op: str, node: Message, ins: list[int], graph: Graph) -> tuple[int, ...] | None:
    """Static extents of the non-batch axes a StridedSlice/Slice/GatherV2 restricts (None: not a static crop)."""
    if op == "StridedSlice" and len(ins) >= 4:
        begin, end, strides = (graph.const_ints(j) for j in ins[1:4])
        if begin is None or end is None or strides is None or not len(begin) == len(end) == len(strides):
            return None
        bmask, emask, ellipsis, newaxis, shrink = (_attr_int(node, k) for k in _MASKS)
        if ellipsis or newaxis:
            return None
        extents: list[int] = []
        for k in range(1, len(begin)):
            if shrink >> k & 1:
                extents.append(1)
                continue
            b = None if bmask >> k & 1 else begin[k]
            e = None if emask >> k & 1 else end[k]
            if e is not None and e >= _OPEN:
                e = None
            if e is None and not b:
                continue  # the whole axis
            extent = slice_extent(b or 0, e, strides[k])
            if extent is None:
                return None
            extents.append(extent)
        return tuple(extents) or None
    if op == "Slice" and len(ins) >= 3:
        begin, size = graph.const_ints(ins[1]), graph.const_ints(ins[2])
        if begin is None or size is None or len(begin) != len(size):
            return None
        extents = []
        for b, n in list(zip(begin, size, strict=True))[1:]:
            if n < 0:
                if b:
                    return None
                continue
            extents.append(n)
        return tuple(extents) or None
    if op == "GatherV2" and len(ins) >= 3:
        axis = graph.const_ints(ins[2])
        const = graph.nodes[ins[1]].const
        if axis and axis[0] >= 1 and const is not None and const.values_known:
            return (const.numel,)
    return None


def _picks(op: str, node: Message, ins: list[int], graph: Graph) -> tuple[Pick, ...] | None:
    """The positions a StridedSlice/Slice/GatherV2 with literal indices reads, axis by axis (None: not static)."""
    if op == "StridedSlice" and len(ins) >= 4:
        begin, end, strides = (graph.const_ints(j) for j in ins[1:4])
        if begin is None or end is None or strides is None or not len(begin) == len(end) == len(strides):
            return None
        bmask, emask, ellipsis, newaxis, shrink = (_attr_int(node, k) for k in _MASKS)
        if ellipsis or newaxis:
            return None
        picks: list[Pick] = []
        for k in range(len(begin)):
            if shrink >> k & 1:
                picks.append(Pick(k, str(begin[k]), Effect.DROP))
                continue
            b = None if bmask >> k & 1 else begin[k]
            e = None if emask >> k & 1 or end[k] >= _OPEN else end[k]
            step = strides[k]
            if e is None and not b and step == 1:
                continue  # the whole axis
            extent = slice_extent(b or 0, e, step)
            label = f"{'' if b is None else b}:{'' if e is None else e}{f':{step}' if step != 1 else ''}"
            picks.append(Pick(k, label, Effect.PIN if extent == 1 else Effect.RANGE))
        return tuple(picks)
    if op == "Slice" and len(ins) >= 3:
        begin, size = graph.const_ints(ins[1]), graph.const_ints(ins[2])
        if begin is None or size is None or len(begin) != len(size):
            return None
        picks = []
        for k, (b, n) in enumerate(zip(begin, size, strict=True)):
            if n < 0 and not b:
                continue
            label = f"{b}:" if n < 0 else f"{b}:{b + n}"
            picks.append(Pick(k, label, Effect.PIN if n == 1 else Effect.RANGE))
        return tuple(picks)
    if op == "GatherV2" and len(ins) >= 3:
        axis = graph.const_ints(ins[2])
        index = graph.nodes[ins[1]].const
        values = graph.const_ints(ins[1])
        if not axis or len(axis) != 1 or index is None or not values or _attr_int(node, b"batch_dims"):
            return None
        label = str(values[0]) if len(values) == 1 else "[" + ", ".join(map(str, values[:4])) + "]"
        effect = Effect.RANGE if len(values) > 1 else Effect.DROP if index.scalar else Effect.PIN
        return (Pick(axis[0], label, effect),)
    return None


def _rank(shape: Message | None) -> int | None:
    """The rank a TensorShapeProto states (None: unknown rank or no shape)."""
    if shape is None or shape.unknown_rank:
        return None
    return len(shape.dim)


_MASKS = (b"begin_mask", b"end_mask", b"ellipsis_mask", b"new_axis_mask", b"shrink_axis_mask")
_OPEN = 2**31 - 1


def _attr_int(node: Message, key: bytes) -> int:
    value = attr(node, key)
    return int(value.i) if value is not None else 0
