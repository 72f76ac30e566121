"""Pack audit: does any name the pickle allow packs allow reach code execution, imports, processes,
file writes, the network or nested unpickling when a pickle uses it?

Run it in a virtual environment that has the libraries the packs cover (and mlgate installed
with ``pip install --no-deps -e .``)::

    python tools/pack_audit.py --report analyzers/pickles/pack_audit.md

For every ``Allow`` entry the tool imports each name (``importlib``), finds the module that
defines it and reads that module's source with ``ast``; for every ``Pattern`` entry it walks the
installed package, parses each module the pattern's globs match (compiled modules are imported
instead) and lists every top-level name the pattern matches. What unpickling can run of a name is
audited: a function's body; a class's ``__new__``, ``__init__``, ``__post_init__``,
``__setstate__``, ``__setitem__``, ``append``, ``extend`` and ``__reduce__``-free rebuild path;
then one level of the calls they make (functions of the same module, ``self.method`` of the same
class, ``super()`` methods of a base defined in the same module). A reference that resolves
through the module's imports to a dangerous name (``DANGER`` below) fails the entry, unless
``AUDIT_ACCEPTED`` in ``packs.py`` carries a reviewer's reason; a pattern that matches a name
imported from elsewhere (a re-export) fails unless the origin is itself allowed.

Limits (written into the report): calls through attributes of objects whose type the source does
not show (``self.backend.load()``) cannot be resolved statically; compiled (C/Cython) names have
no Python source and are accepted on the pack's reason; libraries not installed are listed as not
audited. Exit status 1 when an entry fails without an accepted reason (``--check``).
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import importlib
import importlib.metadata
import importlib.util
import inspect
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from mlgate.analyzers.pickles.names import Tier, classify
from mlgate.analyzers.pickles.packs import AUDIT_ACCEPTED, PACKS, PURE_DECODERS, Allow, Pattern

DANGER: dict[str, str] = {
    "builtins.eval": "code execution",
    "builtins.exec": "code execution",
    "builtins.compile": "code execution",
    "builtins.__import__": "import machinery",
    "importlib.import_module": "import machinery",
    "importlib.__import__": "import machinery",
    "importlib.reload": "import machinery",
    "importlib.util": "import machinery",
    "importlib.machinery": "import machinery",
    "pkgutil": "import machinery",
    "runpy": "code execution",
    "os.system": "process spawning",
    "os.popen": "process spawning",
    "os.exec": "process spawning",
    "os.spawn": "process spawning",
    "os.fork": "process spawning",
    "os.posix_spawn": "process spawning",
    "subprocess": "process spawning",
    "multiprocessing.Process": "process spawning",
    "multiprocessing.Pool": "process spawning",
    "multiprocessing.pool": "process spawning",
    "multiprocessing.context": "process spawning",
    "multiprocessing.get_context": "process spawning",
    "multiprocessing.popen_fork": "process spawning",
    "multiprocessing.popen_spawn_posix": "process spawning",
    "concurrent.futures.ProcessPoolExecutor": "process spawning",
    "pty": "process spawning",
    "os.remove": "file write/delete",
    "os.unlink": "file write/delete",
    "os.rmdir": "file write/delete",
    "os.rename": "file write/delete",
    "os.replace": "file write/delete",
    "os.makedirs": "file write/delete",
    "os.mkdir": "file write/delete",
    "os.symlink": "file write/delete",
    "os.chmod": "file write/delete",
    "shutil": "file write/delete",
    "tempfile": "file write/delete",
    "socket": "network",
    "urllib.request": "network",
    "http.client": "network",
    "requests": "network",
    "httpx": "network",
    "urllib3": "network",
    "smart_open.open": "network",
    "smart_open.smart_open_lib": "network",
    "smart_open.http": "network",
    "smart_open.s3": "network",
    "smart_open.gcs": "network",
    "smart_open.azure": "network",
    "huggingface_hub": "network",
    "pickle.load": "nested unpickling",
    "pickle.loads": "nested unpickling",
    "pickle.Unpickler": "nested unpickling",
    "_pickle": "nested unpickling",
    "marshal.loads": "nested unpickling",
    "torch.load": "nested unpickling",
    "torch.serialization.load": "nested unpickling",
    "numpy.load": "nested unpickling",
    "joblib.load": "nested unpickling",
    "dill.load": "nested unpickling",
    "dill.loads": "nested unpickling",
    "cloudpickle.load": "nested unpickling",
    "cloudpickle.loads": "nested unpickling",
    "yaml.load": "nested unpickling",
    "yaml.unsafe_load": "nested unpickling",
}
"""Dotted names (and prefixes: ``os.exec`` covers ``os.execv``) whose reach fails an entry."""
_ALIASES = {"posix": "os", "nt": "os", "_io": "io", "_pickle": "pickle", "__builtin__": "builtins"}
_IMPORTERS = frozenset({"builtins.__import__", "importlib.import_module", "importlib.__import__"})
_HARMLESS_ORIGINS = frozenset({"typing", "typing_extensions", "collections.abc", "abc", "types", "enum", "dataclasses"})
"""Modules of annotations and abstract bases: a class pattern matching a re-export of them is harmless."""
_TEST_MODULES = re.compile(r"(?:^|\.)(?:tests?|testing|_testing|conftest)(?:\.|$)")
"""The analyzer never lets a pattern allow a library's test helpers (names.py), so they are not audited."""
_REBUILD_METHODS = ("__new__", "__init__", "__post_init__", "__setstate__", "__setitem__", "append", "extend")
_WRITE_MODES = re.compile(r"[wax+]")
PATTERN_EXAMPLES = 12
"""Names listed per pattern in the report (all failures are listed)."""


