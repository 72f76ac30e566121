"""The pickle analyzer (``Kind.PICKLE``): what unpickling this would do, without unpickling it.

Every stream in the file runs through ``PickleVM`` (a second pickle after
STOP, the five pickles of a legacy torch file, joblib's inline arrays and
nested object-array streams). The listener below gives calls their meaning:

* every global is resolved and tiered by ``names`` (allowed, denied
  by category, standard-library or unknown, a dotted walk into another
  module, or a name that is not a literal);
* each call records its shape (REDUCE, NEWOBJ, OBJ, INST, BUILD/__setstate__,
  item assignment on objects) and its literal arguments for the message;
* names built at load time are followed (``getattr``, ``__import__``,
  ``attrgetter``/``methodcaller``, ``pkgutil.resolve_name``, ``partial``,
  ``copyreg`` reconstructors, ``copyreg`` extension codes);
* bytes handed to nested deserialisers or loaders (``pickle.loads``,
  ``torch.storage._load_from_bytes``, ``ConfigModule.load_config``,
  ``torch.load(io.BytesIO(...))``), base64/hex/zlib-wrapped or not, are
  decoded and walked as child artifacts;
* code rebuilt by cloudpickle/dill (or ``types.CodeType``/``marshal.loads``)
  is reported with the names it uses, and calling it during load is critical.

A stream that breaks or ends before STOP keeps the findings before the break
and marks the scan incomplete. Reads that cross a FRAME end are reported and
the file is scanned a second time the way frame-discarding readers see it.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import io
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from ..core.artifact import Artifact, OwnedSlice, read_exact
from ..core.budget import BudgetExceeded, MiB
from ..core.findings import Finding, Rule, Severity
from ..core.kinds import DATA_KINDS, SNIFF_BYTES, Kind, sniff
from ..core.records import TYPE_CHECKING
from ..core.registry import Probe, register, register_probe
from ..core.walker import Malformed, ScanContext
from ..embedded_code.marshal_names import CodeInfo, dangerous_code_names, parse_code
from .names import KNOWN_NAMES, Resolution, Tier, classify
from .packs import ANALYZER, CATEGORY_RULES, Behaviour, Category
from .pytorch import StreamPlan, stream_plan
from .vm import (
    MORE,
    PICKLE_STARTS,
    UNTRACKED,
    Big,
    Call,
    Events,
    FrameCut,
    Global,
    InlineBytes,
    InlinePickle,
    PickleVM,
    StreamResult,
    render,
    render_args,
)

if TYPE_CHECKING:
    from typing import BinaryIO

UNKNOWN_STDLIB = Rule(
    "MLG-PKL-011", Severity.HIGH, "Pickle uses a standard-library global outside the allowlist", ANALYZER
)
UNKNOWN_GLOBAL = Rule("MLG-PKL-012", Severity.MEDIUM, "Pickle uses a global that no allowlist pack knows", ANALYZER)
CROSSING = Rule("MLG-PKL-013", Severity.HIGH, "Pickle global name walks through another module", ANALYZER)
UNRESOLVED = Rule("MLG-PKL-014", Severity.HIGH, "Pickle imports a name that is not a literal", ANALYZER)
MUTATES_GLOBAL = Rule("MLG-PKL-015", Severity.HIGH, "Pickle changes a class, module or function itself", ANALYZER)
CALLS_RESULT = Rule("MLG-PKL-016", Severity.HIGH, "Pickle calls an object built during loading", ANALYZER)
CODE_OBJECT = Rule("MLG-PKL-017", Severity.MEDIUM, "Pickle carries Python code (cloudpickle, dill, CodeType)", ANALYZER)
RUNS_CODE = Rule("MLG-PKL-018", Severity.CRITICAL, "Pickle runs pickled Python code while loading", ANALYZER)
NESTED_SCANNED = Rule("MLG-PKL-019", Severity.HIGH, "Pickle unpickles embedded data (scanned as a child)", ANALYZER)
FRAME = Rule("MLG-PKL-020", Severity.HIGH, "Pickle FRAME boundaries that loaders read differently", ANALYZER)
STREAMS = Rule("MLG-PKL-021", Severity.LOW, "File holds several pickle streams", ANALYZER)
TRAILING = Rule("MLG-PKL-022", Severity.MEDIUM, "Data after the last pickle stream", ANALYZER)
BROKEN = Rule("MLG-PKL-023", Severity.MEDIUM, "Pickle stream breaks or ends before STOP", ANALYZER, incomplete=True)
UNTRACKED_NAME = Rule(
    "MLG-PKL-024", Severity.MEDIUM, "Pickle value needed for a name was dropped by a budget", ANALYZER, incomplete=True
)
STRUCTURE = Rule("MLG-PKL-025", Severity.MEDIUM, "Pickle structure no standard pickler writes", ANALYZER)
FX_SOURCE = Rule(
    "MLG-PKL-027", Severity.CRITICAL, "torch.fx GraphModule source that torch would not generate runs at load", ANALYZER
)
CALLS_UNKNOWN = Rule(
    "MLG-PKL-026",
    Severity.HIGH,
    "Pickle calls a function, method or class no allowlist pack knows, with arguments from the file",
    ANALYZER,
)

CALLS_REPORTED = 8
"""Distinct calls reported per denied global per file (the rest are counted)."""
KEEP_ARGS = 16
"""Arguments (and items of list/tuple arguments) examined for code, shell lines, paths and URLs."""
_CALL_SHAPES = frozenset({"REDUCE", "INST", "OBJ"})
"""Opcodes that call the global itself (a function runs, a class's __new__ and __init__ run)."""
_NEW_SHAPES = frozenset({"NEWOBJ", "NEWOBJ_EX"})
"""Opcodes that run only ``cls.__new__(cls, *args)``: a call when the file passes arguments."""
MAX_DECODED = 64 * MiB
"""Largest payload decoded from a literal (base64, zlib...) to scan it."""
MAX_CUT_PASSES = 4
MAX_PIDS = 1 << 20
"""Persistent ids kept per file (legacy torch files list one per storage)."""
"""Alternative readings scanned for frames that readers disagree on."""

_BENIGN_NESTED = frozenset({("torch.storage", "_load_from_bytes")})
"""Nested loaders that real files use for plain data: no finding when every payload was scanned."""
_KEEP_CALLS = frozenset({("numpy", "dtype")})
"""Allowed callables whose calls are kept with arguments and state (joblib needs dtype details)."""
_REBUILT_TYPES: dict[str, Behaviour | None] = {
    "CodeType": Behaviour.CODE,
    "FunctionType": Behaviour.FUNCTION,
    "LambdaType": Behaviour.FUNCTION,
    "MethodType": None,
    "ModuleType": None,
    "CellType": None,
    "SimpleNamespace": None,
    "MappingProxyType": None,
}
"""``types`` members cloudpickle/dill rebuild objects with (code is reported as MLG-PKL-017 instead)."""
_IMPORT_SIDE_EFFECTS = frozenset({Category.HIDDEN_SHELL, Category.SCANNER})
"""Denied categories whose mere import (cloudpickle ``subimport``) is already reported."""
_TEXT_CODECS = frozenset(
    {
        "latin1",
        "latin-1",
        "latin_1",
        "iso-8859-1",
        "iso8859-1",
        "l1",
        "utf-8",
        "utf8",
        "utf_8",
        "ascii",
        "us-ascii",
        "raw_unicode_escape",
        "unicode_escape",
    }
)
_BYTES_CODECS = frozenset(
    {
        "base64",
        "base_64",
        "base64_codec",
        "hex",
        "hex_codec",
        "zlib",
        "zip",
        "zlib_codec",
        "bz2",
        "bz2_codec",
        "rot13",
        "rot_13",
        "uu",
        "uu_codec",
        "quopri",
        "quopri_codec",
    }
)


class Instance:
    """An object of an allowlisted class: nothing about it can matter later."""

    __slots__ = ("glob",)

    def __init__(self, glob: Global) -> None:
        self.glob = glob

    def __repr__(self) -> str:
        return f"<{self.glob.dotted()} object>"


@dataclass
class _Special:
    """What a call result is, when it behaves: a partial, a getter, rebuilt code or a function."""

    kind: str  # "partial" | "attrgetter" | "methodcaller" | "code" | "function"
    target: object = None  # partial: the wrapped callable
    args: tuple[object, ...] = ()  # partial/methodcaller: stored arguments; attrgetter: names
    code: CodeInfo | None = None
    builder: str = ""


@dataclass
class _CallRecord:
    shape: str
    text: str
    offset: int
    note: str = ""  # nested payload outcome, code names...
    lookup: str = ""  # getattr(allowed global, name) that resolved to this allowed name
    called: bool = False  # the global itself runs with the file's arguments (not only reconstructed)
    danger: str = ""  # why an argument looks like code, a shell line, a sensitive path or a URL


@dataclass
class _Use:
    """Every use of one global name in the file."""

    resolution: Resolution
    written: str
    offset: int
    count: int = 0
    quiet: bool = False  # reached through an allowed rebuild helper: reported with its code, not alone
    calls: list[_CallRecord] = field(default_factory=list)
    more_calls: int = 0
    nested: list[str] = field(default_factory=list)  # outcomes of payloads handed to a nested loader


@dataclass
class _Payload:
    label: str
    offset: int
    data: bytes | None = None
    big: Big | None = None


class _Listener(Events):
    """Turns VM events into uses, calls and findings for one artifact (one reading of it)."""

    def __init__(self, scan: _Scan, reading: str = "", offset_map: Callable[[int], int] | None = None) -> None:
        self.scan = scan
        self.reading = reading  # "" for the straight reading, else how this reading differs
        self.map = offset_map or (lambda offset: offset)
        self.uses: dict[tuple[str, str], _Use] = {}
        self.findings: list[Finding] = []
        self.anomalies: dict[tuple[str, str], int] = {}
        self.payloads: list[_Payload] = []
        self.registry: dict[int, tuple[str, str]] = {}
        self.pids: list[object] = []  # persistent ids, for plans that size raw data after the pickles

    def persistent(self, pid: object, offset: int) -> object:
        if len(self.pids) < MAX_PIDS:
            self.pids.append(pid)
        return super().persistent(pid, offset)

    # -- names -------------------------------------------------------------------------------
    def global_ref(self, module: str | None, name: str | None, offset: int, opcode: str, proto: int) -> object:
        res = classify(module, name)
        glob = Global(module, name, offset, opcode)
        glob.info = res
        self._use(res, _written(glob), offset)
        return glob

    def _use(self, res: Resolution, written: str, offset: int, quiet: bool = False) -> _Use:
        key = (res.dotted, written)
        use = self.uses.get(key)
        if use is None:
            use = self.uses[key] = _Use(res, written, self.map(offset), quiet=quiet)
        elif not quiet:
            use.quiet = False
        use.count += 1
        return use

    def _resolved(self, module: str | None, name: str | None, offset: int, how: str, quiet: bool = False) -> Global:
        """A global built at load time (getattr, import, resolve_name...)."""
        res = classify(module, name)
        if quiet and res.module == "types" and res.name in _REBUILT_TYPES:
            res = Resolution(
                res.module,
                res.name,
                Tier.ALLOWED,
                reason="type rebuilt by cloudpickle/dill",
                behaviour=_REBUILT_TYPES[res.name],
            )
        glob = Global(module, name, offset, how if module is not None else f"{how} of a computed name")
        glob.info = res
        self._use(res, _written(glob), offset, quiet)
        return glob

    def computed_global(self, module: object, name: object, offset: int, proto: int) -> object:
        mod, nam = self.scan.evaluate(module), self.scan.evaluate(name)
        if type(mod) is str and type(nam) is str:
            return self._resolved(mod, nam, offset, "STACK_GLOBAL of computed strings")
        glob = Global(None, None, offset, f"STACK_GLOBAL({render(module, 60)}, {render(name, 60)})")
        glob.info = classify(None, None)
        self._use(glob.info, _written(glob), offset)
        return glob

    def ext(self, code: int, offset: int) -> object:
        target = self.registry.get(code)
        if target is not None:
            return self._resolved(target[0], target[1], offset, f"EXT code {code}")
        glob = Global(None, None, offset, f"EXT code {code}")
        glob.info = Resolution(
            None,
            None,
            Tier.UNRESOLVED,
            reason="an entry of the loading program's copyreg extension registry (empty unless that program "
            "registered codes): what it imports cannot be known",
        )
        self._use(glob.info, _written(glob), offset)
        return glob

    # -- calls -------------------------------------------------------------------------------
    def call(self, shape: str, func: object, args: object, kwargs: object, offset: int) -> object:
        t = type(func)
        if t is Global:
            return self._call_global(shape, func, args, kwargs, offset)  # type: ignore[arg-type]
        if t is Call:
            return self._call_result(shape, func, args, kwargs, offset)  # type: ignore[arg-type]
        where = self.map(offset)
        if t is Instance:
            self._add(
                CALLS_RESULT.finding(
                    self._at(where),
                    f"{shape} calls an {func!r} built earlier in the pickle with "
                    f"({render_args(args, kwargs)}): its class's __call__ runs",
                )
            )
        elif func is UNTRACKED:
            self._add(
                UNTRACKED_NAME.finding(
                    self._at(where), f"{shape} calls a value dropped by the memo budget: what runs cannot be known"
                )
            )
        else:
            self._anomaly(
                "call",
                offset,
                f"{shape} at offset {where} calls {render(func, 60)}, which is not callable: loaders fail here",
            )
        return Call(func, args, kwargs, shape, offset)

    def _call_global(self, shape: str, func: Global, args: object, kwargs: object, offset: int) -> object:
        res: Resolution = func.info  # type: ignore[assignment]
        behaviour = res.behaviour
        if res.tier is Tier.ALLOWED and behaviour is None and (res.module, res.name) not in _KEEP_CALLS:
            return Instance(func)
        result = Call(func, args, kwargs, shape, offset)
        record = None
        if res.tier is not Tier.ALLOWED:
            record = self._record(res, func, shape, args, kwargs, offset)
        if behaviour is not None:
            special = self._behave(behaviour, res, func, result, args, kwargs, offset, record)
            if special is not None:
                return special
        return result

    def _record(
        self, res: Resolution, func: Global, shape: str, args: object, kwargs: object, offset: int
    ) -> _CallRecord | None:
        written = _written(func)
        use = self.uses.get((res.dotted, written)) or self._use(res, written, offset)
        use.quiet = False
        text = (
            render(args, 200)
            if shape in ("BUILD", "SETITEM", "SETITEMS", "APPEND", "APPENDS", "ADDITEMS")
            else render_args(args, kwargs, 200)
        )
        for existing in use.calls:
            if existing.shape == shape and existing.text == text:
                return existing
        if len(use.calls) >= CALLS_REPORTED:
            use.more_calls += 1
            return None
        called = _is_call(shape, res, args, kwargs)
        danger = self._danger(args, kwargs) if called and res.tier is not Tier.DENIED else ""
        record = _CallRecord(shape, text, self.map(offset), called=called, danger=danger)
        use.calls.append(record)
        return record

    def _danger(self, args: object, kwargs: object) -> str:
        """Why one of the literal arguments looks like code, a shell line, a sensitive path or a URL ("" if none)."""
        values: list[object] = list(args) if type(args) is tuple else [args]
        if type(kwargs) is dict:
            values.extend(v for k, v in kwargs.items() if k is not MORE)
        for value in values[:KEEP_ARGS]:
            items = list(value)[:KEEP_ARGS] if type(value) in (list, tuple) else [value]
            for item in items:
                literal = self.scan.evaluate(item)
                if type(literal) is bytes:
                    literal = literal[:4096].decode("latin-1")
                if type(literal) is str:
                    from .evidence import risky_text  # loaded by the first call a pack does not allow

                    why = risky_text(literal)
                    if why:
                        return why
        return ""

    def _behave(
        self,
        behaviour: Behaviour,
        res: Resolution,
        func: Global,
        result: Call,
        args: object,
        kwargs: object,
        offset: int,
        record: _CallRecord | None,
    ) -> object:
        argv = args if type(args) is tuple else ()
        quiet = res.tier is Tier.ALLOWED
        if behaviour is Behaviour.GETATTR and len(argv) >= 2:
            looked_up = self._getattr(argv[0], self.scan.evaluate(argv[1]), offset)
            owner, found = getattr(argv[0], "info", None), looked_up.info
            if (
                record is not None
                and type(argv[0]) is Global
                and isinstance(owner, Resolution)
                and owner.tier is Tier.ALLOWED
                and isinstance(found, Resolution)
                and found.tier is Tier.ALLOWED
            ):
                record.lookup = found.dotted  # how pickle stores a bound classmethod: reduce -> getattr(cls, name)
            return looked_up
        if behaviour is Behaviour.IMPORT and argv:
            name = self.scan.evaluate(argv[0])
            if type(name) is str:
                return self._resolved(name, "", offset, f"{res.dotted}()", quiet=quiet)
            return self._resolved(None, None, offset, f"{res.dotted}()")
        if behaviour is Behaviour.RESOLVE and argv:
            return self._resolve(res, argv, offset)
        if behaviour is Behaviour.ATTRGETTER:
            kind = "methodcaller" if res.name == "methodcaller" else "attrgetter"
            result.info = _Special(kind, args=tuple(self.scan.evaluate(a) for a in argv))
            return result
        if behaviour is Behaviour.PARTIAL and argv:
            result.info = _Special("partial", target=argv[0], args=tuple(argv[1:]))
            return result
        if behaviour is Behaviour.RECONSTRUCTOR and len(argv) >= 2:
            cls, base = argv[0], argv[1]
            if type(base) is Global and base.dotted() not in ("builtins.object", "__builtin__.object"):
                self.call("REDUCE", base, tuple(argv[2:]), None, offset)  # base.__init__(obj, state)
            return self.call("NEWOBJ", cls, (), None, offset)
        if behaviour is Behaviour.NEWOBJ and argv:
            return self.call("NEWOBJ", argv[0], tuple(argv[1:]), kwargs, offset)
        if behaviour in (Behaviour.NESTED, Behaviour.LOADER):
            self._nested(res, func, argv, kwargs, offset, record)
            return None
        builder = func.opcode if func.opcode not in ("GLOBAL", "STACK_GLOBAL", "INST") else res.dotted
        if behaviour is Behaviour.CODE:
            code = code_from_fields(argv)
            if code is not None:
                result.info = _Special("code", code=code, builder=builder)
                self._code_finding(code, builder, offset)
            return result
        if behaviour is Behaviour.FUNCTION and argv:
            code = argv[0].info.code if type(argv[0]) is Call and type(argv[0].info) is _Special else None
            result.info = _Special("function", code=code, builder=builder)
            return result
        if behaviour is Behaviour.MARSHAL and argv:
            data = self.scan.evaluate(argv[0])
            if type(data) is bytes:
                try:
                    code = parse_code(data)
                except Malformed:
                    code = None
                if code is not None:
                    result.info = _Special("code", code=code, builder=res.dotted)
                    if record is not None:
                        record.note = _code_note(code)
            return result
        if behaviour is Behaviour.FX_CODE:
            self._fx_code(res, argv, offset)
            return result
        if behaviour is Behaviour.EXTENSION and len(argv) >= 3:
            module, name, code = (self.scan.evaluate(a) for a in argv[:3])
            if type(module) is str and type(name) is str and type(code) is int:
                self.registry[code] = (module, name)
        return None

    def _fx_code(self, res: Resolution, argv: tuple[object, ...], offset: int) -> None:
        """reduce_graph_module(body, import_block) compiles and runs import_block + body["_code"]."""
        body = argv[0] if argv else None
        code = None
        if type(body) is dict:
            code = self.scan.evaluate(body.get("_code") or body.get("code"))
        imports = self.scan.evaluate(argv[1]) if len(argv) > 1 else None
        if type(code) is not str or type(imports) is not str:
            problem = "its source is not literal text this scan can read"
        else:
            from .fx_code import fx_source_problem

            problem = fx_source_problem(imports, code)
        if problem:
            shown = f": {render(code, 160)}" if type(code) is str else ""
            self._add(
                FX_SOURCE.finding(
                    self._at(self.map(offset)),
                    f"{res.dotted} compiles and runs the GraphModule's Python source when unpickled, and that source "
                    f"is not what torch.fx generates ({problem}){shown}",
                )
            )

    def _getattr(self, obj: object, name: object, offset: int) -> Global:
        if type(name) is not str:
            return self._resolved(None, None, offset, "getattr")
        if type(obj) is Global and obj.module is not None and obj.name is not None:
            res: Resolution = obj.info  # type: ignore[assignment]
            module = res.module if res.module is not None else obj.module
            base = res.name if res.name is not None else obj.name
            return self._resolved(module, f"{base}.{name}" if base else name, offset, "getattr")
        if type(obj) in (Call, Instance):
            cls = obj.glob if type(obj) is Instance else obj.func  # type: ignore[union-attr]
            if type(cls) is Global and cls.module is not None and cls.name:
                return self._resolved(cls.module, f"{cls.name}.{name}", offset, "getattr on an instance")
        return self._resolved(None, None, offset, "getattr")

    def _resolve(self, res: Resolution, argv: tuple[object, ...], offset: int) -> Global:
        values = [self.scan.evaluate(a) for a in argv]
        if res.name in ("_builtin_type", "_load_type"):
            return (
                self._resolved("types", values[0], offset, res.dotted, quiet=True)
                if type(values[0]) is str
                else self._resolved(None, None, offset, res.dotted)
            )
        if len(values) >= 2 and type(values[0]) is str and type(values[1]) is str:
            return self._resolved(values[0], values[1], offset, res.dotted)
        path = values[0]
        if type(path) is not str or not path:
            return self._resolved(None, None, offset, res.dotted)
        if ":" in path:
            module, _, name = path.partition(":")
        else:
            module, _, name = path.partition(".")
        return self._resolved(module, name, offset, res.dotted)

    def _call_result(self, shape: str, func: Call, args: object, kwargs: object, offset: int) -> object:
        special = func.info if type(func.info) is _Special else None
        argv = args if type(args) is tuple else ()
        if special is not None and special.kind == "partial":
            merged = special.args + tuple(argv)
            return self.call(shape, special.target, merged, kwargs, offset)
        if special is not None and special.kind in ("attrgetter", "methodcaller") and argv:
            names = special.args[:1] if special.kind == "methodcaller" else special.args
            target: object = argv[0]
            for name in names:
                for part in str(name).split(".") if type(name) is str else [None]:
                    target = self._getattr(target, part, offset)
            if special.kind == "methodcaller":
                return self.call(shape, target, tuple(special.args[1:]), kwargs, offset)
            return target
        where = self.map(offset)
        if special is not None and special.kind == "function":
            code = special.code
            names = f" (its code uses {', '.join(code.names[:12])})" if code and code.names else ""
            self._add(
                RUNS_CODE.finding(
                    self._at(where),
                    f"pickled function rebuilt by {special.builder} is called while loading with "
                    f"({render_args(args, kwargs)}){names}: arbitrary Python code runs",
                )
            )
            return Call(func, args, kwargs, shape, offset)
        root = _root(func)
        self._add(
            CALLS_RESULT.finding(
                self._at(where),
                f"{shape} calls the object returned by {render(root, 80)}(...) with ({render_args(args, kwargs)})",
            )
        )
        return Call(func, args, kwargs, shape, offset)

    # -- mutations ---------------------------------------------------------------------------
    def mutate(self, shape: str, target: object, payload: object, offset: int) -> InlineBytes | InlinePickle | None:
        t = type(target)
        if t is Global:
            res: Resolution = target.info  # type: ignore[union-attr,assignment]
            self._add(
                MUTATES_GLOBAL.finding(
                    self._at(self.map(offset)),
                    f"{shape} applies {render(payload, 120)} to {res.dotted} itself (a class, module or function, "
                    f"not an instance): this rewrites it for the whole loading program",
                )
            )
            return None
        if t is not Call:
            return None
        func = target.func  # type: ignore[union-attr]
        special = target.info if type(target.info) is _Special else None  # type: ignore[union-attr]
        if shape == "BUILD":
            target.state = payload  # type: ignore[union-attr]
            if special is not None and special.kind == "partial" and type(payload) is tuple and payload:
                special.target = payload[0]  # partial.__setstate__((func, args, kwds, dict))
                if len(payload) > 1 and type(payload[1]) is tuple:
                    special.args = payload[1]
        if type(func) is Global:
            res = func.info  # type: ignore[assignment]
            if res.tier is not Tier.ALLOWED:
                self._record(res, func, shape, payload, None, offset)
            elif res.behaviour is Behaviour.ARRAY_WRAPPER and shape == "BUILD":
                from .joblib_arrays import inline_data  # joblib pickles only

                directive = inline_data(payload)
                if directive is None:
                    self._anomaly(
                        "joblib",
                        offset,
                        f"joblib array wrapper at offset {self.map(offset)} has a shape "
                        "or dtype mlgate cannot size; its data cannot be stepped over",
                    )
                return directive
        return None

    def anomaly(self, kind: str, offset: int, detail: str) -> None:
        self._anomaly(kind, offset, detail)

    def _anomaly(self, kind: str, offset: int, detail: str) -> None:
        self.anomalies.setdefault((kind, detail), self.map(offset))

    # -- nested payloads ---------------------------------------------------------------------
    def _nested(
        self,
        res: Resolution,
        func: Global,
        argv: tuple[object, ...],
        kwargs: object,
        offset: int,
        record: _CallRecord | None,
    ) -> None:
        candidates = list(argv)
        if type(kwargs) is dict:
            candidates.extend(v for k, v in kwargs.items() if k is not MORE)
        outcomes = []
        for value in candidates:
            payload = self.scan.evaluate(value)
            if type(payload) is bytes:
                kind = sniff(payload[:SNIFF_BYTES])
                if kind in DATA_KINDS and payload[:1] and payload[0] not in PICKLE_STARTS:
                    outcomes.append(f"payload of {len(payload)} bytes is no format mlgate can scan")
                    continue
                self.payloads.append(
                    _Payload(f"{res.name or res.module}@{self.map(offset)}", self.map(offset), data=payload)
                )
                outcomes.append("scanned")
            elif type(payload) is Big and payload.kind in ("bytes", "bytearray") and not self.reading:
                if sniff(payload.head) in DATA_KINDS and payload.head[:1] and payload.head[0] not in PICKLE_STARTS:
                    outcomes.append(f"payload of {payload.length} bytes is no format mlgate can scan")
                    continue
                self.payloads.append(
                    _Payload(f"{res.name or res.module}@{self.map(offset)}", self.map(offset), big=payload)
                )
                outcomes.append("scanned")
            elif type(payload) is str and res.behaviour is Behaviour.LOADER:
                outcomes.append(f"loads the file {payload!r}, which this scan cannot see")
        if not outcomes:
            outcomes.append("its argument is not literal data, so what it loads cannot be scanned")
        written = _written(func)
        use = self.uses.get((res.dotted, written)) or self._use(res, written, offset)
        use.nested.extend(outcomes)
        if record is not None:
            record.note = "; ".join(dict.fromkeys(outcomes))

    def _code_finding(self, code: CodeInfo, builder: str, offset: int) -> None:
        danger = dangerous_code_names(code.names)
        names = ", ".join(code.names[:16]) or "no global names"
        message = (
            f"pickled Python code {code.name or '<code>'} (rebuilt by {builder}) runs when the model calls it; "
            f"it uses {names}"
        )
        if danger:
            message += f" including {', '.join(danger)} (process, shell, network or dynamic-code access)"
        self._add(
            CODE_OBJECT.finding(self._at(self.map(offset)), message, severity=Severity.CRITICAL if danger else None)
        )

    # -- findings ----------------------------------------------------------------------------
    def _at(self, offset: int) -> str:
        return self.scan.artifact.at(offset)

    def _add(self, finding: Finding) -> None:
        self.findings.append(finding)

    def report(self) -> list[Finding]:
        """Every finding of this reading: calls, uses, code, anomalies (deduplicated)."""
        out = list(self.findings)
        for use in self.uses.values():
            out.extend(_use_findings(use, self._at))
        for (kind, detail), offset in self.anomalies.items():
            rule = {"frame": FRAME, "untracked": UNTRACKED_NAME}.get(kind, STRUCTURE)
            out.append(rule.finding(self._at(offset), detail))
        if self.reading:
            out = [replace(f, message=f"{f.message} ({self.reading})") for f in out]
        return out


def _written(glob: Global) -> str:
    """How a global was written in the pickle (or built: ``EXT code 3``, ``STACK_GLOBAL(...)``)."""
    if glob.module is None or glob.name is None:
        return glob.opcode
    return f"{glob.module}.{glob.name}" if glob.name else glob.module


def _root(value: object) -> object:
    for _ in range(32):
        if type(value) is Call:
            value = value.func  # type: ignore[union-attr]
        elif type(value) is Instance:
            return value.glob  # type: ignore[union-attr]
        else:
            break
    return value


def _code_note(code: CodeInfo) -> str:
    danger = dangerous_code_names(code.names)
    text = f"code using {', '.join(code.names[:12]) or 'no global names'}"
    return text + (f"; dangerous: {', '.join(danger)}" if danger else "")


_VERBS = {
    "REDUCE": "call to {f}({a})",
    "INST": "call to {f}({a}) via INST",
    "OBJ": "call to {f}({a}) via OBJ",
    "NEWOBJ": "{f}.__new__({a}) via NEWOBJ",
    "NEWOBJ_EX": "{f}.__new__({a}) via NEWOBJ_EX",
    "BUILD": "{f}.__setstate__({a}) via BUILD",
    "SETITEM": "item assignment on a {f} object via SETITEM ({a})",
    "SETITEMS": "item assignment on a {f} object via SETITEMS ({a})",
    "APPEND": "append to a {f} object via APPEND ({a})",
    "APPENDS": "extend of a {f} object via APPENDS ({a})",
    "ADDITEMS": "add to a {f} object via ADDITEMS ({a})",
}


def _describe(record: _CallRecord, dotted: str) -> str:
    return _VERBS.get(record.shape, "{f}({a}) via " + record.shape).format(f=dotted, a=record.text)


def _use_findings(use: _Use, at: Callable[[int], str]) -> list[Finding]:
    res = use.resolution
    if res.tier is Tier.ALLOWED or (use.quiet and not use.calls and res.category not in _IMPORT_SIDE_EFFECTS):
        return []
    dotted = res.dotted
    via = f" (written as {use.written})" if use.written != dotted else ""
    if res.tier is Tier.DENIED:
        assert res.category is not None
        rule = CATEGORY_RULES[res.category]
        note = f" [{res.reason}]" if res.reason else ""
        if use.nested and all(o == "scanned" for o in use.nested):
            if (res.module, res.name) in _BENIGN_NESTED:
                return []
            first = use.calls[0] if use.calls else None
            return [
                NESTED_SCANNED.finding(
                    at(first.offset if first else use.offset),
                    f"{dotted} unpickles data embedded in this pickle while loading{via}; the embedded data was "
                    f"decoded and scanned as a child artifact",
                )
            ]
        if not use.calls:
            return [
                rule.finding(
                    at(use.offset),
                    f"reference to {dotted} ({res.category.value}) when unpickled{via}"
                    f"{note}: importing it is enough to hand it to other calls",
                )
            ]
        if use.calls and not use.more_calls and all(record.lookup for record in use.calls):
            return [
                rule.finding(
                    at(record.offset),
                    f"{_describe(record, dotted)} when unpickled{via}: looks up {record.lookup}, an allowlisted "
                    "name, on an allowlisted class (how pickle stores a bound classmethod such as "
                    "ZoneInfo._unpickle); no name is computed",
                    severity=Severity.LOW,
                )
                for record in use.calls
            ]
        out = []
        for i, record in enumerate(use.calls):
            message = f"{_describe(record, dotted)} when unpickled{via}{note}"
            if record.note:
                message += f"; {record.note}"
            if i == len(use.calls) - 1 and use.more_calls:
                message += f" (and {use.more_calls} more calls)"
            out.append(rule.finding(at(record.offset), message))
        return out
    calls = [r for r in use.calls if r.called]
    first = calls[0] if calls else (use.calls[0] if use.calls else None)
    if first is None:
        detail = ""
    elif res.module is None:
        detail = f"; called via {first.shape} with ({first.text})"
    else:
        shown = calls[:3] + [r for r in use.calls if not r.called][: max(0, 3 - len(calls))]
        detail = "".join(f"; {_describe(r, dotted)}" for r in shown)
    uses = f" ({use.count} uses)" if use.count > 1 else ""
    where = at(first.offset if first else use.offset)
    danger = next((r.danger for r in calls if r.danger), "")
    raised = Severity.CRITICAL if danger else None
    why = _why(res, calls, danger)
    if res.tier is Tier.STDLIB:
        return [
            UNKNOWN_STDLIB.finding(
                where,
                f"standard-library global {dotted} is not in any allowlist pack{via}"
                f"{detail}{uses}: stdlib helpers are the usual scanner bypass{why}",
                severity=raised,
            )
        ]
    if res.tier is Tier.CROSSING:
        return [CROSSING.finding(where, f"{use.written}: {res.reason}{detail}{uses}{why}", severity=raised)]
    if res.tier is Tier.UNRESOLVED:
        return [UNRESOLVED.finding(where, f"{use.written}: {res.reason}{detail}{why}", severity=raised)]
    if calls:
        kind = "method" if "." in (res.name or "") else "callable"
        return [
            CALLS_UNKNOWN.finding(
                where,
                f"unknown {kind} {dotted}{via} is called while unpickling{detail}{uses}: no allowlist pack "
                f"vouches for it, so what it does with these arguments is unknown{why}",
                severity=raised,
                code_module="" if danger else res.module or "",  # shipped with the model: scanned there
            )
        ]
    return [
        UNKNOWN_GLOBAL.finding(
            where,
            f"unknown global {dotted}{via}{detail}{uses}: "
            + (
                "only reconstructed (its __new__ without arguments from the file and/or plain state set by BUILD), "
                "never called, so medium; "
                if use.calls
                else "only referenced, never called, so medium; "
            )
            + "importing its module still runs that module's code: review it or add it to a pack",
            code_module=res.module or "",
        )
    ]


def _is_call(shape: str, res: Resolution, args: object, kwargs: object) -> bool:
    """Whether ``shape`` runs the global itself with what the file chose, rather than rebuilding an object.

    REDUCE, INST and OBJ call it (a function runs; a class runs ``__new__`` and ``__init__``).
    NEWOBJ/NEWOBJ_EX run only ``__new__``: a call when the file passes arguments. A dotted name
    (``Class.method``) is a method: any call shape runs that method. BUILD and item assignment on
    an object of the class set plain state.
    """
    if shape in _CALL_SHAPES:
        return True
    if shape in _NEW_SHAPES:
        has_args = (type(args) is tuple and len(args) > 0) or (type(kwargs) is dict and len(kwargs) > 0)
        return has_args or "." in (res.name or "")
    return False


def _why(res: Resolution, calls: list[_CallRecord], danger: str) -> str:
    """The reason for the severity, appended to every message of a non-denied global."""
    if not calls:
        return ""
    if danger:
        return f" ({danger}, so critical)"
    if "." in (res.name or ""):
        return " (a dotted name is a method of the class reached, called with the file's arguments, so high)"
    return " (called with arguments the file chose, so high)"


def code_from_fields(args: tuple[object, ...]) -> CodeInfo | None:
    """Names and strings of a code object rebuilt from its constructor fields (CodeType, cloudpickle, dill)."""
    if not args:
        return None
    start = 0 if type(args[0]) is int else 1  # dill puts co_lnotab first
    for i in range(start + 3, min(len(args) - 2, start + 9)):
        if type(args[i]) in (bytes, str, Big) and type(args[i + 1]) is tuple and type(args[i + 2]) is tuple:
            consts, names = args[i + 1], args[i + 2]
            break
    else:
        return None
    # after names: varnames, filename, name, then qualname (3.11+) or firstlineno (older)
    tail = args[i + 3 : i + 7]
    name = tail[3] if len(tail) > 3 and type(tail[3]) is str else tail[2] if len(tail) > 2 else ""
    info = CodeInfo(name=name if type(name) is str else "")
    info.names.extend(n for n in names if type(n) is str)  # type: ignore[union-attr]
    for const in consts:  # type: ignore[union-attr]
        if type(const) is str:
            info.strings.append(const)
        elif type(const) is Call and type(const.info) is _Special and const.info.code is not None:
            nested = const.info.code
            info.names.extend(n for n in nested.names if n not in info.names)
            info.strings.extend(nested.strings)
            info.functions.append(nested.name)
    info.names = list(dict.fromkeys(info.names))
    return info


# --- the scan ------------------------------------------------------------------------------------
class _Scan:
    """One pickle artifact: its streams, readings and nested payloads."""

    def __init__(self, artifact: Artifact, ctx: ScanContext) -> None:
        self.artifact = artifact
        self.ctx = ctx
        self.decoded = 0

    def run(self) -> Iterator[Finding]:
        listener = self.listener = _Listener(self)
        out: list[Finding] = []
        cuts: list[FrameCut] = []
        failure: BaseException | None = None
        try:
            with self.ctx.open(self.artifact) as stream:
                vm = PickleVM(
                    stream, listener, size=self.artifact.size, tick=self.ctx.tracker.check_time, names=set(KNOWN_NAMES)
                )
                out.extend(self._streams(vm))
                cuts = vm.cuts
        except Exception as exc:  # noqa: BLE001 - report what was found, then let the walker record the failure
            failure = exc
        out.extend(listener.report())
        if failure is None:
            seen = {(f.rule, f.location, f.message) for f in out}
            out.extend(
                f
                for f in self._cut_readings(cuts)
                if (f.rule, f.location, f.message.rsplit(" (as read by", 1)[0]) not in seen
            )
        yield from _dedupe(out)
        for payload in listener.payloads:
            self._walk_payload(payload)
        if failure is not None:
            raise failure

    def _streams(self, vm: PickleVM) -> list[Finding]:
        out: list[Finding] = []
        plan: StreamPlan = StreamPlan()
        values: list[object] = []
        count = 0
        while not vm.at_eof():
            start = vm.cur
            if count and vm.peek(1)[0] not in PICKLE_STARTS:
                out.extend(self._trailing(start))
                break
            result = vm.run_stream()
            if not result.stopped:
                if count and result.events == 0:
                    out.extend(self._trailing(start))
                else:
                    out.append(self._broken(result))
                break
            count += 1
            values.append(result.value)
            if count <= 2 and not plan.expected_multiple:
                plan = stream_plan(self.artifact, values, self.listener.pids)
            if not plan.after(count, result.value, vm):
                break
        else:
            plan.ended(count, vm)  # the file ended between streams: does its format need more?
        if count > 1 and not plan.expected_multiple:
            out.append(
                STREAMS.finding(
                    self.artifact.at(0),
                    f"{count} pickle streams one after another: pickle.load reads the first, programs that call it "
                    "again run the others; all were scanned",
                )
            )
        return out

    def _broken(self, result: StreamResult) -> Finding:
        where = self.artifact.at(result.error_offset if result.error_offset is not None else result.end)
        if result.truncated:
            return BROKEN.finding(
                where,
                "pickle stream ends before STOP: loaders run every call before the end, "
                "then fail; the rest of the model was never written or was cut off",
            )
        return BROKEN.finding(
            where,
            f"pickle stream breaks here ({result.error}): loaders run every call before "
            "this point, then fail; nothing after it can be trusted",
        )

    def _trailing(self, start: int) -> list[Finding]:
        size = self.artifact.size
        finding = TRAILING.finding(
            self.artifact.at(start),
            f"{(size - start) if size is not None else 'some'} bytes after the last pickle stream that are not a "
            "pickle: loaders ignore them, other readers may not; they were scanned by content",
        )
        if size is not None and size > start:
            parent = self.artifact

            def opener() -> BinaryIO:
                return OwnedSlice(parent.open(), start, size - start)  # type: ignore[return-value]

            child = parent.child(f"@{start}", opener, size - start, container="pickle")
            # Under a name that promises a pickle, trailing bytes must be a pickle too (or, for .bin/.dat,
            # opaque data): random bytes after one short valid stream are not a model mlgate read.
            child.loaded_as = parent.loaded_as or parent.name
            self.ctx.walk(child)
        return [finding]

    def _cut_readings(self, cuts: list[FrameCut]) -> list[Finding]:
        """Scan the file again as frame-discarding readers (torch.load's BytesIO) see it."""
        out: list[Finding] = []
        size = self.artifact.size
        parent = self.artifact
        for cut in cuts[:MAX_CUT_PASSES]:
            if size is None:
                break
            removed = cut.end - cut.start

            def opener(cut: FrameCut = cut) -> BinaryIO:
                return _CutStream(parent, cut)  # type: ignore[return-value]

            def mapping(offset: int, cut: FrameCut = cut, removed: int = removed) -> int:
                return offset if offset < cut.start else offset + removed

            reading = f"as read by pickle.load on an io.BytesIO (torch.load), skipping bytes {cut.start}..{cut.end}"
            listener = _Listener(self, reading, mapping)
            try:
                with opener() as stream:
                    vm = PickleVM(stream, listener, size=size - removed, tick=self.ctx.tracker.check_time)
                    while not vm.at_eof():
                        if not vm.run_stream().stopped:
                            break
            except Exception:  # noqa: BLE001 - the straight reading already reported this file's state
                pass
            out.extend(f for f in listener.report() if f.rule not in (BROKEN.id, FRAME.id))
        return out

    def _walk_payload(self, payload: _Payload) -> None:
        parent = self.artifact
        if payload.data is not None:
            data = payload.data
            child = parent.child(payload.label, lambda: io.BytesIO(data), len(data), container="pickle")
        elif payload.big is not None:
            big = payload.big

            def opener() -> BinaryIO:
                return OwnedSlice(parent.open(), big.offset, big.length)  # type: ignore[return-value]

            child = parent.child(payload.label, opener, big.length, container="pickle")
        else:
            return
        self.ctx.walk(child)

    # -- evaluating literals -------------------------------------------------------------------
    def evaluate(self, value: object, depth: int = 0) -> object:
        """The literal a value stands for: str/bytes/int/Big, a decoded payload, or None."""
        t = type(value)
        if t in (str, bytes, int, Big):
            return value
        if t is Call and depth < 8:
            func = value.func  # type: ignore[union-attr]
            if type(func) is Global and type(func.info) is Resolution:
                res: Resolution = func.info
                if res.behaviour in (Behaviour.DECODE, Behaviour.BYTES_IO):
                    argv = value.args if type(value.args) is tuple else ()  # type: ignore[union-attr]
                    return self._decode(res, [self.evaluate(a, depth + 1) for a in argv])
        return None

    def _decode(self, res: Resolution, args: list[object]) -> object:
        name = f"{res.module}.{res.name}"
        data = args[0] if args else None
        try:
            if res.behaviour is Behaviour.BYTES_IO:
                return data if type(data) is bytes else None
            if name in ("builtins.bytes", "builtins.bytearray"):
                if type(data) is bytes:
                    return data
                if type(data) is str and len(args) > 1 and type(args[1]) is str:
                    return self._charge(data.encode(args[1]))
                return None
            if name in ("builtins.bytes.fromhex", "builtins.bytearray.fromhex"):
                return self._charge(bytes.fromhex(data)) if type(data) is str else None
            if type(data) not in (str, bytes):
                return None
            if res.module == "base64":
                func = getattr(base64, res.name or "", None)
                return self._charge(func(data)) if func is not None else None
            if res.module == "binascii":
                func = getattr(binascii, res.name or "", None)
                return self._charge(func(data)) if func is not None else None
            if res.module in ("zlib", "gzip", "bz2", "lzma"):
                return self._decompress(res.module, data) if type(data) is bytes else None
            if name in ("codecs.decode", "codecs.encode"):
                encoding = (args[1] if len(args) > 1 and type(args[1]) is str else "utf-8").lower()
                return self._codec(name == "codecs.encode", data, encoding)
        except (
            ValueError,
            TypeError,
            binascii.Error,
            zlib.error,
            OSError,
            EOFError,
            LookupError,
            UnicodeError,
        ):
            return None
        return None

    def _codec(self, encode: bool, data: str | bytes, encoding: str) -> object:
        if encoding in ("zlib", "zip", "zlib_codec") and not encode and type(data) is bytes:
            return self._decompress("zlib", data)
        if encoding in ("bz2", "bz2_codec") and not encode and type(data) is bytes:
            return self._decompress("bz2", data)
        if encoding in _TEXT_CODECS:
            if encode and type(data) is str:
                return self._charge(data.encode(encoding))
            if not encode and type(data) is bytes:
                return data.decode(encoding)
            return None
        if encoding in _BYTES_CODECS:
            raw = data.encode("latin-1") if type(data) is str and encoding not in ("rot13", "rot_13") else data
            result = codecs.encode(raw, encoding) if encode else codecs.decode(raw, encoding)
            return self._charge(result) if type(result) is bytes else result
        return None

    def _decompress(self, module: str, data: bytes) -> bytes | None:
        import bz2  # loaded by the few pickles that decompress a literal (start-up, issue 19)
        import lzma

        if module == "zlib":
            d: object = zlib.decompressobj()
        elif module == "gzip":
            d = zlib.decompressobj(31)
        elif module == "bz2":
            d = bz2.BZ2Decompressor()
        else:
            d = lzma.LZMADecompressor()
        try:
            out = d.decompress(data, MAX_DECODED + 1)  # type: ignore[attr-defined]
        except lzma.LZMAError:
            return None
        if len(out) > MAX_DECODED:
            return None
        return self._charge(out)

    def _charge(self, data: bytes) -> bytes | None:
        self.decoded += len(data)
        if self.decoded > MAX_DECODED:
            return None
        self.ctx.tracker.charge_bytes(len(data))
        return bytes(data)


class _CutStream(io.RawIOBase):
    """The artifact with ``[cut.start, cut.end)`` removed: what a frame-discarding reader consumes."""

    def __init__(self, artifact: Artifact, cut: FrameCut) -> None:
        super().__init__()
        self._raw = artifact.open()
        self._cut = cut
        self._pos = 0  # position in the cut view

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        cut = self._cut
        real = self._pos if self._pos < cut.start else self._pos + (cut.end - cut.start)
        limit = len(buffer) if self._pos >= cut.start else min(len(buffer), cut.start - self._pos)
        self._raw.seek(real)
        data = read_exact(self._raw, limit)
        memoryview(buffer)[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


def _dedupe(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple[str, str, str]] = set()
    out = []
    for f in findings:
        key = (f.rule, f.location, f.message)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


@register(Kind.PICKLE, ANALYZER)
def analyze(artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
    """Scan every pickle stream of ``artifact`` without unpickling it."""
    return _Scan(artifact, ctx).run()


# --- the probe: is this a pickle, whatever the sniffer said? -------------------------------------
PROBE_STREAMS = 16
"""Complete streams of plain data a probe reads past while looking for an import."""
PROBE_CHUNK = 64 * 1024
"""Bytes the probe reads per refill: most non-pickles are decided in the sniffed head, the rest
(a random length operand in raw tensor bytes) within one small read, not the VM's 1 MiB."""


class _Claimed(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _importable(dotted: str | None) -> bool:
    """Whether ``find_class`` could import this: dotted Python identifiers (``os``, ``Foo.bar``)."""
    return bool(dotted) and all(part.isidentifier() for part in dotted.split("."))  # type: ignore[union-attr]


class _ProbeEvents(Events):
    """Stops the VM where the bytes start acting like a pickle.

    For a name that selects a pickle loader, that is the first name the unpickler would import.
    For any other name, an import alone is not enough (``cat\ndog\n`` in a vocabulary file is a
    GLOBAL of ``at.dog``): the imported name must be called, or the stream must reach STOP.
    """

    def __init__(self, by_name: bool) -> None:
        self.by_name = by_name
        self.imported = ""

    def global_ref(self, module: str | None, name: str | None, offset: int, opcode: str, proto: int) -> object:
        if _importable(module) and _importable(name):
            what = f"{opcode} imports {module}.{name} at offset {offset}"
            if self.by_name or opcode == "INST":
                raise _Claimed(what)
            self.imported = self.imported or what
        return super().global_ref(module, name, offset, opcode, proto)

    def call(self, shape: str, func: object, args: object, kwargs: object, offset: int) -> object:
        if self.imported:
            raise _Claimed(f"{self.imported}, and {shape} at offset {offset} calls")
        return super().call(shape, func, args, kwargs, offset)

    def mutate(self, shape: str, target: object, payload: object, offset: int) -> InlineBytes | InlinePickle | None:
        if self.imported:
            raise _Claimed(f"{self.imported}, and {shape} at offset {offset} changes it")
        return None


def _probe_run(stream: BinaryIO, size: int | None, ctx: ScanContext | None, by_name: bool) -> tuple[bool | None, str]:
    """Run up to ``PROBE_STREAMS`` streams: (True, why) a pickle, (False, why) not one, (None, _) ran out of bytes."""
    events = _ProbeEvents(by_name)
    tick = ctx.tracker.check_time if ctx is not None else None
    vm = PickleVM(stream, events, size=size, tick=tick, chunk=PROBE_CHUNK)
    try:
        for _ in range(PROBE_STREAMS):
            result = vm.run_stream()
            if result.truncated:
                return None, f"ends before STOP at offset {result.end}"
            if not result.stopped:
                op = result.error or "breaks"
                return False, f"pickle.load fails at offset {result.error_offset}: {op}"
            if events.imported:
                return True, f"{events.imported}, and the stream reaches STOP"
            if by_name:
                return True, f"a complete pickle stream of {result.end - result.start} bytes"
            if vm.at_eof() or vm.peek(1)[0] not in PICKLE_STARTS:
                return False, "a pickle of plain data that imports nothing"
    except _Claimed as claimed:
        return True, claimed.detail
    return False, f"{PROBE_STREAMS} pickle streams of plain data that import nothing"


@register_probe(Kind.PICKLE)
def probe(artifact: Artifact, ctx: ScanContext, head: bytes, by_name: bool) -> Probe:
    """Whether ``pickle.load`` would import something from ``artifact`` (or, ``by_name``, read it at all).

    The VM runs on the sniffed head first (non-pickles break within a few bytes), then, when the
    head ends mid-stream, on the whole artifact. Nothing is imported or called.
    """
    if not head or head[0] not in PICKLE_STARTS:
        first = f"0x{head[0]:02x}" if head else "nothing"
        return Probe(False, f"pickle.load fails at offset 0: {first} is not a pickle opcode")
    try:
        decided, detail = _probe_run(io.BytesIO(head), len(head), None, by_name)
        if decided is None and artifact.size is not None and artifact.size > len(head):
            with ctx.open(artifact) as stream:
                decided, detail = _probe_run(stream, artifact.size, ctx, by_name)
    except (BudgetExceeded, OSError):
        raise
    except Exception as exc:  # noqa: BLE001 - the VM failed: let the full analyzer run and report it
        return Probe(True, f"the pickle VM failed while probing ({type(exc).__name__})")
    if decided is None:  # pickle.load raises EOFError before importing anything: nothing runs
        return Probe(False, f"pickle.load {detail.replace('ends', 'reaches the end')} without importing anything")
    return Probe(decided, detail)
