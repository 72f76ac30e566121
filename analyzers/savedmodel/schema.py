"""The SavedModel subset mlgate reads, as bytes-typed protobuf classes (proto package ``mlgate_sm``).

Field numbers are TensorFlow's (``saved_model.proto``, ``meta_graph.proto``,
``graph.proto``, ``node_def.proto``, ``function.proto``, ``attr_value.proto``,
``tensor.proto``, ``saved_object_graph.proto``, tf_keras ``saved_metadata.proto``).
Names match TF's so ``saved_model.pbtxt`` parses with ``text_format``. Parsing
never imports TensorFlow and never validates UTF-8.
"""

from __future__ import annotations

from google.protobuf import text_format
from google.protobuf.message import DecodeError, Message

from ..core.protoschema import build_messages

_DTYPES = (
    "INVALID FLOAT DOUBLE INT32 UINT8 INT16 INT8 STRING COMPLEX64 INT64 BOOL QINT8 QUINT8 QINT32 BFLOAT16 "
    "QINT16 QUINT16 UINT16 COMPLEX128 HALF RESOURCE VARIANT UINT32 UINT64 FLOAT8_E5M2 FLOAT8_E4M3FN "
    "FLOAT8_E4M3FNUZ FLOAT8_E4M3B11FNUZ FLOAT8_E5M2FNUZ INT4 UINT4 INT2 UINT2 FLOAT4_E2M1FN"
).split()
DT_STRING = 7
DT_RESOURCE = 20

_ENUMS = {
    "DataType": [(f"DT_{n}", i) for i, n in enumerate(_DTYPES)]
    + [(f"DT_{n}_REF", i + 100) for i, n in enumerate(_DTYPES) if i],
}

