"""ONNX -> the backdoor heuristics' format-neutral graph (``mlgate.analyzers.backdoors.heuristics``).

Reads the ``ModelProto`` the ONNX analyzer already parsed. Graph inputs that are not initializers
are the raw inputs; initializers and ``Constant`` nodes are literal constants (weights when large
or fed to a linear op); graph outputs are the outputs. Model-local functions are inlined per call
site. If/Loop/Scan bodies stay opaque: the node's inputs are its own plus every outer value its
subgraphs capture, the constants inside are kept as evidence, and weights inside make the node
learned. Input ranks come from the graph inputs' ``ValueInfoProto`` shapes; ``Slice`` and
``Gather`` with literal indices record which positions they read. Ops outside the default domain
are named ``<domain>.<op>``. Locations match the ONNX analyzer's (``model.onnx:graph/<node>``,
``model.onnx:functions/<domain>.<name>/<node>``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from google.protobuf.message import Message

from ..core.findings import Finding
from .heuristics import (
    BFLOAT16,
    LEARNED_CONST_ELEMENTS,
    ONNX_OPS,
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

DEFAULT_DOMAINS = frozenset({b"", b"ai.onnx"})
MAX_FUNCTION_DEPTH = 64  # the ONNX spec forbids recursion; real exports nest a few levels
MAX_SUBGRAPH_DEPTH = 32
MAX_HIDDEN_CONSTS = 64
EXTERNAL = 1
_OPEN = 2**31 - 1  # an end index at least this large means "to the end of the axis"

# ONNX TensorProto.DataType -> struct code; floating-point types
_CODES = {1: "f", 2: "B", 3: "b", 4: "H", 5: "h", 6: "i", 7: "q", 9: "?", 10: "e", 11: "d", 12: "I", 13: "Q",
          16: BFLOAT16}  # fmt: skip
_FLOATS = frozenset({1, 10, 11, 16})
_INT32_FIELD = frozenset({2, 3, 4, 5, 6, 9})  # stored in int32_data when not in raw_data


def findings(model: Message, base: str) -> Iterator[Finding]:
    """Backdoor findings for a parsed ONNX model; ``base`` is the location prefix (``model.onnx:``)."""
    if model.HasField("graph"):
        yield from scan(lambda: flatten(model, base), ONNX_OPS, f"{base}graph")


def flatten(model: Message, base: str) -> Graph:
    """The model's main graph as a format-neutral ``Graph``; raises GraphTooLarge past MAX_NODES."""
    return _Builder(model, base).build()