@dataclass
class Result:
    pack: str
    entry: str
    status: str  # pass | fail | accepted | compiled | not installed | missing
    names: int = 0
    detail: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)


# --- static reading --------------------------------------------------------------------------
@dataclass
class ModuleSource:
    name: str
    tree: ast.Module
    imports: dict[str, str]  # local name -> dotted origin
    functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef]
    classes: dict[str, ast.ClassDef]


_SOURCES: dict[str, ModuleSource | None] = {}


def module_source(module: str, path: str | None = None) -> ModuleSource | None:
    """The parsed source of ``module`` (None when it has no Python source)."""
    if module in _SOURCES:
        return _SOURCES[module]
    if path is None:
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        path = spec.origin if spec is not None else None
    if not path or not path.endswith(".py"):
        _SOURCES[module] = None
        return None
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8", errors="replace"))
    except (SyntaxError, OSError):
        _SOURCES[module] = None
        return None
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    imports: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    imports[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    imports[top] = top
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            for alias in node.names:
                imports[alias.asname or alias.name] = f"{base}.{alias.name}"
    functions = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    source = ModuleSource(module, tree, imports, functions, classes)
    _SOURCES[module] = source
    return source


def _dotted(node: ast.expr) -> list[str]:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return list(reversed(parts))
    return []


def _canonical(dotted: str) -> str:
    head, _, rest = dotted.partition(".")
    head = _ALIASES.get(head, head)
    return f"{head}.{rest}" if rest else head


def _danger(dotted: str) -> str:
    dotted = _canonical(dotted)
    for name, why in DANGER.items():
        if dotted == name or dotted.startswith(name + ".") or (name.count(".") and dotted.startswith(name)):
            return why
    return ""


def body_reaches(src: ModuleSource, node: ast.AST, local: set[str]) -> tuple[list[str], list[ast.AST]]:
    """Dangerous references in ``node`` (resolved through ``src``'s imports) and the calls to follow."""
    found: list[str] = []
    follow: list[ast.AST] = []
    inner = {id(n.value) for n in ast.walk(node) if isinstance(n, ast.Attribute)}
    fixed_imports: set[int] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call) and sub.args and all(isinstance(a, ast.Constant) for a in sub.args):
            parts = _dotted(sub.func)
            origin = _resolve(src, parts)
            if origin and _canonical(origin) in _IMPORTERS:
                fixed_imports.add(id(sub.func))  # importing a module named by a constant: no file decides it
    for sub in ast.walk(node):
        if id(sub) in inner or id(sub) in fixed_imports:
            continue
        if isinstance(sub, (ast.Name, ast.Attribute)) and isinstance(getattr(sub, "ctx", None), ast.Load):
            parts = _dotted(sub)
            if not parts:
                continue
            root = parts[0]
            if root in local:
                continue
            if root in src.imports:
                dotted = ".".join([src.imports[root], *parts[1:]])
            elif root in ("eval", "exec", "compile", "__import__") and root not in src.functions:
                dotted = f"builtins.{root}"
            else:
                continue
            why = _danger(dotted)
            if why:
                found.append(f"{dotted} ({why})")
        if isinstance(sub, ast.Call):
            parts = _dotted(sub.func)
            if parts == ["open"] and "open" not in src.imports and "open" not in src.functions:
                mode = (
                    sub.args[1] if len(sub.args) > 1 else next((k.value for k in sub.keywords if k.arg == "mode"), None)
                )
                if isinstance(mode, ast.Constant) and isinstance(mode.value, str) and _WRITE_MODES.search(mode.value):
                    found.append(f"open(..., {mode.value!r}) (file write/delete)")
                elif mode is not None and not isinstance(mode, ast.Constant):
                    found.append("open(..., <computed mode>) (file write/delete)")
            follow.append(sub)
    return found, follow


