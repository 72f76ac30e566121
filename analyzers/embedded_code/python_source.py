"""Python source a model ships (``auto_map`` modules, MLflow ``code`` folders, custom pipelines).

Read with ``ast`` only: the file is parsed, never imported or run. Every call
site is resolved through the file's own imports and simple assignments
(``import subprocess as sp``, ``from os import system as run``,
``run = os.system``, ``__import__('os')``, ``getattr(os, 'system')``) to a
dotted name, which the capability catalogue classifies: process spawning,
dynamic code (and whether its argument is a decoded string), network access,
file writes outside the model, dynamic imports, native code, interpreter
internals. A finding says when the code runs: when the module is imported, when
the model class is constructed (``__init__``, ``from_pretrained`` and what they
call), only when a function is called later, or only when the file is run as a
script. Every file also gets a MEDIUM "remote code present" inventory finding.
"""

from __future__ import annotations

import ast
import builtins
import enum
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from ..core.artifact import LEVEL_SEPARATOR, Artifact, read_exact
from ..core.budget import BudgetExceeded
from ..core.findings import Finding, Rule, Severity
from ..core.kinds import Kind
from ..core.registry import register
from ..core.walker import Malformed, ScanContext
from .catalogue import DECODERS, Capability, canonical, capability, is_dangerous_module

REMOTE_CODE = Rule("MLG-CODE-001", Severity.MEDIUM, "Remote code: the model ships or requires Python code", "python")
PROCESS = Rule("MLG-CODE-002", Severity.CRITICAL, "Model code spawns processes", "python")
OBFUSCATED = Rule("MLG-CODE-003", Severity.CRITICAL, "Model code executes a decoded or obfuscated string", "python")
DYNAMIC_CODE = Rule("MLG-CODE-004", Severity.HIGH, "Model code executes dynamically built code", "python")
NETWORK = Rule("MLG-CODE-005", Severity.HIGH, "Model code opens network connections", "python")
FILE_WRITE = Rule("MLG-CODE-006", Severity.HIGH, "Model code writes or deletes files outside the model", "python")
DYNAMIC_IMPORT = Rule("MLG-CODE-007", Severity.HIGH, "Model code imports modules dynamically", "python")
NATIVE = Rule("MLG-CODE-008", Severity.HIGH, "Model code loads native libraries", "python")
REFLECTION = Rule("MLG-CODE-009", Severity.HIGH, "Model code reaches interpreter internals", "python")

MAX_SOURCE_BYTES = 8 << 20
"""Larger ``.py`` files are not parsed (the scan is incomplete): model code is never this big."""
MAX_EXEC_NESTING = 3
"""How deep literal strings passed to ``exec``/``eval`` are themselves analyzed."""

# Methods that run when a model class is constructed or loaded, plus everything they call.
CONSTRUCTION = frozenset(
    {
        "__init__",
        "__new__",
        "__post_init__",
        "__init_subclass__",
        "__set_name__",
        "__setstate__",
        "__class_getitem__",
        "post_init",
        "_init_weights",
        "init_weights",
        "from_pretrained",
        "from_config",
        "_from_config",
        "register_for_auto_class",
        "load_state_dict",
        "_load_from_state_dict",
    }
)
REFLECTION_ATTRS = frozenset(
    {
        "__builtins__",
        "__globals__",
        "__subclasses__",
        "__code__",
        "f_globals",
        "f_builtins",
        "f_locals",
        "co_code",
        "gi_frame",
        "tb_frame",
        "__loader__",
    }
)
_OPENERS = frozenset({"builtins.open", "io.open", "codecs.open", "io.FileIO"})
_PATH_CLASSES = frozenset({"pathlib.Path", "pathlib.PosixPath", "pathlib.WindowsPath", "pathlib.PurePath"})
_PATH_WRITERS = frozenset(
    {
        "write_text",
        "write_bytes",
        "unlink",
        "rmdir",
        "rename",
        "replace",
        "symlink_to",
        "hardlink_to",
        "touch",
        "chmod",
        "mkdir",
    }
)
_HOST_PATH_CALLS = frozenset(
    {
        "os.path.expanduser",
        "os.path.expandvars",
        "os.getenv",
        "os.environ.get",
        "pathlib.Path.home",
        "pathlib.Path.cwd",
        "os.getcwd",
        "tempfile.gettempdir",
        "tempfile.mkdtemp",
        "tempfile.mkstemp",
    }
)
_FILE_ARG_CALLS = frozenset({"os.open"})
_WRITE_FLAGS = frozenset({"O_WRONLY", "O_RDWR", "O_CREAT", "O_APPEND", "O_TRUNC"})
_EXEC_CALLS = frozenset({"builtins.exec", "builtins.eval", "builtins.compile", "builtins.execfile"})
_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")
_BUILTIN_NAMES = frozenset(dir(builtins))


