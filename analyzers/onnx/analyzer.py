"""ONNX models: custom-op domains, external-data paths, and every nested graph.

Parsed with mlgate's own bytes-typed subset of ``onnx.proto`` (proto package
``mlgate_onnx``; the onnx package is never imported). Walks the main graph,
subgraphs in node attributes (If/Loop/Scan bodies, any GRAPH/GRAPHS attribute)
and model-local functions. Reports ops from domains no standard runtime
implements (a native custom-op library must be loaded), and external-data
``location`` values that are absolute, traverse with ``..``, name a drive or a
UNC share (CVE-2022-25882, CVE-2024-27318), or carry impossible offsets.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from google.protobuf.message import Message

from ..backdoors import onnx_adapter as onnx_backdoor
from ..core.artifact import Artifact, read_exact
from ..core.findings import Finding, Rule, Severity
from ..core.kinds import Kind
from ..core.protoschema import build_messages
from ..core.registry import register
from ..core.walker import Malformed, ScanContext
from ..savedmodel.paths import classify_path
from ..savedmodel.schema import SchemaError, parse_binary

ANALYZER = "onnx"
MAX_ONNX_BYTES = 2 << 30  # protobuf's own message limit
MAX_GRAPH_DEPTH = 32

CUSTOM_DOMAIN = Rule("MLG-ONNX-001", Severity.MEDIUM, "ONNX op from a custom domain needs a native library", ANALYZER)
EXTERNAL_ESCAPE = Rule("MLG-ONNX-002", Severity.HIGH, "ONNX external data points outside the model folder", ANALYZER,
                       cve=("CVE-2022-25882", "CVE-2024-27318"))  # fmt: skip
EXTERNAL_BOUNDS = Rule("MLG-ONNX-003", Severity.MEDIUM, "ONNX external data has an invalid offset or length", ANALYZER)
GRAPH_TOO_DEEP = Rule(
    "MLG-ONNX-004", Severity.MEDIUM, "ONNX subgraphs nest too deeply to scan", ANALYZER, incomplete=True
)

STANDARD_DOMAINS = frozenset({
    "", "ai.onnx", "ai.onnx.ml", "ai.onnx.training", "ai.onnx.preview.training",
    "com.microsoft", "com.microsoft.nchwc", "com.microsoft.experimental",
})  # fmt: skip
EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL

_CLASSES = build_messages(
    "mlgate_onnx",
    {
        "ModelProto": [(1, "ir_version", "int64"), (7, "graph", "GraphProto"),
                       (8, "opset_import", "*OperatorSetIdProto"), (25, "functions", "*FunctionProto")],
        "OperatorSetIdProto": [(1, "domain", "bytes"), (2, "version", "int64")],
        "GraphProto": [(1, "node", "*NodeProto"), (2, "name", "bytes"), (5, "initializer", "*TensorProto"),
                       (11, "input", "*ValueInfoProto"), (12, "output", "*ValueInfoProto"),
                       (15, "sparse_initializer", "*SparseTensorProto")],
        "ValueInfoProto": [(1, "name", "bytes"), (2, "type", "TypeProto")],
        "TypeProto": [(1, "tensor_type", "TypeProtoTensor")],
        "TypeProtoTensor": [(1, "elem_type", "int32"), (2, "shape", "TensorShapeProto")],
        "TensorShapeProto": [(1, "dim", "*TensorShapeDimension")],
        "TensorShapeDimension": [(1, "dim_value", "int64"), (2, "dim_param", "bytes")],
        "NodeProto": [(1, "input", "*bytes"), (2, "output", "*bytes"), (3, "name", "bytes"), (4, "op_type", "bytes"),
                      (7, "domain", "bytes"), (5, "attribute", "*AttributeProto")],
        "AttributeProto": [(1, "name", "bytes"), (2, "f", "float"), (3, "i", "int64"), (5, "t", "TensorProto"),
                           (6, "g", "GraphProto"), (7, "floats", "*float"), (8, "ints", "*int64"),
                           (10, "tensors", "*TensorProto"), (11, "graphs", "*GraphProto"),
                           (22, "sparse_tensor", "SparseTensorProto"), (23, "sparse_tensors", "*SparseTensorProto")],
        "TensorProto": [(1, "dims", "*int64"), (2, "data_type", "int32"), (4, "float_data", "*float"),
                        (5, "int32_data", "*int32"), (7, "int64_data", "*int64"), (8, "name", "bytes"),
                        (9, "raw_data", "bytes"), (13, "external_data", "*StringStringEntryProto"),
                        (14, "data_location", "int32")],
        "SparseTensorProto": [(1, "values", "TensorProto"), (2, "indices", "TensorProto")],
        "StringStringEntryProto": [(1, "key", "bytes"), (2, "value", "bytes")],
        "FunctionProto": [(1, "name", "bytes"), (4, "input", "*bytes"), (5, "output", "*bytes"),
                          (7, "node", "*NodeProto"), (10, "domain", "bytes")],
    },
)  # fmt: skip
ModelProto = _CLASSES["ModelProto"]


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


@register(Kind.ONNX, ANALYZER)
def analyze(artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
    with ctx.open(artifact) as stream:
        data = read_exact(stream, MAX_ONNX_BYTES + 1)
    if len(data) > MAX_ONNX_BYTES:
        raise Malformed(f"ONNX model exceeds the {MAX_ONNX_BYTES}-byte protobuf limit")
    try:
        model = parse_binary(ModelProto, data)
    except SchemaError as exc:
        raise Malformed(str(exc)) from None
    del data
    if not model.HasField("graph") and not model.functions:
        raise Malformed("ONNX model has no graph")
    base = f"{artifact.location}:"
    local = frozenset((_text(fn.domain), _text(fn.name)) for fn in model.functions)
    yield from _graph(model.graph, f"{base}graph", 0, local)
    for fn in model.functions:
        where = f"{base}functions/{_text(fn.domain)}.{_text(fn.name)}"
        yield from _nodes(fn.node, where, 0, local)
    yield from onnx_backdoor.findings(model, base)  # architectural backdoors (docs/rules.md, Backdoors)


def _graph(graph: Message, where: str, depth: int, local: frozenset[tuple[str, str]]) -> Iterator[Finding]:
    if depth > MAX_GRAPH_DEPTH:
        yield GRAPH_TOO_DEEP.finding(where, f"subgraphs nested deeper than {MAX_GRAPH_DEPTH}; the rest was not read")
        return
    for tensor in graph.initializer:
        yield from _tensor(tensor, f"{where}/initializer/{_text(tensor.name)}")
    for sparse in graph.sparse_initializer:
        for part in (sparse.values, sparse.indices):
            yield from _tensor(part, f"{where}/sparse_initializer/{_text(part.name)}")
    yield from _nodes(graph.node, where, depth, local)


def _nodes(nodes, where: str, depth: int, local: frozenset[tuple[str, str]]) -> Iterator[Finding]:
    """Findings for ``nodes``; ``local`` holds the (domain, name) of model-local functions (not custom ops)."""
    for i, node in enumerate(nodes):
        op = _text(node.op_type)
        name = _text(node.name) or f"{op}_{i}"
        here = f"{where}/{name}"
        domain = _text(node.domain)
        if domain not in STANDARD_DOMAINS and (domain, op) not in local:
            yield CUSTOM_DOMAIN.finding(
                here,
                f"op {op} from domain {domain!r} is not implemented by ONNX Runtime; the host must load a native "
                "custom-op library (register_custom_ops_library) to run this model",
            )
        for attribute in node.attribute:
            attr_where = f"{here}/{_text(attribute.name)}"
            if attribute.HasField("g"):
                yield from _graph(attribute.g, attr_where, depth + 1, local)
            for j, sub in enumerate(attribute.graphs):
                yield from _graph(sub, f"{attr_where}[{j}]", depth + 1, local)
            if attribute.HasField("t"):
                yield from _tensor(attribute.t, attr_where)
            for tensor in attribute.tensors:
                yield from _tensor(tensor, attr_where)


def _tensor(tensor: Message, where: str) -> Iterator[Finding]:
    if tensor.data_location != EXTERNAL and not tensor.external_data:
        return
    info = {_text(e.key): _text(e.value) for e in tensor.external_data}
    location = info.get("location", "")
    problem = _escape(location)
    if problem:
        yield EXTERNAL_ESCAPE.finding(
            where,
            f"tensor data is read from {location!r} ({problem}); loaders that do not re-check the path read "
            "any file on the host into the model",
        )
    for key in ("offset", "length"):
        if key in info and not re.fullmatch(r"\d{1,19}", info[key]):
            yield EXTERNAL_BOUNDS.finding(where, f"external data {key} {info[key]!r} is not a non-negative integer")


def _escape(location: str) -> str:
    """Why an external-data location leaves the model folder ("" when it is a plain relative name)."""
    if not location:
        return "no location given"
    if "\x00" in location:
        return "NUL byte in the path"
    return ", ".join(classify_path(location).reasons)
