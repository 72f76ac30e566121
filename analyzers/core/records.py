"""``NamedTuple`` class syntax without importing ``typing`` at run time (start-up, issue 19).

``typing`` takes a few milliseconds to import, several percent of a small pickle's scan, and the scan
path needs nothing of it at run time but ``NamedTuple``. Type checkers see ``typing.NamedTuple``; at
run time a class written ``class Name(NamedTuple)`` is built the way typing's own metaclass builds it:
``collections.namedtuple`` with the annotated fields, class attributes as the trailing defaults, and
the docstring and methods copied over. ``TYPE_CHECKING`` is ``typing.TYPE_CHECKING`` (False at run
time; type checkers treat a name ``TYPE_CHECKING`` as True wherever it comes from).
"""

from __future__ import annotations

import collections

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import NamedTuple
else:
    _NAMEDTUPLE_OWN = frozenset(
        "__module__ __annotations__ __slots__ __new__ __init__ __getnewargs__ _fields _field_defaults _make "
        "_replace _asdict".split()
    )

    class _NamedTupleMeta(type):
        def __new__(mcs, typename: str, bases: tuple[type, ...], namespace: dict[str, object]) -> type:
            if not bases:  # NamedTuple itself
                return super().__new__(mcs, typename, bases, namespace)
            if bases != (NamedTuple,):
                raise TypeError("a NamedTuple class derives from NamedTuple only")
            annotations = namespace.get("__annotations__", {})
            fields = list(annotations)
            defaults = [namespace[f] for f in fields if f in namespace]
            if any(f in namespace for f in fields[: len(fields) - len(defaults)]):
                raise TypeError(f"{typename}: a field without a default follows one with a default")
            cls = collections.namedtuple(typename, fields, defaults=defaults, module=namespace["__module__"])
            cls.__annotations__ = dict(annotations)
            for key, value in namespace.items():
                if key in _NAMEDTUPLE_OWN:
                    if key not in ("__module__", "__annotations__"):
                        raise AttributeError(f"{typename}: cannot overwrite NamedTuple attribute {key}")
                elif key not in fields:
                    setattr(cls, key, value)
            return cls

    class NamedTuple(metaclass=_NamedTupleMeta):
        """Base of the record classes (``typing.NamedTuple`` for type checkers)."""


__all__ = ["TYPE_CHECKING", "NamedTuple"]