class Timing(enum.Enum):
    """When a call site runs, as far as the source shows."""

    IMPORT = "when the module is imported"
    LOAD = "when the model is constructed or loaded"
    CALL = "when the function is called"
    SCRIPT = "only when the file is run as a script"


@register(Kind.PYTHON, "python")
def analyze(artifact: Artifact, ctx: ScanContext) -> Iterable[Finding]:
    with ctx.open(artifact) as stream:
        data = read_exact(stream, MAX_SOURCE_BYTES + 1)
    if len(data) > MAX_SOURCE_BYTES:
        raise BudgetExceeded("python_source_bytes", f"Python file larger than {MAX_SOURCE_BYTES} bytes not analyzed")
    ctx.observe_document(artifact.location, data.decode("utf-8", "replace"), reachable=False)
    findings = analyze_source(data, artifact.location)
    if _is_torchscript_source(artifact):
        # TorchScript code is compiled by torch.jit, not imported: the PyTorch analyzer owns it
        # (custom op namespaces). Only behaviour findings are kept, not "remote code present".
        findings = [f for f in findings if f.rule != REMOTE_CODE.id]
    yield from findings


def _is_torchscript_source(artifact: Artifact) -> bool:
    """``<root>/code/__torch__/**.py`` inside a zip: the source tree ``torch.jit.save`` writes."""
    parts = artifact.name.replace("\\", "/").split("/")
    return artifact.container == "zip" and len(parts) >= 4 and parts[1] == "code" and parts[2] == "__torch__"