def _resolve(src: ModuleSource, parts: list[str]) -> str:
    if not parts:
        return ""
    if parts[0] in src.imports:
        return ".".join([src.imports[parts[0]], *parts[1:]])
    if parts[0] == "__import__" and "__import__" not in src.functions:
        return "builtins.__import__"
    return ""


def _callee(src: ModuleSource, call: ast.Call, cls: ast.ClassDef | None) -> ast.AST | None:
    """The function or method a call reaches, when it is defined in the same module (one level)."""
    parts = _dotted(call.func)
    if len(parts) == 1 and parts[0] in src.functions:
        return src.functions[parts[0]]
    if cls is not None and len(parts) == 2 and parts[0] in ("self", "cls"):
        for item in cls.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name == parts[1]:
                return item
    if (
        cls is not None
        and isinstance(call.func, ast.Attribute)
        and isinstance(call.func.value, ast.Call)
        and _dotted(call.func.value.func) == ["super"]
    ):
        for base in cls.bases:
            base_src, base_cls = _base_class(src, base)
            if base_cls is not None:
                for item in base_cls.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name == call.func.attr:
                        _CALLEE_SOURCE[id(item)] = base_src  # type: ignore[assignment]
                        return item
    return None


_CALLEE_SOURCE: dict[int, ModuleSource] = {}
"""The module a followed callee was found in, when it is not the caller's (a base class elsewhere)."""


def _base_class(src: ModuleSource, base: ast.expr) -> tuple[ModuleSource | None, ast.ClassDef | None]:
    """The ClassDef of a base class, in this module or (through the imports) in another one."""
    parts = _dotted(base)
    if len(parts) == 1 and parts[0] in src.classes:
        return src, src.classes[parts[0]]
    if parts and parts[0] in src.imports:
        origin = ".".join([src.imports[parts[0]], *parts[1:]])
        module, _, name = origin.rpartition(".")
        other = module_source(module) if module else None
        if other is not None and name in other.classes:
            return other, other.classes[name]
    return None, None


def audit_node(src: ModuleSource, node: ast.AST, cls: ast.ClassDef | None = None) -> list[str]:
    """Dangerous reach of a function, or of a class's rebuild methods, plus one level of calls."""
    if isinstance(node, ast.ClassDef):
        targets = [
            item
            for item in node.body
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name in _REBUILD_METHODS
        ]
        cls = node
    else:
        targets = [node]
    found: list[str] = []
    for target in targets:
        local = _locals(target)
        direct, calls = body_reaches(src, target, local)
        found.extend(direct)
        for call in calls:
            callee = _callee(src, call, cls)  # type: ignore[arg-type]
            if callee is not None and callee is not target:
                deeper, _ = body_reaches(_CALLEE_SOURCE.get(id(callee), src), callee, _locals(callee))
                found.extend(f"{d} via {getattr(callee, 'name', '?')}()" for d in deeper)
    return sorted(set(found))


def _locals(fn: ast.AST) -> set[str]:
    names: set[str] = set()
    if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
        args = fn.args
        names.update(a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs))
        names.update(a.arg for a in (args.vararg, args.kwarg) if a is not None)
    for sub in ast.walk(fn):
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
            names.add(sub.id)
    return names


def _find(src: ModuleSource, qualname: str) -> ast.AST | None:
    parts = qualname.split(".")
    node: ast.AST | None = src.functions.get(parts[0]) or src.classes.get(parts[0])
    for part in parts[1:]:
        if not isinstance(node, ast.ClassDef):
            return None
        node = next(
            (
                item
                for item in node.body
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and item.name == part
            ),
            None,
        )
    return node


# --- entries ------------------------------------------------------------------------------------
def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module.split(".")[0]) is not None
    except (ImportError, ValueError):
        return False


