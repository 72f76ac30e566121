"""Build bytes-typed protobuf message classes at run time from a compact field table.

The SavedModel and ONNX analyzers declare the subset of fields they read as
``{message: [(number, name, type), ...]}``; this module turns the table into a
``FileDescriptorProto`` in a private ``DescriptorPool`` (so it never collides
with TensorFlow's or ONNX's own descriptors in the same process) and returns
the generated classes. Conventions that keep hostile input from crashing the
parser: every string is ``bytes`` (no UTF-8 validation), maps are ``repeated``
key/value entries (duplicates stay visible), unknown fields are skipped.

Type notation: ``"bytes"``, ``"int32"``, ``"int64"``, ``"uint64"``, ``"bool"``,
``"float"``, an enum or message name of the same table; a leading ``*`` means
``repeated``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

FieldSpec = tuple[int, str, str]

_SCALARS = {
    "bytes": descriptor_pb2.FieldDescriptorProto.TYPE_BYTES,
    "int32": descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
    "int64": descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
    "uint64": descriptor_pb2.FieldDescriptorProto.TYPE_UINT64,
    "bool": descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
    "float": descriptor_pb2.FieldDescriptorProto.TYPE_FLOAT,
}


def build_messages(
    package: str,
    messages: Mapping[str, Sequence[FieldSpec]],
    enums: Mapping[str, Sequence[tuple[str, int]]] | None = None,
) -> dict[str, type[Message]]:
    """Message classes for ``messages`` in a fresh pool under proto package ``package``."""
    enums = enums or {}
    fdp = descriptor_pb2.FileDescriptorProto(name=f"{package}.proto", package=package, syntax="proto3")
    for enum_name, values in enums.items():
        enum = fdp.enum_type.add(name=enum_name)
        for value_name, number in values:
            enum.value.add(name=value_name, number=number)
    for msg_name, fields in messages.items():
        msg = fdp.message_type.add(name=msg_name)
        for number, field_name, type_name in fields:
            repeated = type_name.startswith("*")
            base = type_name.lstrip("*")
            field = msg.field.add(name=field_name, number=number)
            field.label = (
                descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
                if repeated
                else descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
            )
            if base in _SCALARS:
                field.type = _SCALARS[base]
            elif base in enums:
                field.type = descriptor_pb2.FieldDescriptorProto.TYPE_ENUM
                field.type_name = f".{package}.{base}"
            elif base in messages:
                field.type = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
                field.type_name = f".{package}.{base}"
            else:
                raise ValueError(f"{msg_name}.{field_name}: unknown type {base!r}")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.{name}")) for name in messages}
