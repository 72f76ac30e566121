"""When does each function and graph node of a SavedModel run?

Roots, strongest first (docs/rules.md, SavedModel): load time (``__saved_model_init_op``,
``saved_model_main_op``/``legacy_init_op``/``table_initializer`` collections,
resource ``_create_resource``/``_initialize``/``_destroy_resource`` functions,
the saver's restore op), every serving signature, object-graph functions a
Python caller can invoke after ``tf.saved_model.load``, the saver's save op
(only when someone re-saves). Whatever none of them reaches is unreachable.
Each root group is one multi-source traversal, so the cost is linear in the
graph size times the (fixed) number of groups.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

from .graph import GRAPH_SCOPE, GraphIndex, node_ref, text

LOAD_COLLECTIONS = (b"saved_model_main_op", b"legacy_init_op", b"main_op", b"table_initializer", b"init_op")
INIT_SIGNATURE = b"__saved_model_init_op"
RESOURCE_FUNCTIONS = (b"_create_resource", b"_initialize", b"_destroy_resource")


class Phase(enum.IntEnum):
    """When code runs; higher is more exposed."""

    DEAD = 0
    SAVE = 1
    PYTHON = 2
    SERVE = 3
    LOAD = 4


@dataclass(frozen=True)
class Root:
    """One entry point: graph nodes and/or functions it starts from."""

    phase: Phase
    label: str  # "signature 'serving_default'", "the init op", "loaded.steal()"
    graph_nodes: tuple[str, ...] = ()
    functions: tuple[str, ...] = ()
    saver: bool = False  # the saver's save or restore op


@dataclass(frozen=True)
class Reached:
    phase: Phase
    label: str


DEAD = Reached(Phase.DEAD, "")


class Reachability:
    """Phase of every scope and graph node, plus which scopes anything but the saver reaches."""

    def __init__(self, index: GraphIndex, roots: list[Root]) -> None:
        self.index = index
        self.scopes: dict[str, Reached] = {}
        self.graph_nodes: dict[str, Reached] = {}
        self.non_saver: set[str] = set()  # scopes reached by something other than the saver
        self.non_saver_nodes: set[str] = set()  # graph_def nodes likewise
        for group in _groups(roots):
            self._traverse(group)

    @classmethod
    def everything(cls, index: GraphIndex, reached: Reached) -> Reachability:
        """Every scope and node runs in one phase (a graph hidden inside a node of another)."""
        self = cls(index, [])
        for name in index.scopes:
            self.scopes[name] = reached
            self.non_saver.add(name)
        for name in index.scopes[GRAPH_SCOPE].by_name:
            self.graph_nodes[name] = reached
            self.non_saver_nodes.add(name)
        return self

    def reached_by_non_saver(self, scope: str, node_name: str) -> bool:
        if scope == GRAPH_SCOPE:
            return node_name in self.non_saver_nodes
        return scope in self.non_saver

    def of_scope(self, name: str) -> Reached:
        return self.scopes.get(name, DEAD)

    def of_node(self, scope: str, node_name: str) -> Reached:
        if scope == GRAPH_SCOPE:
            return self.graph_nodes.get(node_name, DEAD)
        return self.of_scope(scope)

    def _traverse(self, group: list[Root]) -> None:
        seen_nodes: set[str] = set()
        seen_scopes: set[str] = set()
        for root in group:
            reached = Reached(root.phase, root.label)
            queue: deque[str] = deque()
            for fn in root.functions:
                if fn in self.index.scopes and fn not in seen_scopes:
                    seen_scopes.add(fn)
                    queue.append(fn)
            graph = self.index.scopes[GRAPH_SCOPE]
            pending = [n for n in root.graph_nodes if n in graph.by_name]
            while pending:
                name = pending.pop()
                if name in seen_nodes:
                    continue
                node = graph.by_name.get(name)
                if node is None:
                    continue  # an input naming a node the graph lacks (TensorFlow refuses to import it)
                seen_nodes.add(name)
                self.graph_nodes.setdefault(name, reached)
                pending.extend(node_ref(text(i))[0] for i in node.input)
            for site in graph.calls:
                if site.callee not in self.index.scopes:
                    continue  # a call of a function the library does not define: TensorFlow refuses to load it
                if text(site.node.name) in seen_nodes and site.callee not in seen_scopes:
                    seen_scopes.add(site.callee)
                    queue.append(site.callee)
            while queue:
                name = queue.popleft()
                self.scopes.setdefault(name, reached)
                if not root.saver:
                    self.non_saver.add(name)
                for site in self.index.scopes[name].calls:
                    if site.callee in self.index.scopes and site.callee not in seen_scopes:
                        seen_scopes.add(site.callee)
                        queue.append(site.callee)
            if not root.saver:
                self.non_saver_nodes.update(seen_nodes)


def _groups(roots: list[Root]) -> list[list[Root]]:
    """Roots grouped by (phase, saver), strongest phase first; non-saver before saver."""
    keys = sorted({(r.phase, r.saver) for r in roots}, key=lambda k: (-k[0], k[1]))
    return [[r for r in roots if (r.phase, r.saver) == key] for key in keys]


def find_roots(index: GraphIndex) -> list[Root]:
    """Every entry point of the meta graph (see module docstring)."""
    mg = index.meta_graph
    roots: list[Root] = []
    for sig in mg.signature_def:
        names = tuple(_tensor_node(e.value.name) for e in list(sig.value.inputs) + list(sig.value.outputs))
        if sig.key == INIT_SIGNATURE:
            roots.append(Root(Phase.LOAD, "the init op (__saved_model_init_op)", graph_nodes=names))
        else:
            roots.append(Root(Phase.SERVE, f"signature '{text(sig.key)}'", graph_nodes=names))
    for entry in mg.collection_def:
        if entry.key in LOAD_COLLECTIONS:
            values = list(entry.value.node_list.value) + list(entry.value.bytes_list.value)
            names = tuple(_tensor_node(v) for v in values)
            roots.append(Root(Phase.LOAD, f"the {text(entry.key)} collection", graph_nodes=names))
    saver = mg.saver_def
    if saver.restore_op_name:
        roots.append(
            Root(Phase.LOAD, "the variable restore op", graph_nodes=(_tensor_node(saver.restore_op_name),), saver=True)
        )
    if saver.save_tensor_name:
        roots.append(Root(Phase.SAVE, "the saver", graph_nodes=(_tensor_node(saver.save_tensor_name),), saver=True))
    roots.extend(_object_graph_roots(mg.object_graph_def))
    return roots


def _object_graph_roots(graph) -> list[Root]:
    nodes = list(graph.nodes)
    paths = object_paths(nodes)
    roots: list[Root] = []
    resource_children: set[int] = set()
    for node in nodes:
        if node.HasField("resource"):
            resource_children.update(c.node_id for c in node.children if c.local_name in RESOURCE_FUNCTIONS)
    for i, node in enumerate(nodes):
        functions = [text(n) for n in node.function.concrete_functions]
        if node.bare_concrete_function.concrete_function_name:
            functions.append(text(node.bare_concrete_function.concrete_function_name))
        if not functions:
            continue
        path = paths.get(i, f"<object {i}>")
        if i in resource_children:
            roots.append(Root(Phase.LOAD, f"resource function {path}", functions=tuple(functions)))
        else:
            roots.append(Root(Phase.PYTHON, f"{path}()", functions=tuple(functions)))
    return roots


def object_paths(nodes: list) -> dict[int, str]:
    """``loaded.a.b`` attribute paths of object-graph nodes (first path found, breadth first)."""
    paths = {0: "loaded"} if nodes else {}
    queue = deque([0]) if nodes else deque()
    while queue:
        i = queue.popleft()
        for child in nodes[i].children:
            if 0 <= child.node_id < len(nodes) and child.node_id not in paths:
                paths[child.node_id] = f"{paths[i]}.{text(child.local_name)}"
                queue.append(child.node_id)
    return paths


def _tensor_node(name: bytes) -> str:
    return node_ref(text(name))[0]


def timing(reached: Reached) -> str:
    """The phrase a finding uses to say when the code runs."""
    if reached.phase is Phase.LOAD:
        return f"runs at load time (tf.saved_model.load, TF Serving startup) via {reached.label}"
    if reached.phase is Phase.SERVE:
        return f"runs on every serving call of {reached.label}"
    if reached.phase is Phase.PYTHON:
        return f"runs only if called from Python as {reached.label}"
    if reached.phase is Phase.SAVE:
        return "runs only when the model is re-saved (checkpoint save)"
    return "unreachable: no signature, initializer or exported function calls it"
