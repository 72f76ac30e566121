"""The SavedModel analyzer: file/network/process ops graded by when they run.

Reads ``saved_model.pb`` (or ``saved_model.pbtxt``) with mlgate's own schema,
indexes every meta graph, works out what runs at load, on serving calls, from
Python, on re-save or never (``reach``), resolves path arguments (``paths``),
and reports catalogue ops (``ops``) with a location naming function and node
(``saved_model.pb:__inference_serve_559/ReadFile``) and a message that says
when the op runs. The saver's own checkpoint ops and asset-fed table
initializers are normal and stay silent. Graphs hidden in ``DatasetFromGraph``
string constants are decoded and scanned the same way.
"""

from __future__ import annotations

from collections.abc import Iterator

from google.protobuf.message import Message

from ..backdoors import savedmodel_adapter as backdoor_adapter
from ..core.artifact import Artifact, read_exact
from ..core.findings import Finding, Rule, Severity
from ..core.kinds import Kind
from ..core.registry import register
from ..core.walker import Malformed, ScanContext
from . import schema
from .graph import GRAPH_SCOPE, GraphIndex, Scope, attr, data_inputs, node_ref, text
from .ops import (
    BENIGN_ATTR_VALUES,
    CATALOGUE,
    KNOWN_LIBRARY_OPS,
    MEMORY_WHEN_EMPTY,
    TFIO_PREFIX,
    OpClass,
    OpInfo,
    registered_ops,
    tfio_is_network,
)
from .paths import PathTracer, Source, SourceKind, classify_path
from .reach import Phase, Reachability, Reached, find_roots, timing

ANALYZER = "savedmodel"
MAX_PB_BYTES = 1 << 30  # protobuf's own hard limit is 2 GiB; real saved_model.pb files are far smaller
MAX_HIDDEN_DEPTH = 3

FILE_READ = Rule("MLG-TF-001", Severity.HIGH, "SavedModel op reads a file", ANALYZER)
FILE_WRITE = Rule("MLG-TF-002", Severity.CRITICAL, "SavedModel op writes a file", ANALYZER)
FILE_LIST = Rule("MLG-TF-003", Severity.HIGH, "SavedModel op lists files", ANALYZER)
PRINT_FILE = Rule("MLG-TF-004", Severity.HIGH, "SavedModel prints tensors into a file", ANALYZER)
DEBUG_URL = Rule("MLG-TF-005", Severity.HIGH, "SavedModel debugger op sends tensors to a URL", ANALYZER)
NETWORK = Rule("MLG-TF-006", Severity.HIGH, "SavedModel op opens network or cluster connections", ANALYZER)
FS_CONFIG = Rule("MLG-TF-007", Severity.HIGH, "SavedModel op reconfigures a filesystem plugin", ANALYZER)
PYFUNC = Rule("MLG-TF-008", Severity.MEDIUM, "SavedModel calls back into host Python (py_func)", ANALYZER)
UNKNOWN_OP = Rule("MLG-TF-009", Severity.MEDIUM, "SavedModel uses an op TensorFlow does not register", ANALYZER)
HIDDEN_GRAPH = Rule("MLG-TF-010", Severity.MEDIUM, "SavedModel hides a graph in a string constant", ANALYZER)
ABORT = Rule("MLG-TF-011", Severity.HIGH, "SavedModel op aborts the serving process", ANALYZER)
LIBRARY_OP = Rule("MLG-TF-012", Severity.LOW, "SavedModel needs a native op library", ANALYZER)
HIDDEN_UNREADABLE = Rule(
    "MLG-TF-013", Severity.MEDIUM, "Graph hidden in a SavedModel could not be decoded", ANALYZER, incomplete=True
)
TEXT_FORM = Rule("MLG-TF-014", Severity.INFO, "SavedModel stored in protobuf text form", ANALYZER)

_RULE_FOR = {
    OpClass.READ: FILE_READ,
    OpClass.WRITE: FILE_WRITE,
    OpClass.LIST: FILE_LIST,
    OpClass.PRINT: PRINT_FILE,
    OpClass.DEBUG: DEBUG_URL,
    OpClass.NETWORK: NETWORK,
    OpClass.FSCONFIG: FS_CONFIG,
}
_BASE = {Phase.LOAD: Severity.CRITICAL, Phase.SERVE: Severity.HIGH, Phase.PYTHON: Severity.HIGH,
         Phase.SAVE: Severity.HIGH, Phase.DEAD: Severity.MEDIUM}  # fmt: skip