class _Builder:
    def __init__(self, model: Message, base: str) -> None:
        self.model = model
        self.base = base
        self.graph = Graph(base)
        self.functions = {(bytes(fn.domain), bytes(fn.name)): fn for fn in model.functions}
        self.compiled: dict[object, list[_Op]] = {}

    def build(self) -> Graph:
        main = self.model.graph
        env: dict[str, int] = {}
        where = f"{self.base}graph"
        for tensor in main.initializer:
            name = _text(tensor.name)
            env[name] = self.graph.add(
                Node("Initializer", f"{where}/initializer/{name}", Role.CONST, const=_tensor(tensor))
            )
        for sparse in main.sparse_initializer:
            name = _text(sparse.values.name)
            numel = math.prod(max(d, 0) for d in sparse.values.dims) if sparse.values.dims else 1
            const = ConstInfo(numel, sparse.values.data_type in _FLOATS, False)
            env[name] = self.graph.add(
                Node("Initializer", f"{where}/sparse_initializer/{name}", Role.CONST, const=const)
            )
        for value in main.input:
            name = _text(value.name)
            if name not in env:
                node = Node("Input", f"{where}/input/{name}", Role.INPUT, label=name, rank=_rank(value))
                env[name] = self.graph.add(node)
        self._scope(None, main.node, env, where, 0)
        self.graph.outputs = [self._lookup(env, _text(v.name), where) for v in main.output]
        return self.graph

    def _scope(self, key: object, nodes, env: dict[str, int], where: str, depth: int) -> None:
        """Add ``nodes`` (one graph or function body) with names resolved in ``env``."""
        wiring: list[tuple[int, _Op]] = []
        calls: list[tuple[list[int], _Op, Message]] = []
        for op in self._compiled(key, nodes):
            here = f"{where}/{op.name}"
            fn = self.functions.get(op.call)
            if fn is not None and depth >= MAX_FUNCTION_DEPTH:
                raise GraphTooLarge(f"model-local functions nest deeper than {MAX_FUNCTION_DEPTH} levels (recursion?)")
            if fn is not None:
                proxies = [self.graph.add(Node("Identity", here)) for _ in op.outputs]
                for name, pid in zip(op.outputs, proxies, strict=True):
                    if name:
                        env[name] = pid
                calls.append((proxies, op, fn))
                continue
            if op.const is not None:
                nid = self.graph.add(Node(op.op, here, Role.CONST, const=op.const))
            else:
                nid = self.graph.add(Node(op.op, here, hidden=op.hidden, inner_learned=op.inner_learned))
                wiring.append((nid, op))
            for name in op.outputs:
                if name:
                    env[name] = nid
        for nid, op in wiring:
            ids = {name: self._lookup(env, name, where) for name in op.inputs if name}
            captured = [self._lookup(env, name, where) for name in op.captures if name not in ids]
            node = self.graph.nodes[nid]
            node.inputs = [ids[name] for name in op.inputs if name] + captured
            if op.op in ("Slice", "Gather"):
                node.crop = self._crop(op.proto, op.inputs, ids)
                node.picks = self._picks(op.proto, op.inputs, ids)
        for proxies, op, fn in calls:
            inner = {_text(p): self._lookup(env, a, where) for p, a in zip(fn.input, op.inputs, strict=False) if a}
            where_fn = f"{self.base}functions/{_text(fn.domain)}.{_text(fn.name)}"
            self._scope(op.call, fn.node, inner, where_fn, depth + 1)
            for pid, out in zip(proxies, fn.output, strict=False):
                self.graph.nodes[pid].inputs = [self._lookup(inner, _text(out), f"{where}/{op.name}")]

    def _compiled(self, key: object, nodes) -> list[_Op]:
        """The nodes of one graph or function body read once into plain Python values (reused per call site)."""
        ops = self.compiled.get(key)
        if ops is None:
            ops = self.compiled[key] = [_compile(node, k) for k, node in enumerate(nodes)]
        return ops

    def _lookup(self, env: dict[str, int], name: str, where: str) -> int:
        nid = env.get(name)
        if nid is None:
            nid = env[name] = self.graph.add(Node("?", f"{where}/{name}", Role.UNKNOWN))
        return nid

    def _crop(self, node: Message, names: list[str], ids: dict[str, int]) -> tuple[int, ...] | None:
        """Static extents of the non-batch axes a Slice/Gather restricts (None: not a static crop)."""
        if node.domain not in DEFAULT_DOMAINS:
            return None

        def ints(pos: int) -> list[int] | None:
            if pos >= len(names) or not names[pos]:
                return None
            return self.graph.const_ints(ids[names[pos]])

        op = node.op_type
        if op == b"Gather":
            axis = _attr(node, b"axis")
            indices = self.graph.nodes[ids[names[1]]].const if len(names) > 1 and names[1] else None
            if axis is not None and axis.i != 0 and indices is not None and indices.values_known:
                return (indices.numel,)
            return None
        if op != b"Slice":
            return None
        if len(names) >= 3:
            starts, ends, axes, steps = ints(1), ints(2), ints(3), ints(4)
        else:  # opset < 10: attributes
            starts, ends, axes, steps = (_attr_ints(node, k) for k in (b"starts", b"ends", b"axes", b"steps"))
        if starts is None or ends is None or len(starts) != len(ends):
            return None
        axes = axes if axes is not None else list(range(len(starts)))
        steps = steps if steps is not None else [1] * len(starts)
        if not len(axes) == len(starts) == len(steps):
            return None
        extents: list[int] = []
        for axis, start, end, step in zip(axes, starts, ends, steps, strict=True):
            if axis == 0:
                continue
            open_end = end >= _OPEN
            if open_end and start == 0:
                continue  # the whole axis
            extent = slice_extent(start, None if open_end else end, step)
            if extent is None:
                return None
            extents.append(extent)
        return tuple(extents) or None

    def _picks(self, node: Message, names: list[str], ids: dict[str, int]) -> tuple[Pick, ...] | None:
        """The positions a Slice/Gather with literal indices reads, axis by axis (None: not static)."""
        if node.domain not in DEFAULT_DOMAINS:
            return None

        def ints(pos: int) -> list[int] | None:
            if pos >= len(names) or not names[pos]:
                return None
            return self.graph.const_ints(ids[names[pos]])

        if node.op_type == b"Gather":
            axis = _attr(node, b"axis")
            index = ids.get(names[1]) if len(names) > 1 and names[1] else None
            values = self.graph.const_ints(index) if index is not None else None
            if values is None or not values:
                return None
            const = self.graph.nodes[index].const
            scalar = const is not None and const.scalar
            label = str(values[0]) if len(values) == 1 else "[" + ", ".join(map(str, values[:4])) + "]"
            effect = Effect.RANGE if len(values) > 1 else Effect.DROP if scalar else Effect.PIN
            return (Pick(axis.i if axis is not None else 0, label, effect),)
        if len(names) >= 3:
            starts, ends, axes, steps = ints(1), ints(2), ints(3), ints(4)
        else:  # opset < 10: attributes
            starts, ends, axes, steps = (_attr_ints(node, k) for k in (b"starts", b"ends", b"axes", b"steps"))
        if starts is None or ends is None or len(starts) != len(ends):
            return None
        axes = axes if axes is not None else list(range(len(starts)))
        steps = steps if steps is not None else [1] * len(starts)
        if not len(axes) == len(starts) == len(steps):
            return None
        picks: list[Pick] = []
        for axis, start, end, step in zip(axes, starts, ends, steps, strict=True):
            open_end = end >= _OPEN
            if open_end and start == 0 and step == 1:
                continue  # the whole axis
            extent = slice_extent(start, None if open_end else end, step)
            label = f"{start}:{'' if open_end else end}{f':{step}' if step != 1 else ''}"
            picks.append(Pick(axis, label, Effect.PIN if extent == 1 else Effect.RANGE))
        return tuple(picks)


