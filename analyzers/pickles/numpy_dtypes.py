"""NumPy's dtype descriptor grammar, reimplemented to answer one question: does it hold objects?

``np.load`` turns a ``.npy`` header's ``descr`` into a dtype with
``numpy.lib.format.descr_to_dtype`` and, when that dtype ``hasobject``,
unpickles the array data. numpy is not a runtime dependency of mlgate, so this
module follows numpy's own parser instead of importing it:
``descr_to_dtype`` (strings, ``(base, shape)`` tuples, field lists of
``(name, descr[, shape])``), ``np.dtype(str)`` (``_convert_from_str`` in
``descriptor.c``: comma strings, byte-order prefixes, type characters with a
``strtol`` size, ``sctypeDict`` names) and ``_commastring`` (repeat counts,
subarray shapes, per-item byte orders). Every spelling numpy accepts for an
object field (``'O'``, ``'|O'``, ``'O8'``, ``'object'``, ``'object_'``,
``'i4,O'``, ``'(2,)O'``, ``('O', (1,))``, structured fields) answers True.
"""

from __future__ import annotations

import ast
import re

MAX_NESTING = 32
"""Descriptors nested deeper than this are not interpreted (numpy's own recursion limit is far above)."""

# Names np.dtype() finds in sctypeDict for the object type, in any numpy still in use
# ('object0' existed until NumPy 2.0).
_OBJECT_NAMES = frozenset({"object", "object_", "object0", "O"})
_OBJECT_CHAR = "O"
_BYTEORDER = "<>|="
_SPACE = " \t\n\v\f\r"

# numpy/_core/_internal.py, _commastring
_FORMAT_RE = re.compile(
    r"(?P<order1>[<>|=]?)"
    r"(?P<repeats> *[(]?[ ,0-9]*[)]? *)"
    r"(?P<order2>[<>|=]?)"
    r"(?P<dtype>[A-Za-z0-9.?]*(?:\[[a-zA-Z0-9,.]+\])?)"
)
_SEP_RE = re.compile(r"\s*,\s*")
_SPACE_RE = re.compile(r"\s+$")


class NotADtype(ValueError):
    """numpy would refuse this descriptor (np.load fails on the file)."""


def descr_has_objects(descr: object) -> bool:
    """Whether ``descr_to_dtype(descr).hasobject``; raises ``NotADtype`` where numpy raises."""
    return _descr(descr, 0)


def _descr(descr: object, depth: int) -> bool:
    """``numpy.lib.format.descr_to_dtype``."""
    if depth > MAX_NESTING:
        raise NotADtype("descriptor nested too deeply")
    if isinstance(descr, str):
        return _from_str(descr, depth + 1)
    if isinstance(descr, tuple):
        if len(descr) < 2:
            raise NotADtype("subarray descriptor needs a base and a shape")
        return _descr(descr[0], depth + 1)  # descr[1] is the subarray shape: it adds no objects
    try:
        fields = list(descr)  # type: ignore[call-overload]
    except TypeError:
        raise NotADtype(f"descriptor of type {type(descr).__name__}") from None
    found = False
    for field in fields:
        try:
            size = len(field)
        except TypeError:
            raise NotADtype("a field is not a sequence") from None
        if size == 2:
            _name, sub = field
        elif size == 3:
            _name, sub, _shape = field
        else:
            raise NotADtype("a field is not (name, descr) or (name, descr, shape)")
        found = _descr(sub, depth + 1) or found
    return found


def _from_str(text: str, depth: int) -> bool:
    """``_convert_from_str`` in numpy's ``descriptor.c``."""
    if depth > MAX_NESTING:
        raise NotADtype("descriptor nested too deeply")
    if not text:
        raise NotADtype("empty type string")
    if _is_commastring(text):
        return _from_commastring(text, depth + 1)
    original = text
    if text[0] in _BYTEORDER:
        text = text[1:]
        if not text:
            raise NotADtype("a byte order alone is not a type")
    if _is_datetime(text):
        return False
    if len(text) == 1:
        if text == _OBJECT_CHAR:
            return True
        if text in _TYPECHARS:
            return False
        return _named(original)
    size, consumed = _strtol(text, 1)
    if consumed == len(text):
        if size < 0:
            raise NotADtype(f"negative size in {original!r}")
        kind = text[0]
        if kind in "SaUV":
            return False
        if size != 0:
            if kind == _OBJECT_CHAR:
                if size in (4, 8):  # 'O4'/'O8': accepted (deprecated) as object
                    return True
            elif (kind, size) in _KIND_SIZES:
                return False
    return _named(original)


def _named(name: str) -> bool:
    """The ``sctypeDict`` lookup numpy falls back to, on the whole string (byte order included)."""
    if name in _OBJECT_NAMES:
        return True
    if name in _OTHER_NAMES:
        return False
    raise NotADtype(f"data type {name!r} not understood")