def analyze_source(source: bytes | str, location: str) -> list[Finding]:
    """Findings for one Python file; raises ``Malformed`` when it does not parse."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise Malformed(f"Python syntax error at line {exc.lineno}: {exc.msg}; the file was not analyzed") from None
    except ValueError as exc:  # e.g. null bytes
        raise Malformed(f"not parseable as Python ({exc}); the file was not analyzed") from None
    module = _Module(tree, location)
    flagged = list(module.findings())
    text = source.decode("utf-8", "replace") if isinstance(source, bytes) else source
    lines = text.count("\n") + 1
    name = PurePosixPath(location.split("!")[-1]).name
    summary = (
        f"{len(flagged)} risky call site(s) reported separately"
        if flagged
        else "no process, network, file, dynamic-code or native-code use found"
    )
    where = "inside an archive member" if LEVEL_SEPARATOR in location else "with the model"
    inventory = REMOTE_CODE.finding(
        location,
        f"Python source {name} ({lines} lines) ships {where}; loaders that trust remote code "
        f"(trust_remote_code, MLflow code paths) import it: {summary}",
        # Plain code that was read whole and does nothing risky is inventory, not a threat.
        severity=None if flagged else Severity.LOW,
    )
    return [inventory, *flagged]


@dataclass(eq=False)
class _Function:
    name: str
    cls: str | None
    node: ast.AST
    calls: set[tuple[str, str]] = field(default_factory=set)  # ("name", f) or ("method", m)

    @property
    def label(self) -> str:
        return f"{self.cls}.{self.name}" if self.cls else self.name


@dataclass
class _Site:
    node: ast.AST
    scope: _Function | None
    script: bool


class _Module:
    """One parsed module: its name bindings, functions, call sites and what runs when."""

    def __init__(
        self, tree: ast.Module, location: str, outer: Timing | None = None, depth: int = 0, at: str | None = None
    ) -> None:
        self.tree = tree
        self.location = location
        self.at = at  # every site reports this location (code passed to exec reports the exec call)
        self.outer = outer  # timing of the exec() call site when this is code passed to exec
        self.depth = depth
        self.aliases: dict[str, str] = {}
        self.star_modules: list[str] = []
        self.bound: set[str] = set()
        self.tainted: set[str] = set()
        self.functions: list[_Function] = []
        self.sites: list[_Site] = []
        self.module_calls: set[tuple[str, str]] = set()
        self._bind_names()
        self._visit_body(tree.body, None, False)
        self.import_time, self.load_time = self._reachable()

    # --- name resolution ---------------------------------------------------------------
    def _bind_names(self) -> None:
        nodes = sorted(
            (n for n in ast.walk(self.tree) if isinstance(n, (ast.Import, ast.ImportFrom, ast.Assign, ast.AnnAssign))),
            key=lambda n: (n.lineno, n.col_offset),
        )
        for node in nodes:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.aliases[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        self.aliases[top] = top
            elif isinstance(node, ast.ImportFrom):
                base = "." * node.level + (node.module or "")
                for alias in node.names:
                    if alias.name == "*":
                        self.star_modules.append(base)
                    else:
                        self.aliases[alias.asname or alias.name] = f"{base}.{alias.name}" if base else alias.name
        for top in self.tree.body:
            if isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.bound.add(top.name)
        for _ in range(2):  # two passes so chains (a = os; b = a.system) settle
            for node in nodes:
                if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    names = [t.id for t in targets if isinstance(t, ast.Name)]
                    resolved = self.qualname(node.value)
                    for name in names:
                        if resolved is not None and not isinstance(node.value, ast.Constant):
                            self.aliases[name] = resolved
                        elif name not in self.aliases:
                            self.bound.add(name)
                        if self._decoded(node.value):
                            self.tainted.add(name)

    def qualname(self, node: ast.AST) -> str | None:
        """The dotted name ``node`` evaluates to, through this module's imports and aliases."""
        if isinstance(node, ast.Name):
            return self._name(node.id)
        if isinstance(node, ast.Attribute):
            base = self.qualname(node.value)
            return f"{base}.{node.attr}" if base else None
        if isinstance(node, ast.Subscript):
            key = _const_str(node.slice)
            base = self.qualname(node.value)
            if key is None or base is None:
                return None
            if base == "sys.modules":
                return key
            if base in ("builtins.globals", "builtins.vars"):
                return self._name(key)
            return f"{base}.{key}" if base == "builtins" else None
        if isinstance(node, ast.Call):
            func = self.qualname(node.func)
            first = _const_str(node.args[0]) if node.args else None
            if func == "builtins.__import__" and first:
                return first if node.keywords or len(node.args) > 3 else first.split(".")[0]
            if func == "importlib.import_module" and first and not first.startswith("."):
                return first
            if func == "builtins.getattr" and len(node.args) >= 2:
                attr = _const_str(node.args[1])
                base = self.qualname(node.args[0])
                return f"{base}.{attr}" if base and attr else None
            if func in ("builtins.globals", "builtins.vars") and not node.args:
                return func
        return None

    def _name(self, name: str) -> str | None:
        if name == "__builtins__":
            return "builtins"
        if name in self.aliases:
            return canonical(self.aliases[name])
        if name in self.bound:
            return None
        for module in self.star_modules:
            candidate = f"{module}.{name}"
            if capability(candidate) is not None:
                return canonical(candidate)
        if name in _BUILTIN_NAMES:
            return f"builtins.{name}"
        return None

    def _decoded(self, node: ast.AST) -> bool:
        """True when ``node`` is built from a decoded, decompressed or character-assembled string."""
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and sub.id in self.tainted:
                return True
            if isinstance(sub, ast.Call):
                name = self.qualname(sub.func)
                if name in DECODERS:
                    return True
                if isinstance(sub.func, ast.Attribute) and sub.func.attr in ("decode", "fromhex"):
                    return True
                if (
                    name in ("builtins.bytes", "builtins.bytearray")
                    and sub.args
                    and isinstance(sub.args[0], (ast.List, ast.Tuple))
                ):
                    return True
            if isinstance(sub, ast.Subscript) and isinstance(sub.slice, ast.Slice) and _is_minus_one(sub.slice.step):
                return True
        return False

    # --- structure ---------------------------------------------------------------------
    def _visit_body(self, body: list[ast.stmt], scope: _Function | None, script: bool, cls: str | None = None) -> None:
        for stmt in body:
            self._visit_stmt(stmt, scope, script, cls)

    def _visit_stmt(self, stmt: ast.stmt, scope: _Function | None, script: bool, cls: str | None) -> None:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for expr in [*stmt.decorator_list, *_defaults(stmt.args)]:
                self._visit_expr(expr, scope, script)
            for deco in stmt.decorator_list:
                target = deco.func if isinstance(deco, ast.Call) else deco
                if isinstance(target, ast.Name):
                    self._edge(scope, ("name", target.id))
            func = _Function(stmt.name, cls, stmt)
            self.functions.append(func)
            self._visit_body(stmt.body, func, script)
            return
        if isinstance(stmt, ast.ClassDef):
            for expr in [*stmt.decorator_list, *stmt.bases, *(k.value for k in stmt.keywords)]:
                self._visit_expr(expr, scope, script)
            self._visit_body(stmt.body, scope, script, cls=stmt.name)  # a class body runs where it is defined
            return
        if scope is None and isinstance(stmt, ast.If) and _is_main_guard(stmt.test):
            self._visit_body(stmt.body, scope, True, cls)
            self._visit_body(stmt.orelse, scope, script, cls)
            return
        for child in ast.iter_child_nodes(stmt):
            if isinstance(child, ast.stmt):
                self._visit_stmt(child, scope, script, cls)
            elif isinstance(child, (ast.ExceptHandler, ast.match_case)):
                head = child.type if isinstance(child, ast.ExceptHandler) else child.guard
                if head is not None:
                    self._visit_expr(head, scope, script)
                self._visit_body(child.body, scope, script, cls)
            elif isinstance(child, ast.AST):
                self._visit_expr(child, scope, script)

    def _visit_expr(self, expr: ast.AST, scope: _Function | None, script: bool) -> None:
        for node in ast.walk(expr):
            if isinstance(node, ast.Lambda):
                continue
            if isinstance(node, ast.Call):
                self.sites.append(_Site(node, scope, script))
                if isinstance(node.func, ast.Name):
                    self._edge(scope, ("name", node.func.id))
                elif isinstance(node.func, ast.Attribute) and _is_self(node.func.value):
                    self._edge(scope, ("method", node.func.attr))
            elif (
                (isinstance(node, ast.Attribute) and node.attr in REFLECTION_ATTRS)
                or (isinstance(node, ast.Name) and node.id == "__builtins__")
                or (isinstance(node, ast.Subscript) and _const_str(node.slice) in REFLECTION_ATTRS)
            ):
                self.sites.append(_Site(node, scope, script))

    def _edge(self, scope: _Function | None, target: tuple[str, str]) -> None:
        (scope.calls if scope is not None else self.module_calls).add(target)

    def _reachable(self) -> tuple[set[int], set[int]]:
        """ids of functions run at import, and at construction, following calls transitively."""
        by_name: dict[str, list[_Function]] = {}
        by_method: dict[str, list[_Function]] = {}
        constructors: dict[str, list[_Function]] = {}
        for func in self.functions:
            (by_method if func.cls else by_name).setdefault(func.name, []).append(func)
            if func.cls and func.name in CONSTRUCTION:
                constructors.setdefault(func.cls, []).append(func)

        def targets(edge: tuple[str, str]) -> list[_Function]:
            kind, name = edge
            if kind == "method":
                return by_method.get(name, [])
            return by_name.get(name, []) + constructors.get(name, [])

        def closure(work: list[_Function]) -> set[int]:
            seen: set[int] = set()
            followed: set[tuple[str, str]] = set()  # an edge's targets are queued once, whoever calls it
            while work:
                func = work.pop()
                if id(func) not in seen:
                    seen.add(id(func))
                    for edge in func.calls - followed:
                        followed.add(edge)
                        work.extend(targets(edge))
            return seen

        at_import = closure([f for edge in self.module_calls for f in targets(edge)])
        at_load = closure([f for f in self.functions if f.cls and f.name in CONSTRUCTION])
        return at_import, at_load - at_import

    def timing(self, site: _Site) -> Timing:
        if site.script:
            return Timing.SCRIPT
        if site.scope is None or id(site.scope) in self.import_time:
            return self.outer or Timing.IMPORT
        if id(site.scope) in self.load_time:
            return self.outer or Timing.LOAD
        return Timing.CALL

    # --- findings ----------------------------------------------------------------------
    def findings(self) -> Iterator[Finding]:
        seen: set[tuple[str, int, int]] = set()
        for site in self.sites:
            for finding in self._classify(site):
                key = (finding.rule, getattr(site.node, "lineno", 0), getattr(site.node, "col_offset", 0))
                if key not in seen:
                    seen.add(key)
                    yield finding

    def _where(self, site: _Site) -> str:
        return self.at or f"{self.location}:{getattr(site.node, 'lineno', 0)}"

    def _when(self, site: _Site, timing: Timing) -> str:
        if timing is Timing.CALL and site.scope is not None:
            return f"in {site.scope.label}(), when it is called"
        if timing is Timing.LOAD and site.scope is not None:
            return f"in {site.scope.label}(), which runs when the model is constructed or loaded"
        if timing is Timing.IMPORT and site.scope is not None:
            return f"in {site.scope.label}(), which runs when the module is imported"
        return timing.value

    def _classify(self, site: _Site) -> Iterator[Finding]:
        node = site.node
        timing = self.timing(site)
        if isinstance(node, ast.Call):
            yield from self._classify_call(site, node, timing)
        elif isinstance(node, ast.Attribute) and node.attr in REFLECTION_ATTRS:
            yield self._finding(REFLECTION, site, timing, f"accesses .{node.attr}")
        elif isinstance(node, ast.Name) and node.id == "__builtins__" and "__builtins__" not in self.bound:
            yield self._finding(REFLECTION, site, timing, "accesses __builtins__")
        elif isinstance(node, ast.Subscript) and _const_str(node.slice) in REFLECTION_ATTRS:
            yield self._finding(REFLECTION, site, timing, f"accesses [{_const_str(node.slice)!r}]")

    def _classify_call(self, site: _Site, call: ast.Call, timing: Timing) -> Iterator[Finding]:
        name = self.qualname(call.func)
        shown = name.removeprefix("builtins.") if name else _source(call.func)
        described = f"{shown}({_args(call)})"
        if name in _OPENERS or name in _FILE_ARG_CALLS:
            if self._opens_for_write(name, call) and call.args and self._outside(call.args[0]):
                yield self._finding(FILE_WRITE, site, timing, f"calls {described}")
            return
        if isinstance(call.func, ast.Attribute) and call.func.attr in _PATH_WRITERS and self._is_path(call.func.value):
            if self._outside(call.func.value):
                yield self._finding(FILE_WRITE, site, timing, f"calls {_source(call.func)}({_args(call)})")
            return
        if name == "builtins.getattr" and len(call.args) >= 2 and _const_str(call.args[1]) is None:
            base = self.qualname(call.args[0])
            if base and is_dangerous_module(base):
                yield self._finding(REFLECTION, site, timing, f"looks up a computed attribute of {base}")
            return
        if name is None:
            return
        cap = capability(name)
        if cap is Capability.EXEC:
            yield from self._exec(site, call, name, described, timing)
        elif cap is Capability.PROCESS:
            yield self._finding(PROCESS, site, timing, f"calls {described}", later=Severity.HIGH)
        elif cap is Capability.NETWORK:
            yield self._finding(NETWORK, site, timing, f"calls {described}")
        elif cap is Capability.FILES:
            if any(self._outside(arg) for arg in call.args[:2]):
                yield self._finding(FILE_WRITE, site, timing, f"calls {described}")
        elif cap is Capability.IMPORT:
            first = _const_str(call.args[0]) if call.args else None
            if first is None or name not in ("builtins.__import__", "importlib.import_module"):
                yield self._finding(DYNAMIC_IMPORT, site, timing, f"calls {described}", later=Severity.MEDIUM)
            elif is_dangerous_module(first):
                yield self._finding(DYNAMIC_IMPORT, site, timing, f"imports {first} by name: {described}")
        elif cap is Capability.NATIVE:
            yield self._finding(NATIVE, site, timing, f"calls {described}")
        elif cap is Capability.REFLECTION:
            yield self._finding(REFLECTION, site, timing, f"calls {described}")

    def _exec(self, site: _Site, call: ast.Call, name: str, described: str, timing: Timing) -> Iterator[Finding]:
        payload = call.args[0] if call.args else None
        if payload is not None and self._decoded(payload):
            yield self._finding(
                OBFUSCATED, site, timing, f"calls {described} on a decoded string", later=Severity.CRITICAL
            )
            return
        literal = _const_str(payload) if payload is not None else None
        if literal is not None and name in _EXEC_CALLS and self.depth < MAX_EXEC_NESTING:
            try:
                inner = _Module(
                    ast.parse(literal), self.location, outer=timing, depth=self.depth + 1, at=self._where(site)
                )
            except (SyntaxError, ValueError):
                inner = None
            if inner is not None:
                nested = list(inner.findings())
                for finding in nested:
                    yield Finding(
                        rule=finding.rule,
                        severity=finding.severity,
                        analyzer=finding.analyzer,
                        location=finding.location,
                        message=f"code passed to {name.split('.')[-1]}() {finding.message}",
                    )
                if not nested and name == "builtins.eval":
                    return  # eval of a constant expression ("1e-5") is a roundabout literal
        yield self._finding(DYNAMIC_CODE, site, timing, f"calls {described}")

    def _finding(self, rule: Rule, site: _Site, timing: Timing, what: str, later: Severity | None = None) -> Finding:
        severity = rule.severity
        if timing is Timing.CALL and later is not None:
            severity = later
        if timing is Timing.SCRIPT and rule is not OBFUSCATED:
            severity = min(severity, Severity.MEDIUM)
        return rule.finding(self._where(site), f"{what} {self._when(site, timing)}", severity=severity)

    def _opens_for_write(self, name: str, call: ast.Call) -> bool:
        if name == "os.open":
            flags = call.args[1] if len(call.args) > 1 else None
            return flags is not None and any(
                isinstance(n, ast.Attribute) and n.attr in _WRITE_FLAGS for n in ast.walk(flags)
            )
        mode = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "mode"), None)
        text = _const_str(mode) if mode is not None else None
        return text is not None and any(c in text for c in "wax+")

    def _is_path(self, node: ast.AST) -> bool:
        return any(
            isinstance(sub, ast.Call)
            and (self.qualname(sub.func) in _PATH_CLASSES or self.qualname(sub.func) == "pathlib.Path.home")
            for sub in ast.walk(node)
        )

    def _outside(self, node: ast.AST) -> bool:
        """True when the path expression ``node`` names a place outside the model folder."""
        for sub in ast.walk(node):
            text = _const_str(sub)
            if text is not None and _host_path(text):
                return True
            if isinstance(sub, ast.Call) and self.qualname(sub.func) in _HOST_PATH_CALLS:
                return True
            if (
                isinstance(sub, (ast.Attribute, ast.Subscript))
                and self.qualname(sub.value if isinstance(sub, ast.Subscript) else sub) == "os.environ"
            ):
                return True
        return False


