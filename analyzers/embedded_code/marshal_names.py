"""Names and strings a marshalled code object uses, read from the marshal format by hand.

``marshal.loads`` is never called: a marshalled code object from a model
(a Keras Lambda layer, a ``marshal.loads`` payload in a pickle) is walked
record by record (type byte, ``FLAG_REF`` references, the code-object field
layouts of CPython 3.7 to 3.14) to recover what the code names (``co_names``
of it and every nested code object) and the string constants it carries.

``code_names(data)`` returns the names (raising ``Malformed`` on garbage);
``dangerous_code_names(names)`` picks out the ones that mean process, shell,
network, native-code or dynamic-code access. The pickle analyzer uses the
latter for cloudpickle/dill functions too, whose code fields arrive unmarshalled.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ..core.walker import Malformed

MAX_DEPTH = 64
"""Nesting of containers and code objects followed before the data is called malformed."""
MAX_ITEMS = 1 << 20
"""Largest container length accepted."""

FLAG_REF = 0x80

DANGEROUS_NAMES = frozenset(
    {
        # processes and shells
        "system",
        "popen",
        "popen2",
        "popen3",
        "popen4",
        "spawnl",
        "spawnle",
        "spawnlp",
        "spawnlpe",
        "spawnv",
        "spawnve",
        "spawnvp",
        "spawnvpe",
        "execl",
        "execle",
        "execlp",
        "execlpe",
        "execv",
        "execve",
        "execvp",
        "execvpe",
        "fork",
        "forkpty",
        "posix_spawn",
        "posix_spawnp",
        "startfile",
        "subprocess",
        "Popen",
        "check_output",
        "check_call",
        "getoutput",
        "getstatusoutput",
        "pty",
        "_posixsubprocess",
        "fork_exec",
        # dynamic code
        "exec",
        "eval",
        "compile",
        "execfile",
        "__import__",
        "import_module",
        "marshal",
        "runpy",
        "run_path",
        "run_module",
        "__builtins__",
        "__globals__",
        "__subclasses__",
        "builtins",
        "pickle",
        "dill",
        "cloudpickle",
        # network
        "socket",
        "create_connection",
        "urlopen",
        "urlretrieve",
        "requests",
        "urllib",
        "http",
        "ftplib",
        "smtplib",
        "telnetlib",
        "paramiko",
        # native code
        "ctypes",
        "CDLL",
        "cdll",
        "windll",
        "cffi",
        "load_library",
        # destructive file operations
        "rmtree",
        "unlink",
        "chmod",
        "chown",
    }
)


@dataclass
class CodeInfo:
    """What one marshalled code object (and the code nested in its constants) uses."""

    name: str = ""
    names: list[str] = field(default_factory=list)  # co_names, nested code included, in first-seen order
    strings: list[str] = field(default_factory=list)  # str constants, nested code included
    functions: list[str] = field(default_factory=list)  # qualnames of nested code objects


class _Code:
    """A code object met inside another one (its own info is merged into the parent's)."""

    __slots__ = ("info",)

    def __init__(self, info: CodeInfo) -> None:
        self.info = info


_LAYOUTS: tuple[tuple[str, int, tuple[str, ...], tuple[str, ...]], ...] = (
    # (python versions, leading int32 fields, objects before firstlineno, objects after it)
    (
        "3.11+",
        5,
        ("code", "consts", "names", "localsplusnames", "localspluskinds", "filename", "name", "qualname"),
        ("linetable", "exceptiontable"),
    ),
    (
        "3.8-3.10",
        6,
        ("code", "consts", "names", "varnames", "freevars", "cellvars", "filename", "name"),
        ("linetable",),
    ),
    ("3.0-3.7", 5, ("code", "consts", "names", "varnames", "freevars", "cellvars", "filename", "name"), ("lnotab",)),
)
_EXPECT = {
    "code": bytes,
    "consts": tuple,
    "names": tuple,
    "localsplusnames": tuple,
    "localspluskinds": bytes,
    "varnames": tuple,
    "freevars": tuple,
    "cellvars": tuple,
    "filename": str,
    "name": str,
    "qualname": str,
    "linetable": bytes,
    "exceptiontable": bytes,
    "lnotab": bytes,
}


class _Bad(Exception):
    pass


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.refs: list[object] = []

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise _Bad(f"record runs past the end at offset {self.pos}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def i32(self) -> int:
        return struct.unpack("<i", self.take(4))[0]

    def count(self, n: int) -> int:
        if n < 0 or n > MAX_ITEMS:
            raise _Bad(f"implausible length {n} at offset {self.pos}")
        return n

    def obj(self, depth: int = 0) -> object:
        if depth > MAX_DEPTH:
            raise _Bad("nested too deeply")
        code = self.take(1)[0]
        flag = code & FLAG_REF
        t = chr(code & ~FLAG_REF)
        slot = -1
        if flag:
            slot = len(self.refs)
            self.refs.append(None)
        value: object
        if t == "0":
            raise _Bad(f"NULL record at offset {self.pos - 1}")
        elif t == "N":
            value = None
        elif t in "FT":
            value = t == "T"
        elif t in "S.":
            value = None
        elif t == "i":
            value = self.i32()
        elif t == "I":
            value = struct.unpack("<q", self.take(8))[0]
        elif t == "f":
            value = float(self.take(self.take(1)[0]) or b"0")
        elif t == "g":
            value = struct.unpack("<d", self.take(8))[0]
        elif t == "x":
            self.take(self.take(1)[0])
            self.take(self.take(1)[0])
            value = None
        elif t == "y":
            self.take(16)
            value = None
        elif t == "l":
            n = self.i32()
            self.take(2 * self.count(abs(n)))
            value = 0
        elif t == "s":
            value = self.take(self.count(self.i32()))
        elif t in "tuaA":
            value = self.take(self.count(self.i32())).decode("utf-8", "surrogatepass")
        elif t in "zZ":
            value = self.take(self.take(1)[0]).decode("latin-1")
        elif t == "r":
            index = self.i32()
            if not 0 <= index < len(self.refs) or self.refs[index] is None:
                raise _Bad(f"reference to unknown object {index}")
            return self.refs[index]
        elif t in "([<>":
            n = self.count(self.i32())
            value = tuple(self.obj(depth + 1) for _ in range(n))
        elif t == ")":
            n = self.take(1)[0]
            value = tuple(self.obj(depth + 1) for _ in range(n))
        elif t == "{":
            items = []
            while self.data[self.pos : self.pos + 1] != b"0":
                items.append(self.obj(depth + 1))
                items.append(self.obj(depth + 1))
                if len(items) > MAX_ITEMS:
                    raise _Bad("dict too large")
            self.take(1)
            value = tuple(items)
        elif t == ":":  # slice (marshal version 5)
            value = (self.obj(depth + 1), self.obj(depth + 1), self.obj(depth + 1))
        elif t == "c":
            value = self.code(depth + 1)
        else:
            raise _Bad(f"unknown marshal type {t!r} at offset {self.pos - 1}")
        if slot >= 0:
            self.refs[slot] = value
        return value

    def code(self, depth: int) -> _Code:
        start, nrefs = self.pos, len(self.refs)
        last: Exception | None = None
        for _label, ints, before, after in _LAYOUTS:
            self.pos = start
            del self.refs[nrefs:]
            try:
                return self._layout(ints, before, after, depth)
            except _Bad as exc:
                last = exc
        raise _Bad(f"code object at offset {start - 1} matches no known layout ({last})")

    def _layout(self, ints: int, before: tuple[str, ...], after: tuple[str, ...], depth: int) -> _Code:
        for _ in range(ints):
            self.i32()
        fields: dict[str, object] = {}
        for name in before:
            fields[name] = self._field(name, depth)
        self.i32()  # firstlineno
        for name in after:
            fields[name] = self._field(name, depth)
        info = CodeInfo(name=str(fields.get("qualname") or fields.get("name") or ""))
        for item in fields["names"]:  # type: ignore[attr-defined]
            if not isinstance(item, str):
                raise _Bad("co_names holds a non-string")
            _add(info.names, item)
        for const in _flatten(fields["consts"]):
            if isinstance(const, str):
                _add(info.strings, const)
            elif isinstance(const, _Code):
                nested = const.info
                _add(info.functions, nested.name)
                for n in nested.names:
                    _add(info.names, n)
                for s in nested.strings:
                    _add(info.strings, s)
                for f in nested.functions:
                    _add(info.functions, f)
        return _Code(info)

    def _field(self, name: str, depth: int) -> object:
        value = self.obj(depth)
        expected = _EXPECT[name]
        if expected is bytes and isinstance(value, str):
            return value  # some writers store byte fields as (short) ASCII
        if not isinstance(value, expected):
            raise _Bad(f"field {name} is {type(value).__name__}, not {expected.__name__}")
        return value


def _flatten(value: object) -> list[object]:
    out: list[object] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, tuple):
            stack.extend(reversed(item))
        else:
            out.append(item)
    return out


def _add(seq: list[str], item: str) -> None:
    if item not in seq:
        seq.append(item)


def parse_code(data: bytes) -> CodeInfo:
    """The names, string constants and nested functions of the code object marshalled in ``data``."""
    reader = _Reader(bytes(data))
    try:
        if not data or (data[0] & ~FLAG_REF) != ord("c"):
            raise _Bad("does not start with a code object")
        value = reader.obj()
    except (_Bad, UnicodeDecodeError, ValueError, struct.error) as exc:
        raise Malformed(f"not a marshalled code object: {exc}", reader.pos) from None
    assert isinstance(value, _Code)
    return value.info


def code_names(data: bytes) -> list[str]:
    """Every name (``co_names``) the marshalled code object in ``data`` and its nested code use."""
    return parse_code(data).names


def dangerous_code_names(names: list[str] | tuple[str, ...]) -> list[str]:
    """The names among ``names`` that mean process, shell, network, native or dynamic-code access."""
    return [n for n in dict.fromkeys(names) if n in DANGEROUS_NAMES]