_MESSAGES: dict[str, list[tuple[int, str, str]]] = {
    "SavedModel": [(1, "saved_model_schema_version", "int64"), (2, "meta_graphs", "*MetaGraphDef")],
    "MetaGraphDef": [
        (1, "meta_info_def", "MetaInfoDef"),
        (2, "graph_def", "GraphDef"),
        (3, "saver_def", "SaverDef"),
        (4, "collection_def", "*CollectionEntry"),
        (5, "signature_def", "*SignatureEntry"),
        (6, "asset_file_def", "*AssetFileDef"),
        (7, "object_graph_def", "SavedObjectGraph"),
    ],
    "MetaInfoDef": [
        (1, "meta_graph_version", "bytes"),
        (4, "tags", "*bytes"),
        (5, "tensorflow_version", "bytes"),
        (6, "tensorflow_git_version", "bytes"),
        (7, "stripped_default_attrs", "bool"),
    ],
    "SaverDef": [
        (1, "filename_tensor_name", "bytes"),
        (2, "save_tensor_name", "bytes"),
        (3, "restore_op_name", "bytes"),
    ],
    "CollectionEntry": [(1, "key", "bytes"), (2, "value", "CollectionDef")],
    "CollectionDef": [(1, "node_list", "BytesList"), (2, "bytes_list", "BytesList"), (5, "any_list", "AnyList")],
    "AnyList": [(1, "value", "*AnyValue")],
    "AnyValue": [(1, "type_url", "bytes"), (2, "value", "bytes")],  # google.protobuf.Any, read by hand
    "BytesList": [(1, "value", "*bytes")],
    "SignatureEntry": [(1, "key", "bytes"), (2, "value", "SignatureDef")],
    "SignatureDef": [
        (1, "inputs", "*TensorInfoEntry"),
        (2, "outputs", "*TensorInfoEntry"),
        (3, "method_name", "bytes"),
    ],
    "TensorInfoEntry": [(1, "key", "bytes"), (2, "value", "TensorInfo")],
    "TensorInfo": [(1, "name", "bytes"), (2, "dtype", "DataType"), (3, "tensor_shape", "TensorShapeProto")],
    "AssetFileDef": [(1, "tensor_info", "TensorInfo"), (2, "filename", "bytes")],
    "GraphDef": [(1, "node", "*NodeDef"), (2, "library", "FunctionDefLibrary")],
    "NodeDef": [
        (1, "name", "bytes"),
        (2, "op", "bytes"),
        (3, "input", "*bytes"),
        (4, "device", "bytes"),
        (5, "attr", "*AttrEntry"),
    ],
    "AttrEntry": [(1, "key", "bytes"), (2, "value", "AttrValue")],
    "AttrValue": [
        (1, "list", "ListValue"),
        (2, "s", "bytes"),
        (3, "i", "int64"),
        (4, "f", "float"),
        (5, "b", "bool"),
        (6, "type", "DataType"),
        (8, "tensor", "TensorProto"),
        (7, "shape", "TensorShapeProto"),
        (9, "placeholder", "bytes"),
        (10, "func", "NameAttrList"),
    ],
    "ListValue": [
        (2, "s", "*bytes"),
        (3, "i", "*int64"),
        (4, "f", "*float"),
        (5, "b", "*bool"),
        (6, "type", "*DataType"),
        (7, "shape", "*TensorShapeProto"),
        (8, "tensor", "*TensorProto"),
        (9, "func", "*NameAttrList"),
    ],
    "NameAttrList": [(1, "name", "bytes"), (2, "attr", "*AttrEntry")],
    "TensorProto": [
        (1, "dtype", "DataType"),
        (2, "tensor_shape", "TensorShapeProto"),
        (4, "tensor_content", "bytes"),
        (5, "float_val", "*float"),
        (7, "int_val", "*int32"),
        (8, "string_val", "*bytes"),
        (10, "int64_val", "*int64"),
        (11, "bool_val", "*bool"),
        (13, "half_val", "*int32"),
    ],
    "TensorShapeProto": [(2, "dim", "*Dim"), (3, "unknown_rank", "bool")],
    "Dim": [(1, "size", "int64"), (2, "name", "bytes")],
    "FunctionDefLibrary": [(1, "function", "*FunctionDef")],
    "FunctionDef": [
        (1, "signature", "OpDef"),
        (3, "node_def", "*NodeDef"),
        (4, "ret", "*StringEntry"),
        (5, "attr", "*AttrEntry"),
        (6, "control_ret", "*StringEntry"),
        (7, "arg_attr", "*ArgAttrEntry"),
    ],
    "ArgAttrEntry": [(1, "key", "int64"), (2, "value", "ArgAttrs")],
    "ArgAttrs": [(1, "attr", "*AttrEntry")],
    "StringEntry": [(1, "key", "bytes"), (2, "value", "bytes")],
    "OpDef": [(1, "name", "bytes"), (2, "input_arg", "*ArgDef"), (3, "output_arg", "*ArgDef")],
    "ArgDef": [
        (1, "name", "bytes"),
        (3, "type", "DataType"),
        (4, "type_attr", "bytes"),
        (5, "number_attr", "bytes"),
        (6, "type_list_attr", "bytes"),
    ],
    "SavedObjectGraph": [(1, "nodes", "*SavedObject"), (2, "concrete_functions", "*ConcreteFunctionEntry")],
    "ConcreteFunctionEntry": [(1, "key", "bytes"), (2, "value", "SavedConcreteFunction")],
    "SavedConcreteFunction": [(2, "bound_inputs", "*int32")],
    "SavedObject": [
        (1, "children", "*ObjectReference"),
        (4, "user_object", "SavedUserObject"),
        (5, "asset", "SavedAsset"),
        (6, "function", "SavedFunction"),
        (7, "variable", "SavedVariable"),
        (8, "bare_concrete_function", "SavedBareConcreteFunction"),
        (10, "resource", "SavedResource"),
        (13, "registered_name", "bytes"),
    ],
    "ObjectReference": [(1, "node_id", "int32"), (2, "local_name", "bytes")],
    "SavedUserObject": [(1, "identifier", "bytes"), (3, "metadata", "bytes")],
    "SavedAsset": [(1, "asset_file_def_index", "int32")],
    "SavedFunction": [(1, "concrete_functions", "*bytes")],
    "SavedVariable": [(1, "dtype", "DataType"), (6, "name", "bytes")],
    "SavedBareConcreteFunction": [(1, "concrete_function_name", "bytes")],
    "SavedResource": [(1, "device", "bytes")],
    # tf_keras/protobuf/saved_metadata.proto (keras_metadata.pb)
    "SavedMetadata": [(1, "nodes", "*KerasObject")],
    "KerasObject": [
        (2, "node_id", "int32"),
        (3, "node_path", "bytes"),
        (4, "identifier", "bytes"),
        (5, "metadata", "bytes"),
    ],
}

CLASSES = build_messages("mlgate_sm", _MESSAGES, _ENUMS)
SavedModel = CLASSES["SavedModel"]
GraphDef = CLASSES["GraphDef"]
SavedMetadata = CLASSES["SavedMetadata"]
AssetFileDef = CLASSES["AssetFileDef"]


class SchemaError(ValueError):
    """The bytes are not a message of the expected type (truncated, wrong wire types, too deep)."""


def parse_binary(cls: type[Message], data: bytes) -> Message:
    """Parse wire-format ``data``; raise SchemaError on anything the parser refuses."""
    msg = cls()
    try:
        msg.ParseFromString(data)
    except (DecodeError, RecursionError, ValueError) as exc:
        raise SchemaError(f"not a valid {cls.DESCRIPTOR.name} protobuf: {exc or 'truncated or corrupt'}") from None
    return msg


def parse_text(cls: type[Message], text: str) -> Message:
    """Parse protobuf text format (``saved_model.pbtxt``); unknown fields are skipped."""
    msg = cls()
    try:
        text_format.Parse(text, msg, allow_unknown_field=True, allow_unknown_extension=True)
    except (text_format.ParseError, RecursionError, ValueError) as exc:
        raise SchemaError(f"not a valid {cls.DESCRIPTOR.name} text protobuf: {exc}") from None
    return msg