@register(Kind.SAVEDMODEL, ANALYZER)
def analyze(artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
    model, is_text = _parse(artifact, ctx)
    if is_text:
        yield TEXT_FORM.finding(
            artifact.location, "SavedModel in text form (saved_model.pbtxt); TF loads it like the binary form"
        )
    if not model.meta_graphs:
        raise Malformed("SavedModel has no meta graph")
    many = len(model.meta_graphs) > 1
    for i, meta_graph in enumerate(model.meta_graphs):
        prefix = f"{artifact.location}:" + (f"meta_graphs[{i}]/" if many else "")
        index = GraphIndex(meta_graph)
        reach = Reachability(index, find_roots(index))
        yield from _scan(index, reach, prefix, 0)
        yield from backdoor_adapter.findings(index, prefix)  # architectural backdoors (docs/rules.md, Backdoors)


def _parse(artifact: Artifact, ctx: ScanContext) -> tuple[Message, bool]:
    if artifact.size is not None and artifact.size > MAX_PB_BYTES:
        raise Malformed(f"saved_model protobuf of {artifact.size} bytes exceeds the {MAX_PB_BYTES}-byte parse limit")
    with ctx.open(artifact) as stream:
        data = read_exact(stream, MAX_PB_BYTES + 1)
    if len(data) > MAX_PB_BYTES:
        raise Malformed(f"saved_model protobuf exceeds the {MAX_PB_BYTES}-byte parse limit")
    is_text = _looks_like_text_proto(data)
    try:
        if is_text:
            return schema.parse_text(schema.SavedModel, data.decode("utf-8", errors="replace")), True
        return schema.parse_binary(schema.SavedModel, data), False
    except schema.SchemaError as exc:
        raise Malformed(str(exc)) from None


def _looks_like_text_proto(data: bytes) -> bool:
    head = data[:256].lstrip()
    while head.startswith(b"#"):
        head = head.split(b"\n", 1)[1].lstrip() if b"\n" in head else b""
    return head[:1].isalpha()


def _scan(index: GraphIndex, reach: Reachability, prefix: str, hidden_depth: int) -> Iterator[Finding]:
    resolver = PathTracer(index)
    known = registered_ops()
    for scope in index.scopes.values():
        unknown_seen: set[str] = set()
        for node in scope.nodes:
            op = text(node.op)
            where = f"{prefix}{scope.name}/{text(node.name)}"
            reached = reach.of_node(scope.name, text(node.name))
            info = CATALOGUE.get(op)
            if info is not None:
                yield from _catalogue_op(index, resolver, reach, scope, node, op, info, reached, where, hidden_depth)
            elif op not in known and op not in index.scopes and op not in unknown_seen:
                unknown_seen.add(op)
                yield _unknown_op(op, reached, where)


def _catalogue_op(
    index: GraphIndex,
    resolver: PathTracer,
    reach: Reachability,
    scope: Scope,
    node: Message,
    op: str,
    info: OpInfo,
    reached: Reached,
    where: str,
    hidden_depth: int,
) -> Iterator[Finding]:
    when = timing(reached)
    if info.cls is OpClass.PYFUNC:
        token = attr(node, b"token")
        name = text(token.s) if token is not None else "?"
        yield PYFUNC.finding(
            where,
            f"{op} calls the host process's Python callable registered as {name!r}; the function itself is not "
            f"in the file, so it only works if the serving process defines it (confused deputy); {when}",
        )
        return
    if info.cls is OpClass.ABORT:
        sev = Severity.HIGH if reached.phase >= Phase.SERVE else Severity.MEDIUM if reached.phase else Severity.LOW
        yield ABORT.finding(where, f"{op} terminates the serving process (denial of service); {when}", severity=sev)
        return
    if info.cls is OpClass.HIDDEN:
        yield from _hidden_graph(index, scope, node, reached, where, hidden_depth)
        return
    inputs = data_inputs(node)
    sources: list[Source] = []
    for pos in info.path_inputs:
        if pos < len(inputs):
            sources.extend(resolver.resolve(scope, inputs[pos]))
    for key in info.path_attrs:
        value = attr(node, key.encode())
        if value is None:
            continue
        values = [text(v) for v in value.list.s] if value.HasField("list") else [text(value.s)]
        values = [v for v in values if v not in BENIGN_ATTR_VALUES.get(key, frozenset())]
        sources.extend(Source(SourceKind.CONST, v) for v in values)
    if info.path_attrs and not info.path_inputs and not sources:
        return  # PrintV2 to stderr/log, DecodeProto with the built-in descriptor pool, debug op without URLs
    if _benign(info, op, sources, reach, scope, node):
        return
    rule = _RULE_FOR[info.cls]
    severity, why = _severity(info, reached, sources)
    target = "; ".join(_describe(s) for s in sources) if sources else "a path chosen at run time"
    message = f"{op} {info.cls.value}: {target}; {when}"
    if why:
        message += f" ({why})"
    yield rule.finding(where, message, severity=severity)


def _benign(info: OpInfo, op: str, sources: list[Source], reach: Reachability, scope: Scope, node: Message) -> bool:
    full = [s for s in sources if not (s.kind is SourceKind.CONST and s.partial)]
    if info.checkpoint and not reach.reached_by_non_saver(scope.name, text(node.name)):
        # The saver's own functions: benign only when every path is the loader-chosen checkpoint prefix.
        return bool(full) and all(s.kind is SourceKind.SAVER for s in full)
    if info.cls is OpClass.READ and full and all(s.kind is SourceKind.ASSET for s in full):
        return True  # reading a file shipped in assets/ (vocabulary tables) is how TF models carry data
    if op in MEMORY_WHEN_EMPTY and full and all(s.kind is SourceKind.CONST and s.value == "" for s in full):
        return True
    return False


def _severity(info: OpInfo, reached: Reached, sources: list[Source]) -> tuple[Severity, str]:
    severity = _BASE[reached.phase]
    reasons: list[str] = []
    if any(s.kind is SourceKind.CONST and classify_path(s.value).sensitive for s in sources):
        reasons.append("sensitive path")
    if reached.phase is Phase.SERVE and info.cls is OpClass.WRITE:
        reasons.append("file write on a serving call")
    if reasons:
        severity = Severity(min(Severity.CRITICAL, severity + 1))
    if reached.phase is Phase.SERVE and any(s.kind is SourceKind.INPUT for s in sources):
        reasons.append("any API client chooses the path")
    return severity, ", ".join(reasons)


def _describe(source: Source) -> str:
    text_ = source.describe()
    if source.kind is SourceKind.CONST:
        risk = classify_path(source.value)
        if risk.reasons:
            text_ += f" [{', '.join(risk.reasons)}]"
    return text_


def _unknown_op(op: str, reached: Reached, where: str) -> Finding:
    when = timing(reached)
    library = KNOWN_LIBRARY_OPS.get(op)
    if library is not None:
        return LIBRARY_OP.finding(
            where, f"op {op} requires the native library {library} in the serving process; {when}"
        )
    if op.startswith(TFIO_PREFIX):
        network = tfio_is_network(op)
        return UNKNOWN_OP.finding(
            where,
            f"tensorflow-io op {op}" + (" talks to an external network service" if network else "") + f"; {when}",
            severity=Severity.HIGH if network else None,
        )
    return UNKNOWN_OP.finding(
        where, f"op {op} is not a TensorFlow op: it needs a native custom-op library loaded by the server; {when}"
    )


def _hidden_graph(
    index: GraphIndex, scope: Scope, node: Message, reached: Reached, where: str, hidden_depth: int
) -> Iterator[Finding]:
    when = timing(reached)
    inputs = data_inputs(node)
    raw = _const_bytes(scope, inputs[0]) if inputs else None
    if raw is None:
        yield HIDDEN_GRAPH.finding(
            where,
            f"{text(node.op)} builds a dataset from a graph computed at run time, which cannot be inspected; {when}",
        )
        return
    yield HIDDEN_GRAPH.finding(
        where,
        f"{text(node.op)} runs a {len(raw)}-byte serialized graph stored in a string constant (scanned below); {when}",
    )
    if hidden_depth >= MAX_HIDDEN_DEPTH:
        yield HIDDEN_UNREADABLE.finding(
            where, "graphs hidden inside hidden graphs nest too deeply; the innermost was not scanned"
        )
        return
    try:
        graph = schema.parse_binary(schema.GraphDef, raw)
    except schema.SchemaError as exc:
        yield HIDDEN_UNREADABLE.finding(where, f"the hidden graph does not parse: {exc}")
        return
    meta = schema.CLASSES["MetaGraphDef"]()
    meta.graph_def.CopyFrom(graph)
    hidden = GraphIndex(meta)
    yield from _scan(hidden, Reachability.everything(hidden, reached), f"{where}!{GRAPH_SCOPE}:", hidden_depth + 1)


def _const_bytes(scope: Scope, ref: str) -> bytes | None:
    """The raw string of a Const reached through Identity nodes, or None."""
    for _ in range(8):
        node = scope.by_name.get(node_ref(ref)[0])
        if node is None:
            return None
        if node.op == b"Const":
            value = attr(node, b"value")
            if value is None or not value.tensor.string_val:
                return None
            return bytes(value.tensor.string_val[0])
        if node.op != b"Identity" or not data_inputs(node):
            return None
        ref = data_inputs(node)[0]
    return None