@dataclass(frozen=True, slots=True)
class _Op:
    """One ONNX node as the builder needs it."""

    op: str  # op_type, prefixed with the domain outside the default one
    name: str  # node name, or <op_type>_<index> like the ONNX analyzer's locations
    inputs: list[str]
    outputs: list[str]
    call: tuple[bytes, bytes]  # (domain, op_type): a call when a model-local function has this key
    const: ConstInfo | None  # the value of a default-domain Constant
    hidden: tuple[ConstInfo, ...]  # constants inside If/Loop/Scan bodies, or a ConstantOfShape's value
    inner_learned: bool  # those bodies hold weights of their own
    captures: list[str]  # outer names those bodies read
    proto: Message


def _compile(node: Message, k: int) -> _Op:
    op_type = _text(node.op_type)
    default = node.domain in DEFAULT_DOMAINS
    is_const = op_type == "Constant" and default
    has_sub = any(a.HasField("g") or len(a.graphs) for a in node.attribute) if node.attribute else False
    hidden, inner_learned = _hidden(node) if has_sub else ((), False)
    if op_type == "ConstantOfShape" and default:
        value = _attr(node, b"value")
        hidden = (_tensor(value.t) if value is not None else ConstInfo.of(1, True, [0.0]),)
    return _Op(
        op=op_type if default else f"{_text(node.domain)}.{op_type}",
        name=_text(node.name) or f"{op_type}_{k}",
        inputs=[_text(n) for n in node.input],
        outputs=[_text(n) for n in node.output],
        call=(bytes(node.domain), bytes(node.op_type)),
        const=_constant_attr(node) if is_const else None,
        hidden=hidden,
        inner_learned=inner_learned,
        captures=_captures(node) if has_sub else [],
        proto=node,
    )


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _attr(node: Message, name: bytes) -> Message | None:
    found = None
    for attribute in node.attribute:
        if attribute.name == name:
            found = attribute
    return found


def _attr_ints(node: Message, name: bytes) -> list[int] | None:
    attribute = _attr(node, name)
    return list(attribute.ints) if attribute is not None else None