def audit_allow(pack: str, entry: Allow) -> Result:
    label = f"{entry.module}: {' '.join(entry.names)}"
    result = Result(pack, label, "pass", names=len(entry.names))
    if not _installed(entry.module):
        result.status = "not installed"
        return result
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = importlib.import_module(entry.module)
    except Exception as exc:  # noqa: BLE001 - reported
        result.status = "missing"
        result.detail.append(f"import {entry.module} failed: {type(exc).__name__}: {exc}")
        return result
    compiled = 0
    for name in entry.names:
        obj: object = module
        try:
            for part in name.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            result.detail.append(f"{name}: not in this version (harmless: a pickle naming it fails to load)")
            continue
        origin = _origin(obj, entry.module, name)
        why = _danger(origin)
        if why:
            result.detail.append(f"{name} is {origin} ({why})")
            continue
        owner_module, _, qual = origin.rpartition(":")
        src = module_source(owner_module)
        node = _find(src, qual) if src is not None else None
        if node is None:  # a class whose __module__ is its package's public face (pandas.DataFrame)
            src, node = _source_of(obj, qual)
        if node is None:
            compiled += 1
            continue
        for reach in audit_node(src, node):  # type: ignore[arg-type]
            result.detail.append(f"{name}: {reach}")
    _finish(result, entry.module, entry.names)
    if result.status == "pass" and compiled == len(entry.names):
        result.status = "compiled"
    elif compiled and result.status == "pass":
        result.examples.append(f"{compiled} compiled (no Python source)")
    return result


def _source_of(obj: object, qual: str) -> tuple[ModuleSource | None, ast.AST | None]:
    """The module source that defines ``obj`` found through its source file, when ``__module__`` does not say."""
    path = None
    if inspect.isclass(obj):  # inspect finds a class's file through __module__, which may be the package face
        for member in vars(obj).values():
            code = getattr(getattr(member, "__func__", member), "__code__", None)
            if code is not None:
                path = code.co_filename
                break
    else:
        code = getattr(obj, "__code__", None)
        path = code.co_filename if code is not None else None
    if not path or not path.endswith(".py"):
        return None, None
    module = next(
        (name for name, mod in list(sys.modules.items()) if getattr(mod, "__file__", None) == path),
        f"<{path}>",
    )
    src = module_source(module, path)
    node = _find(src, qual) if src else None
    return src, node


def _origin(obj: object, module: str, name: str) -> str:
    """``defining.module:Qual.name`` of an object (its own module when it carries none)."""
    owner = getattr(obj, "__module__", None) or module
    qual = getattr(obj, "__qualname__", None) or name
    if inspect.ismodule(obj):
        return f"{obj.__name__}:"
    if inspect.ismethod(obj):
        func = obj.__func__
        owner, qual = func.__module__, func.__qualname__
    return f"{owner}:{qual}"


def _finish(result: Result, module: str, names: tuple[str, ...] | list[str]) -> None:
    """Fail the entry when a name's reach has no reviewer-accepted reason in ``AUDIT_ACCEPTED``."""
    failing = [d for d in result.detail if "not in this version" not in d]
    if not failing:
        return
    unaccepted = []
    for detail in failing:
        name = next((n for n in names if detail.startswith((n + ":", n + " "))), "")
        reason = AUDIT_ACCEPTED.get(f"{module}.{name}")
        if reason:
            result.examples.append(f"accepted {module}.{name}: {reason}")
        else:
            unaccepted.append(detail)
    if unaccepted:
        result.status = "fail"
    else:
        result.status = "accepted"
        result.detail = [d for d in result.detail if d not in failing] + result.examples
        result.examples = []


