"""Where a path argument comes from, and how dangerous the path looks.

``PathTracer`` follows a tensor reference backwards (docs/rules.md, SavedModel): string
``Const`` values, function arguments mapped through every caller up to the
graph, graph placeholders that are signature inputs (caller-supplied), asset
tensors, the saver's filename placeholder, variables assigned from an asset,
and ``StringJoin`` of constants folded to one string. ``classify_path`` says
why a literal path is risky; the Keras and ONNX analyzers use it too.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from google.protobuf.message import DecodeError, Message

from .graph import GraphIndex, Scope, attr, data_inputs, node_ref, text
from .schema import DT_STRING, AssetFileDef

MAX_DEPTH = 32
MAX_SOURCES = 16
MAX_STEPS = 4096  # references followed per resolve() call: keeps crafted join/call fan-out linear

_PASS_THROUGH = {
    "Identity": 0, "Snapshot": 0, "StopGradient": 0, "ShardedFilename": 0, "ShardedFilespec": 0,
    "StaticRegexReplace": 0, "RegexReplace": 0, "StringStrip": 0, "ExpandDims": 0, "Reshape": 0,
    "Squeeze": 0, "PlaceholderWithDefault": 0, "EnsureShape": 0, "CheckNumerics": 0,
}  # fmt: skip
_UNION_ALL = frozenset(
    {"Pack", "StringFormat", "ConcatV2", "Concat", "AsString", "TensorSliceDataset", "TensorDataset"}
)
_UNION_FROM_1 = frozenset({"Select", "SelectV2"})
_CALLS = frozenset({"PartitionedCall", "StatefulPartitionedCall"})
_BRANCH_OFFSET = {"then_branch": 1, "else_branch": 1, "branches": 1, "cond": 0, "body": 0}
_CONTROL_FLOW = frozenset({"If", "StatelessIf", "Case", "StatelessCase", "While", "StatelessWhile"})

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")
_SENSITIVE = (
    "/etc/", "/proc/", "/sys/", "/root", "/home/", "/var/run/", "/dev/", ".ssh", ".aws", ".kube", ".gnupg",
    ".docker", ".netrc", ".bashrc", ".profile", "site-packages", "dist-packages", "crontab", "cron.d",
    "authorized_keys", "id_rsa", "shadow", "passwd", ".git/", "credentials",
)  # fmt: skip


class SourceKind(enum.Enum):
    CONST = "constant"
    INPUT = "caller-supplied input"
    ASSET = "asset"
    SAVER = "checkpoint path"
    PYTHON_ARG = "Python argument"
    VARIABLE = "variable"
    UNKNOWN = "computed"


@dataclass(frozen=True)
class Source:
    kind: SourceKind
    value: str  # the constant, the input name, the asset file name, or the op that computes it
    partial: bool = False  # a constant fragment joined with something non-constant

    def describe(self) -> str:
        if self.kind is SourceKind.CONST:
            return repr(self.value) if not self.partial else f"a path built from {self.value!r}"
        if self.kind is SourceKind.INPUT:
            return f"a path taken from request input {self.value}"
        if self.kind is SourceKind.ASSET:
            return f"asset {self.value!r}"
        if self.kind is SourceKind.SAVER:
            return "the checkpoint path chosen by the loader"
        if self.kind is SourceKind.PYTHON_ARG:
            return f"a path passed by the Python caller ({self.value})"
        if self.kind is SourceKind.VARIABLE:
            return f"a path read from variable {self.value}"
        return f"a path computed by {self.value}"


@dataclass(frozen=True)
class PathRisk:
    reasons: tuple[str, ...]
    sensitive: bool  # points at a well-known sensitive location or escapes through a scheme/traversal


def classify_path(value: str) -> PathRisk:
    """Why a literal path is risky: absolute, traversal, home, variables, URL scheme, sensitive target."""
    reasons: list[str] = []
    sensitive = False
    norm = value.replace("\\", "/")
    if _SCHEME.match(value):
        scheme = value.split("://", 1)[0].lower()
        reasons.append(f"{scheme}:// URL")
        sensitive = scheme not in ("file", "ram")
    if value.startswith(("/", "\\")) or _DRIVE.match(value):
        reasons.append("absolute path")
    if value.startswith("\\\\") or value.startswith("//"):
        reasons.append("UNC/network path")
        sensitive = True
    if ".." in norm.split("/"):
        reasons.append("path traversal ('..')")
        sensitive = True
    if value.startswith("~") or "$" in value or re.search(r"%[A-Za-z_]+%", value):
        reasons.append("home directory or environment variable")
        sensitive = True
    lowered = norm.lower()
    hit = next((s for s in _SENSITIVE if s in lowered), None)
    if hit is not None:
        reasons.append(f"sensitive location ({hit.strip('/')})")
        sensitive = True
    return PathRisk(tuple(reasons), sensitive)


ASSETS_COLLECTION = b"saved_model_assets"
"""TF1 ``SavedModelBuilder`` lists assets here (``AssetFileDef`` in an ``Any`` list), not in ``asset_file_def``."""


def asset_defs(mg: Message) -> list[Message]:
    """Every ``AssetFileDef`` of a meta graph: the TF2 field and the TF1 collection (the loader reads both)."""
    out = list(mg.asset_file_def)
    for entry in mg.collection_def:
        if entry.key != ASSETS_COLLECTION:
            continue
        for value in entry.value.any_list.value:
            if not text(value.type_url).endswith("tensorflow.AssetFileDef"):
                continue
            asset = AssetFileDef()
            try:
                asset.ParseFromString(value.value)
            except DecodeError:
                continue
            out.append(asset)
    return out


class PathTracer:
    """Resolve string tensors of one meta graph to their sources."""

    def __init__(self, index: GraphIndex) -> None:
        self.index = index
        mg = index.meta_graph
        self.signature_inputs: dict[str, str] = {}
        for sig in mg.signature_def:
            for entry in sig.value.inputs:
                node = node_ref(text(entry.value.name))[0]
                self.signature_inputs[node] = f"'{text(entry.key)}' of signature '{text(sig.key)}'"
        self.asset_tensors = {node_ref(text(a.tensor_info.name))[0]: text(a.filename) for a in asset_defs(mg)}
        self.saver_filename = (
            node_ref(text(mg.saver_def.filename_tensor_name))[0] if mg.saver_def.filename_tensor_name else ""
        )
        self.bound = _bound_inputs(mg)
        self._steps = 0

    def resolve(self, scope: Scope, ref: str) -> list[Source]:
        out: list[Source] = []
        self._steps = 0
        self._ref(scope, ref, 0, set(), out)
        unique = list(dict.fromkeys(out))
        return unique[:MAX_SOURCES]

    def _ref(self, scope: Scope, ref: str, depth: int, seen: set[tuple[str, str]], out: list[Source]) -> None:
        key = (scope.name, ref)
        self._steps += 1
        if depth > MAX_DEPTH or self._steps > MAX_STEPS or key in seen or len(out) >= MAX_SOURCES:
            if depth > MAX_DEPTH or self._steps > MAX_STEPS:
                out.append(Source(SourceKind.UNKNOWN, "a chain too long to follow"))
            return
        seen.add(key)
        name, pos = node_ref(ref)
        if not scope.is_graph and ":" not in ref and name in scope.args:
            self._arg(scope, scope.args.index(name), depth, seen, out)
            return
        node = scope.by_name.get(name)
        if node is None:
            out.append(Source(SourceKind.UNKNOWN, f"missing node {name!r}"))
            return
        self._node(scope, node, pos, ref, depth, seen, out)

    def _node(self, scope: Scope, node: Message, pos: int, ref: str, depth: int, seen: set, out: list[Source]) -> None:
        op = text(node.op)
        name = text(node.name)
        inputs = data_inputs(node)
        if scope.is_graph and name == self.saver_filename:
            out.append(Source(SourceKind.SAVER, name))  # TF1 savers feed a Const default
            return
        if scope.is_graph and name in self.asset_tensors:
            # TF1 assets are graph tensors (a Const holding the path at export time) that the loader
            # feeds with the file's location under assets/: the constant's own value is never read.
            out.append(Source(SourceKind.ASSET, self.asset_tensors[name]))
            return
        if op == "Const":
            value = attr(node, b"value")
            if value is not None and value.tensor.dtype == DT_STRING and value.tensor.string_val:
                out.extend(Source(SourceKind.CONST, text(s)) for s in value.tensor.string_val)
            else:
                out.append(Source(SourceKind.UNKNOWN, "a non-string constant"))
            return
        if op in ("Placeholder", "PlaceholderWithDefault") and scope.is_graph:
            if name in self.signature_inputs:
                out.append(Source(SourceKind.INPUT, self.signature_inputs[name]))
            elif name in self.asset_tensors:
                out.append(Source(SourceKind.ASSET, self.asset_tensors[name]))
            elif name == self.saver_filename:
                out.append(Source(SourceKind.SAVER, name))
            elif op == "Placeholder":
                out.append(Source(SourceKind.INPUT, f"placeholder {name!r}"))
            if op == "PlaceholderWithDefault" and inputs:
                self._ref(scope, inputs[0], depth + 1, seen, out)
            return
        if op in _PASS_THROUGH and inputs:
            self._ref(scope, inputs[_PASS_THROUGH[op]], depth + 1, seen, out)
            return
        if op == "IdentityN" and pos < len(inputs):
            self._ref(scope, inputs[pos], depth + 1, seen, out)
            return
        if op == "StringJoin":
            self._join(scope, node, inputs, depth, seen, out)
            return
        if op in _UNION_ALL or op in _UNION_FROM_1:
            for inp in inputs[1:] if op in _UNION_FROM_1 else inputs:
                self._ref(scope, inp, depth + 1, seen, out)
            return
        if op == "ReadVariableOp" and inputs:
            if not self._assigned(scope, node_ref(inputs[0])[0], depth, seen, out):
                out.append(Source(SourceKind.VARIABLE, node_ref(inputs[0])[0]))
            return
        if op in _CALLS or op in self.index.scopes:
            callee_name = op if op in self.index.scopes else _func_attr(node)
            callee = self.index.scopes.get(callee_name) if callee_name else None
            if callee is not None and not callee.is_graph:
                out_pos = _output_position(ref, callee)
                if out_pos is not None and out_pos < len(callee.outputs):
                    inner = callee.ret.get(callee.outputs[out_pos])
                    if inner is not None:
                        self._ref(callee, inner, depth + 1, seen, out)
                        return
        out.append(Source(SourceKind.UNKNOWN, op))

    def _join(self, scope: Scope, node: Message, inputs: list[str], depth: int, seen: set, out: list[Source]) -> None:
        """StringJoin: fold constant parts (with alternatives, e.g. a Select of two Consts)."""
        sep_attr = attr(node, b"separator")
        sep = text(sep_attr.s) if sep_attr is not None else ""
        alternatives: list[list[str]] = []
        others: list[Source] = []
        for inp in inputs:
            got: list[Source] = []
            self._ref(scope, inp, depth + 1, set(seen), got)
            if got and all(g.kind is SourceKind.CONST and not g.partial for g in got):
                alternatives.append([g.value for g in got])
            else:
                alternatives.append(["*"])
                others.extend(got)
        if not others:
            joined = [""]
            for alts in alternatives:
                joined = [f"{a}{sep}{b}" if a or b else "" for a in joined for b in alts][:MAX_SOURCES]
            out.extend(Source(SourceKind.CONST, j[len(sep) :] if sep and j.startswith(sep) else j) for j in joined)
            return
        out.extend(others)
        template = sep.join(alts[0] if len(alts) == 1 else "(" + "|".join(alts) + ")" for alts in alternatives)
        if template.strip("*" + sep):
            out.append(Source(SourceKind.CONST, template, partial=True))

    def _assigned(self, scope: Scope, var: str, depth: int, seen: set, out: list[Source]) -> bool:
        """Graph-level variables initialised by AssignVariableOp: follow the assigned value."""
        found = False
        for other in scope.nodes:
            if other.op == b"AssignVariableOp":
                ins = data_inputs(other)
                if len(ins) >= 2 and node_ref(ins[0])[0] == var:
                    found = True
                    self._ref(scope, ins[1], depth + 1, seen, out)
        return found

    def _arg(self, scope: Scope, i: int, depth: int, seen: set, out: list[Source]) -> None:
        callers = self.index.callers.get(scope.name, [])
        followed = False
        for site in callers:
            op = text(site.node.op)
            caller_inputs = data_inputs(site.node)
            caller = self.index.scopes[site.caller]
            if site.via == "op" or (site.via == "f" and op in _CALLS):
                offset = 0
            elif op in _CONTROL_FLOW and site.via in _BRANCH_OFFSET:
                offset = _BRANCH_OFFSET[site.via]
            else:
                # A tf.data function: its arguments are elements of the input dataset.
                followed = True
                if caller_inputs:
                    self._ref(caller, caller_inputs[0], depth + 1, seen, out)
                continue
            if i + offset < len(caller_inputs):
                followed = True
                self._ref(caller, caller_inputs[i + offset], depth + 1, seen, out)
        if followed:
            return
        bound = self.bound.get(scope.name)
        if bound is not None:
            first_bound = len(scope.args) - len(bound)
            if i >= first_bound:
                out.append(bound[i - first_bound])
                return
        out.append(Source(SourceKind.PYTHON_ARG, scope.args[i] if i < len(scope.args) else f"argument {i}"))


def _func_attr(node: Message) -> str:
    value = attr(node, b"f")
    return text(value.func.name) if value is not None else ""


def _output_position(ref: str, callee: Scope) -> int | None:
    """Which output of a call a reference names (``call:output:1`` or graph form ``call:1``)."""
    parts = ref.lstrip("^").split(":")
    if len(parts) == 3 and parts[2].isdigit():
        return int(parts[2])
    if len(parts) == 2 and parts[1].isdigit():
        return int(parts[1])
    return 0 if callee.outputs else None


def _bound_inputs(mg: Message) -> dict[str, list[Source]]:
    """Captured inputs of object-graph concrete functions, as sources (assets, variables, resources)."""
    nodes = list(mg.object_graph_def.nodes)
    assets = asset_defs(mg)
    out: dict[str, list[Source]] = {}
    for entry in mg.object_graph_def.concrete_functions:
        sources: list[Source] = []
        for node_id in entry.value.bound_inputs:
            node = nodes[node_id] if 0 <= node_id < len(nodes) else None
            if node is not None and node.HasField("asset"):
                idx = node.asset.asset_file_def_index
                name = text(assets[idx].filename) if 0 <= idx < len(assets) else f"asset #{idx}"
                sources.append(Source(SourceKind.ASSET, name))
            elif node is not None and node.HasField("variable"):
                sources.append(Source(SourceKind.VARIABLE, text(node.variable.name) or f"object {node_id}"))
            else:
                sources.append(Source(SourceKind.UNKNOWN, f"captured object {node_id}"))
        out[text(entry.key)] = sources
    return out