def _is_commastring(text: str) -> bool:
    """``_check_for_commastring``: a leading digit, a leading ``()``, or a comma outside ``[]``."""
    if text[0].isdigit() or (len(text) > 1 and text[0] in _BYTEORDER and text[1].isdigit()):
        return True
    if text[:2] == "()" or (len(text) > 3 and text[0] in _BYTEORDER and text[1:3] == "()"):
        return True
    brackets = 0
    for ch in text:
        if ch == "," and brackets == 0:
            return True
        if ch == "[":
            brackets += 1
        elif ch == "]":
            brackets -= 1
    return False


def _from_commastring(text: str, depth: int) -> bool:
    """``_commastring`` then ``np.dtype`` of each item (a type string or a ``(type, shape)`` pair)."""
    items = _commastring(text)
    if len(items) > 1 and items[-1] == ("", None):
        items.pop()  # 'u1,' and 'u1,<': numpy drops a trailing empty format
    found = False
    for dtype, repeats in items:
        if repeats is not None:
            try:
                ast.literal_eval(repeats)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                raise NotADtype(f"invalid repeat {repeats!r} in {text!r}") from None
        if not dtype:
            raise NotADtype(f"format in {text!r} has no type")
        found = _from_str(dtype, depth + 1) or found
    return found


def _commastring(text: str) -> list[tuple[str, str | None]]:
    start = 0
    items: list[tuple[str, str | None]] = []
    while start < len(text):
        match = _FORMAT_RE.match(text, pos=start)
        if match is None:
            raise NotADtype(f"format number {len(items) + 1} of {text!r} is not recognised")
        order1, repeats, order2, dtype = match.groups()
        start = match.end()
        if start < len(text):
            if _SPACE_RE.match(text, pos=start):
                start = len(text)
            else:
                sep = _SEP_RE.match(text, pos=start)
                if sep is None:
                    raise NotADtype(f"format number {len(items) + 1} of {text!r} is not recognised")
                start = sep.end()
        if order1 and order2 and _convorder(order1) != _convorder(order2):
            raise NotADtype(f"inconsistent byte orders in {text!r}")
        order = order2 or order1
        if order in ("|", "=", "<"):  # '<' is the native order on the little-endian hosts models load on
            order = ""
        items.append((order + dtype, repeats if repeats else None))
    return items


def _convorder(order: str) -> str:
    return {"=": "<", "|": "<"}.get(order, order)  # little-endian hosts: '=' is '<'


def _is_datetime(text: str) -> bool:
    return text.startswith(("M8", "m8", "datetime64", "timedelta64"))


def _strtol(text: str, pos: int) -> tuple[int, int]:
    """C ``strtol(text + pos, &end, 10)``: (value, index of end); end == pos when no digits."""
    i = pos
    while i < len(text) and text[i] in _SPACE:
        i += 1
    sign = 1
    if i < len(text) and text[i] in "+-":
        sign = -1 if text[i] == "-" else 1
        i += 1
    digits_start = i
    while i < len(text) and text[i] in "0123456789":
        i += 1
    if i == digits_start:
        return 0, pos
    return sign * int(text[digits_start:i]), i


# Single type characters numpy knows (besides 'O').
_TYPECHARS = frozenset("?bBhHiIlLqQnNpPefdgFDGSaUVMmcT")
# (kind, size) pairs PyArray_TypestrConvert maps to a type (besides 'O4'/'O8').
_KIND_SIZES = frozenset(
    [("b", 1)]
    + [(k, n) for k in "iu" for n in (1, 2, 4, 8)]
    + [("f", n) for n in (2, 4, 8, 10, 12, 16)]
    + [("c", n) for n in (8, 16, 20, 24, 32)]
    + [("M", 8), ("m", 8)]
)
# Other sctypeDict names (never objects); anything else is refused like numpy refuses it.
_OTHER_NAMES = frozenset(
    """bool bool_ bool8 byte ubyte short ushort intc uintc int_ uint long ulong longlong ulonglong half single
    double longdouble float16 float32 float64 float96 float128 csingle cdouble clongdouble complex64 complex128
    complex192 complex256 int8 int16 int32 int64 uint8 uint16 uint32 uint64 intp uintp float complex int str
    bytes bytes_ str_ unicode string_ unicode_ void void0 datetime64 timedelta64 a b1 i1 i2 i4 i8 u1 u2 u4 u8
    f2 f4 f8 c8 c16 Bytes0 Str0 Datetime64 Timedelta64 Float16 Float32 Float64 Complex64 Complex128
    Int8 Int16 Int32 Int64 UInt8 UInt16 UInt32 UInt64 float_ complex_ longfloat clongfloat singlecomplex
    longcomplex cfloat""".split()
)
