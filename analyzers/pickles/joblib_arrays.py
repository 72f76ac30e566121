"""joblib's inline arrays: how many bytes follow a ``NumpyArrayWrapper`` in the pickle stream.

``joblib.dump`` pickles each numpy array as a ``NumpyArrayWrapper`` (shape,
order, dtype, alignment) and writes the array's bytes right after the
wrapper's BUILD opcode: raw bytes (after one padding-length byte and that much
padding, joblib >= 1.2), or for object arrays a complete nested pickle stream.
``inline_data`` turns the wrapper's BUILD state into the directive the pickle
VM follows to step over those bytes, so a payload placed after an array is
still read. Compressed joblib files are decompressed by the archive stream
analyzers; their content reaches the pickle analyzer as an ordinary child.
"""

from __future__ import annotations

import re

from .numpy_dtypes import NotADtype, descr_has_objects
from .vm import Call, InlineBytes, InlinePickle

MAX_ARRAY_BYTES = 1 << 46
"""Array sizes above this (64 TiB) are treated as nonsense rather than skipped."""

_DIGITS = re.compile(r"(\d+)$")
_HASOBJECT = 0x01  # NPY_ITEM_HASOBJECT in the dtype state's flags


def inline_data(state: object) -> InlineBytes | InlinePickle | None:
    """What follows the BUILD of a wrapper with this state; None when it cannot be sized."""
    if type(state) is not dict:
        return None
    shape = state.get("shape")
    dtype = state.get("dtype")
    if type(shape) is not tuple or not all(type(n) is int and n >= 0 for n in shape):
        return None
    info = dtype_info(dtype)
    if info is None:
        return None
    itemsize, hasobject = info
    if hasobject:
        return InlinePickle()
    count = 1
    for n in shape:
        count *= n
    nbytes = count * itemsize
    if nbytes > MAX_ARRAY_BYTES:
        return None
    return InlineBytes(nbytes=nbytes, padded=state.get("numpy_array_alignment_bytes") is not None)


def dtype_info(dtype: object) -> tuple[int, bool] | None:
    """(itemsize, has objects) of a pickled ``numpy.dtype(descr, align, copy)`` with its BUILD state."""
    if type(dtype) is not Call or type(dtype.args) is not tuple or not dtype.args:
        return None
    descr = dtype.args[0]
    if type(descr) is not str:
        return None
    state = dtype.state if type(dtype.state) is tuple else ()
    try:
        hasobject = descr_has_objects(descr)
    except NotADtype:
        hasobject = descr.startswith("O")
    elsize = -1
    if len(state) >= 8:
        if type(state[7]) is int:
            hasobject = hasobject or bool(state[7] & _HASOBJECT)
        if type(state[5]) is int:
            elsize = state[5]
        fields = state[4]
        if type(fields) is dict:
            for value in fields.values():
                if type(value) is tuple and value and (dtype_info(value[0]) or (0, False))[1]:
                    hasobject = True
    if elsize > 0:
        return elsize, hasobject
    match = _DIGITS.search(descr)
    if match is None:
        return (8, True) if hasobject else None
    return int(match.group(1)), hasobject