def _package_modules(root: str) -> list[tuple[str, str]]:
    """(module name, file) of every module under the installed package ``root``."""
    try:
        spec = importlib.util.find_spec(root.split(".")[0])
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    out = []
    top = root.split(".")[0]
    for base in spec.submodule_search_locations:
        base_path = Path(base)
        for path in base_path.rglob("*"):
            if path.suffix not in (".py", ".so", ".pyd") or "__pycache__" in path.parts:
                continue
            rel = path.relative_to(base_path).with_suffix("")
            parts = [p.split(".")[0] for p in rel.parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out.append((".".join([top, *parts]), str(path)))
    return sorted(set(out))


def audit_pattern(pack: str, entry: Pattern) -> Result:
    label = f"{entry.modules} / {entry.names}" + (f" (except {entry.exclude})" if entry.exclude else "")
    result = Result(pack, label, "pass")
    globs = re.compile("|".join(fnmatch.translate(g) for g in entry.modules.split()))
    exclude = re.compile("|".join(fnmatch.translate(g) for g in entry.exclude.split())) if entry.exclude else None
    names_re = re.compile(entry.names)
    roots = {g.split("*", 1)[0].rstrip(".").split(".")[0] for g in entry.modules.split()}
    if not any(_installed(r) for r in roots):
        result.status = "not installed"
        return result
    for root in sorted(roots):
        for module, path in _package_modules(root):
            if not globs.fullmatch(module) or (exclude is not None and exclude.fullmatch(module)):
                continue
            if _TEST_MODULES.search(module):
                continue
            if path.endswith(".py"):
                _pattern_source(result, module, path, names_re)
            else:
                _pattern_compiled(result, module, names_re)
    if result.detail:
        result.status = "fail"
    return result


def _pattern_source(result: Result, module: str, path: str, names_re: re.Pattern[str]) -> None:
    src = module_source(module, path)
    if src is None:
        return
    for name, node in {**src.classes, **src.functions}.items():
        if not names_re.fullmatch(name):
            continue
        result.names += 1
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            result.detail.append(f"{module}.{name}: a function matched a class pattern")
            continue
        if len(result.examples) < PATTERN_EXAMPLES:
            result.examples.append(f"{module}.{name}")
        key = f"{module}.{name}"
        for reach in audit_node(src, node):
            if key in AUDIT_ACCEPTED:
                continue
            result.detail.append(f"{key}: {reach}")
    defined = set(src.classes) | set(src.functions)
    for local, origin in src.imports.items():
        if names_re.fullmatch(local) and local not in defined:
            result.names += 1
            problem = _origin_problem(origin)
            if problem:
                result.detail.append(f"{module}.{local}: re-export of {origin}: {problem}")
    for node in src.tree.body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and names_re.fullmatch(target.id) and target.id not in defined:
                    problem = _value_problem(node.value, src)
                    if problem:
                        result.detail.append(f"{module}.{target.id} = {ast.unparse(node.value)[:60]}: {problem}")


def _origin_problem(origin: str) -> str:
    """Why a name re-exported from ``origin`` must not be allowed ("" when its origin passes the audit)."""
    why = _danger(origin)
    if why:
        return why
    module, _, name = origin.rpartition(".")
    if not module or module in _HARMLESS_ORIGINS:
        return ""
    if classify(module, name).tier is Tier.DENIED:
        return f"denied ({classify(module, name).category.value})"  # type: ignore[union-attr]
    src = module_source(module)
    node = _find(src, name) if src is not None else None
    if src is None or node is None:
        return ""  # compiled or a package attribute: nothing to read (typing, collections.abc...)
    reach = audit_node(src, node)
    return "; ".join(reach)


def _value_problem(value: ast.expr, src: ModuleSource) -> str:
    """A module-level value matched by a class pattern: data is harmless, a dangerous callable is not."""
    if isinstance(value, (ast.Constant, ast.Dict, ast.List, ast.Tuple, ast.Set, ast.Subscript, ast.BinOp)):
        return ""
    target = value.func if isinstance(value, ast.Call) else value
    parts = _dotted(target)
    if not parts:
        return ""
    if parts[0] in src.classes or parts[0] in src.functions:
        node = src.classes.get(parts[0]) or src.functions.get(parts[0])
        if isinstance(value, ast.Call):
            return ""  # an instance built at import time (data)
        return "; ".join(audit_node(src, node)) if node is not None else ""  # type: ignore[arg-type]
    if parts[0] in src.imports:
        origin = ".".join([src.imports[parts[0]], *parts[1:]])
        if isinstance(value, ast.Call):
            return _danger(origin)
        return _origin_problem(origin)
    return ""


def _class_like_origin(module: str, name: str) -> bool:
    """An origin in the same library family that the pattern itself would cover (sibling modules)."""
    for pack in PACKS:
        for entry in pack.entries:
            if isinstance(entry, Pattern):
                globs = re.compile("|".join(fnmatch.translate(g) for g in entry.modules.split()))
                if globs.fullmatch(module) and re.fullmatch(entry.names, name):
                    return True
    return False


def _harmless_alias(value: ast.expr, src: ModuleSource) -> bool:
    """``Alias = SomeClass`` of a class in this module, a TypeVar, or a literal."""
    if isinstance(value, ast.Constant):
        return True
    parts = _dotted(value)
    if parts and parts[0] in src.classes:
        return True
    if isinstance(value, ast.Call) and _dotted(value.func)[-1:] in (["TypeVar"], ["NewType"]):
        return True
    if parts and parts[0] in src.imports:
        origin = ".".join([src.imports[parts[0]], *parts[1:]])
        omod, _, oname = origin.rpartition(".")
        return bool(omod) and (classify(omod, oname).tier is Tier.ALLOWED or _class_like_origin(omod, oname))
    return False


def _pattern_compiled(result: Result, module: str, names_re: re.Pattern[str]) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mod = importlib.import_module(module)
    except Exception:  # noqa: BLE001 - a compiled module that does not import cannot be unpickled either
        return
    for name, obj in vars(mod).items():
        if not names_re.fullmatch(name):
            continue
        owner = getattr(obj, "__module__", module) or module
        if owner != module:
            continue  # re-exports of other compiled modules are audited where they are defined
        result.names += 1
        if not inspect.isclass(obj) and callable(obj):
            result.detail.append(f"{module}.{name}: compiled {type(obj).__name__}, a callable but not a class")
        elif len(result.examples) < PATTERN_EXAMPLES:
            result.examples.append(f"{module}.{name} (compiled)")


# --- report -------------------------------------------------------------------------------------
def run() -> list[Result]:
    results = []
    for pack in PACKS:
        for entry in pack.entries:
            results.append(
                audit_pattern(pack.library, entry) if isinstance(entry, Pattern) else audit_allow(pack.library, entry)
            )
    for entry in PURE_DECODERS:
        results.append(audit_allow("pure decoders", entry))
    return results


def _versions() -> list[str]:
    out = [f"python {sys.version.split()[0]}"]
    for dist in (
        "numpy pandas scikit-learn scipy torch transformers tokenizers accelerate gensim dill cloudpickle joblib "
        "xgboost lightgbm pyarrow catboost torchvision timm ultralytics mlflow"
    ).split():
        try:
            out.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(f"{dist} (not installed)")
    return out


def report(results: list[Result]) -> str:
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    unjustified = counts.get("fail", 0) + counts.get("missing", 0)
    lines = [
        "# Pickle allow-pack audit",
        "",
        "Generated by `python tools/pack_audit.py --report analyzers/pickles/pack_audit.md` (see tools/README.md).",
        "Every allow entry of `analyzers/pickles/packs.py`: exact names were imported and their source read with",
        "`ast`; pattern entries were expanded over the installed packages. What unpickling can run of each name",
        "(function bodies; class `__new__`/`__init__`/`__post_init__`/`__setstate__`/`__setitem__`/`append`/",
        "`extend`) and one level of the calls they make must not reach eval/exec/compile, import machinery,",
        "process spawning, file writes, the network or nested unpickling.",
        "",
        "Environment: " + ", ".join(_versions()) + ".",
        "",
        f"**Entries: {len(results)}; " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) + f"; "
        f"unjustified: {unjustified}.**",
        "",
        "Statuses: *pass* (source read, nothing reached); *compiled* (C/Cython, no Python source: accepted on the",
        "pack's reason, these rebuild data); *accepted* (a reach a reviewer accepted in `AUDIT_ACCEPTED`, reason",
        "shown); *not installed* (library absent from the audit environment: the entry is a class-shaped pattern",
        "or exact names, not audited here); *fail* / *missing* (unjustified). Limits: calls through attributes of",
        "objects whose type the source does not show are not resolved; compiled code is not read.",
        "",
        "| pack | entry | status | names | notes |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        notes = "; ".join(r.detail[:20] + (["..."] if len(r.detail) > 20 else []))
        if not notes and r.examples:
            notes = "e.g. " + ", ".join(r.examples[:6])
        notes = notes.replace("|", "\\|")
        entry = r.entry.replace("|", "\\|")
        if len(entry) > 160:
            entry = entry[:157] + "..."
        lines.append(f"| {r.pack} | `{entry}` | {r.status} | {r.names} | {notes} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", type=Path, help="write the Markdown report here")
    parser.add_argument("--check", action="store_true", help="exit 1 when an entry is unjustified")
    args = parser.parse_args()
    results = run()
    text = report(results)
    if args.report:
        args.report.write_text(text)
    else:
        sys.stdout.write(text)
    bad = [r for r in results if r.status in ("fail", "missing")]
    for r in bad:
        print(f"UNJUSTIFIED {r.pack}: {r.entry}: {'; '.join(r.detail[:5])}", file=sys.stderr)
    return 1 if (args.check and bad) else 0


if __name__ == "__main__":
    sys.exit(main())
