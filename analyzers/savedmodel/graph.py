"""An index over one MetaGraphDef: function bodies, call sites, and who calls whom.

The top-level ``graph_def`` is treated as one more scope (named ``graph_def``)
next to the library functions. A node calls a function through a ``func``
attribute (``f`` of (Stateful)PartitionedCall, If/While/Case branches, tf.data
map/filter/reduce functions, nested ``NameAttrList`` attributes) or by using a
library function's name as its op type. Everything is built in one pass over
the nodes, so the cost is linear in the size of the graph.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from google.protobuf.message import Message

GRAPH_SCOPE = "graph_def"
MAX_ATTR_DEPTH = 16


def text(raw: bytes) -> str:
    """Decode a name from the model; hostile bytes never raise."""
    return raw.decode("utf-8", errors="replace")


@dataclass
class CallSite:
    """``node`` in scope ``caller`` invokes function ``callee``."""

    caller: str
    node: Message
    callee: str
    via: str  # the attribute name, or "op" when the op type is the function name


@dataclass
class Scope:
    """The graph_def or one library function: its nodes, arguments and outputs."""

    name: str
    nodes: list[Message]
    by_name: dict[str, Message]
    args: list[str]  # input argument names (functions only)
    outputs: list[str]  # output argument names (functions only)
    ret: dict[str, str]  # output argument -> internal tensor reference
    calls: list[CallSite] = field(default_factory=list)

    @property
    def is_graph(self) -> bool:
        return self.name == GRAPH_SCOPE


class GraphIndex:
    """Scopes of one meta graph and the call edges between them."""

    def __init__(self, meta_graph: Message) -> None:
        self.meta_graph = meta_graph
        self.scopes: dict[str, Scope] = {}
        graph = meta_graph.graph_def
        self.scopes[GRAPH_SCOPE] = _scope(GRAPH_SCOPE, graph.node, [], [], {})
        self.duplicate_functions: list[str] = []
        for fn in graph.library.function:
            name = text(fn.signature.name)
            if name in self.scopes:
                self.duplicate_functions.append(name)
                continue
            self.scopes[name] = _scope(
                name,
                fn.node_def,
                [text(a.name) for a in fn.signature.input_arg],
                [text(a.name) for a in fn.signature.output_arg],
                {text(e.key): text(e.value) for e in fn.ret},
            )
        self.callers: dict[str, list[CallSite]] = {}
        for scope in self.scopes.values():
            for node in scope.nodes:
                for callee, via in self._callees(node):
                    site = CallSite(scope.name, node, callee, via)
                    scope.calls.append(site)
                    self.callers.setdefault(callee, []).append(site)

    def _callees(self, node: Message) -> Iterator[tuple[str, str]]:
        op = text(node.op)
        if op in self.scopes and op != GRAPH_SCOPE:
            yield op, "op"
        for entry in node.attr:
            for name in _func_names(entry.value, 0):
                if name in self.scopes and name != GRAPH_SCOPE:
                    yield name, text(entry.key)


def _scope(name: str, nodes, args: list[str], outputs: list[str], ret: dict[str, str]) -> Scope:
    node_list = list(nodes)
    return Scope(name, node_list, {text(n.name): n for n in node_list}, args, outputs, ret)


def _func_names(value: Message, depth: int) -> Iterator[str]:
    """Every function name inside an AttrValue (``func``, ``list.func``, nested NameAttrList attrs)."""
    if depth > MAX_ATTR_DEPTH:
        return
    if value.HasField("func"):
        yield from _name_attr_list(value.func, depth)
    if value.HasField("list"):
        for func in value.list.func:
            yield from _name_attr_list(func, depth)


def _name_attr_list(func: Message, depth: int) -> Iterator[str]:
    if func.name:
        yield text(func.name)
    for entry in func.attr:
        yield from _func_names(entry.value, depth + 1)


def node_ref(ref: str) -> tuple[str, int]:
    """Split an input reference into (node or argument name, output position guess).

    Graph form ``node:1``; function form ``node:out_arg:2``; control inputs are
    ``^node``. The position is only meaningful for graph form.
    """
    ref = ref.lstrip("^")
    parts = ref.split(":")
    if len(parts) == 2 and parts[1].isdigit():
        return parts[0], int(parts[1])
    if len(parts) == 3 and parts[2].isdigit():
        return parts[0], int(parts[2])
    return parts[0], 0


def data_inputs(node: Message) -> list[str]:
    """The node's data inputs (control dependencies removed), decoded."""
    return [text(i) for i in node.input if not i.startswith(b"^")]


def attr(node: Message, key: bytes) -> Message | None:
    """The node's attribute ``key`` (last one wins, as in TF's map parsing), or None."""
    found = None
    for entry in node.attr:
        if entry.key == key:
            found = entry.value
    return found