def _host_path(text: str) -> bool:
    if text.startswith(("/", "~", "\\\\")) or _DRIVE.match(text):
        return True
    return ".." in PurePosixPath(text.replace("\\", "/")).parts


def _const_str(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
        value = node.value
        return value if isinstance(value, str) else value.decode("latin-1")
    return None


def _is_minus_one(node: ast.AST | None) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return isinstance(node.operand, ast.Constant) and node.operand.value == 1
    return isinstance(node, ast.Constant) and node.value == -1


def _is_self(node: ast.AST) -> bool:
    if isinstance(node, ast.Name):
        return node.id in ("self", "cls")
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super"


def _is_main_guard(test: ast.AST) -> bool:
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and len(test.comparators) == 1
        and _const_str(test.comparators[0]) == "__main__"
    )


def _defaults(args: ast.arguments) -> list[ast.expr]:
    return [*args.defaults, *(d for d in args.kw_defaults if d is not None)]


def _source(node: ast.AST, limit: int = 60) -> str:
    try:
        text = ast.unparse(node)
    except Exception:  # noqa: BLE001 - display only
        text = type(node).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _args(call: ast.Call) -> str:
    if not call.args:
        return "..." if call.keywords else ""
    text = _source(call.args[0], 80)
    return text + (", ..." if len(call.args) > 1 or call.keywords else "")