def _tensor(tensor: Message) -> ConstInfo:
    dtype = tensor.data_type
    numel = math.prod(max(d, 0) for d in tensor.dims) if tensor.dims else 1
    code = _CODES.get(dtype)
    values: list[float] | None = None
    if tensor.data_location == EXTERNAL or tensor.external_data or code is None:
        values = None
    elif tensor.raw_data:
        values = unpack_le(code, tensor.raw_data)
    elif dtype == 1:
        values = [float(v) for v in tensor.float_data]
    elif dtype in (10, 16):
        values = half_bits(list(tensor.int32_data), code)
    elif dtype in _INT32_FIELD:
        values = [float(v) for v in tensor.int32_data]
    elif dtype == 7:
        values = [float(v) for v in tensor.int64_data]
    return ConstInfo.of(numel, dtype in _FLOATS, values, scalar=not tensor.dims)


def _constant_attr(node: Message) -> ConstInfo:
    """The value of a ``Constant`` node (``value`` tensor or the scalar/list shorthands)."""
    for attribute in node.attribute:
        name = attribute.name
        if name == b"value":
            return _tensor(attribute.t)
        if name == b"value_float":
            return ConstInfo.of(1, True, [attribute.f], scalar=True)
        if name == b"value_floats":
            return ConstInfo.of(len(attribute.floats), True, [float(v) for v in attribute.floats])
        if name == b"value_int":
            return ConstInfo.of(1, False, [float(attribute.i)], scalar=True)
        if name == b"value_ints":
            return ConstInfo.of(len(attribute.ints), False, [float(v) for v in attribute.ints])
    return ConstInfo(1, False, False)


def _subgraphs(node: Message) -> list[Message]:
    out: list[Message] = []
    for attribute in node.attribute:
        if attribute.HasField("g"):
            out.append(attribute.g)
        out.extend(attribute.graphs)
    return out


def _captures(node: Message) -> list[str]:
    """Outer-scope names the subgraphs of ``node`` read (in first-use order)."""
    found: dict[str, None] = {}
    for sub in _subgraphs(node):
        _free_names(sub, found, 0)
    return list(found)


def _free_names(graph: Message, found: dict[str, None], depth: int) -> None:
    if depth > MAX_SUBGRAPH_DEPTH:
        return
    defined = {_text(t.name) for t in graph.initializer} | {_text(v.name) for v in graph.input}
    for node in graph.node:
        for name in node.input:
            text_ = _text(name)
            if text_ and text_ not in defined:
                found.setdefault(text_, None)
        for sub in _subgraphs(node):
            inner: dict[str, None] = {}
            _free_names(sub, inner, depth + 1)
            for text_ in inner:
                if text_ not in defined:
                    found.setdefault(text_, None)
        defined.update(_text(o) for o in node.output)


def _hidden(node: Message) -> tuple[tuple[ConstInfo, ...], bool]:
    """Constants inside the subgraphs of a control-flow node (branch outputs the taint pass cannot see),
    and whether those subgraphs hold weights: a constant larger than a payload, or one fed to a linear op."""
    out: list[ConstInfo] = []
    learned = False
    stack = [(g, 0) for g in _subgraphs(node)]
    while stack:
        graph, depth = stack.pop()
        consts = {_text(t.name): _tensor(t) for t in graph.initializer}
        for inner in graph.node:
            if inner.op_type == b"Constant" and inner.domain in DEFAULT_DOMAINS and inner.output:
                consts[_text(inner.output[0])] = _constant_attr(inner)
            if depth < MAX_SUBGRAPH_DEPTH:
                stack.extend((g, depth + 1) for g in _subgraphs(inner))
        learned = learned or any(c.numel > LEARNED_CONST_ELEMENTS for c in consts.values())
        learned = learned or any(
            _text(inner.op_type) in ONNX_OPS.linear and any(_text(n) in consts for n in inner.input)
            for inner in graph.node
            if inner.domain in DEFAULT_DOMAINS
        )
        out.extend(list(consts.values())[: MAX_HIDDEN_CONSTS - len(out)])
    return tuple(out), learned


def _rank(value: Message) -> int | None:
    """The rank a graph input declares (``ValueInfoProto`` tensor shape), or None when it does not say."""
    if not value.HasField("type") or not value.type.HasField("tensor_type"):
        return None
    tensor_type = value.type.tensor_type
    return len(tensor_type.shape.dim) if tensor_type.HasField("shape") else None
