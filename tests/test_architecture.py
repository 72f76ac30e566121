"""The shape of the house, checked from source with ``ast`` (docs/architecture.md).

* ``mlgate.analyzers`` never imports ``mlgate.controller``;
* no import cycle between mlgate modules, function-level imports included (``if TYPE_CHECKING``
  imports never run and are not counted);
* inside each half, modules import each other relatively (only controller -> analyzers is absolute);
* the MLflow server plugin imports only the standard library at import time (its verdict module
  and MLflow are imported when a request needs them);
* every package directory is listed in ``pyproject.toml``, and no top-level module hides a concern.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from mlgate.analyzers.core.compat import tomllib

REPO = Path(__file__).resolve().parents[1]
HALVES = {"analyzers": "mlgate.analyzers", "controller": "mlgate.controller"}
# Top-level modules allowed beside the package faces: genuinely cross-cutting files.
TOP_LEVEL_ALLOWED = {"controller/__main__.py", "controller/scanning.py"}


def _modules() -> dict[str, Path]:
    out = {}
    for folder, prefix in HALVES.items():
        for path in (REPO / folder).rglob("*.py"):
            rel = path.relative_to(REPO / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([prefix, *parts])] = path
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _imports(name: str, *, top_level_only: bool = False) -> list[tuple[str, int, bool]]:
    """(imported module, line, written relatively) for every import in module ``name``."""
    tree = ast.parse(MODULES[name].read_text())
    package = name if _is_package(name) else name.rpartition(".")[0]
    for node in ast.walk(tree):  # imports only for type checkers never run: drop them
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            node.body = []
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno, False) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.append((candidate if candidate in MODULES else target, node.lineno, bool(node.level)))
    return found


def _internal(target: str) -> str | None:
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


def test_analyzers_never_import_the_controller() -> None:
    bad = [
        f"{name}:{line} imports {target}"
        for name in MODULES
        if name.startswith("mlgate.analyzers")
        for target, line, _ in _imports(name)
        if target.startswith("mlgate.controller")
    ]
    assert not bad, bad


def test_no_import_cycles_counting_function_level_imports() -> None:
    graph = {name: sorted({m for t, _, _ in _imports(name) if (m := _internal(t)) and m != name}) for name in MODULES}
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for name in sorted(graph):
        if name not in state:
            visit(name)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_imports_inside_each_half_are_relative() -> None:
    bad = []
    for name in MODULES:
        own = next(prefix for prefix in HALVES.values() if name.startswith(prefix))
        for target, line, relative in _imports(name):
            if target.startswith(own) and not relative:
                bad.append(f"{name}:{line} imports {target} absolutely")
    assert not bad, bad


def test_mlflow_plugin_imports_only_the_standard_library_at_import_time() -> None:
    plugin = "mlgate.controller.mlflow.server_plugin"
    allowed = set(sys.stdlib_module_names) | {"__future__"}
    chain = [plugin]
    # the packages MLflow imports on the way to the plugin must be free of imports too
    parts = plugin.split(".")
    chain += [".".join(parts[:i]) for i in range(2, len(parts)) if ".".join(parts[:i]) in MODULES]
    bad = [
        f"{name}:{line} imports {target}"
        for name in chain
        for target, line, _ in _imports(name, top_level_only=True)
        if target.split(".")[0] not in allowed
    ]
    assert not bad, bad


def test_every_package_directory_is_listed_in_pyproject() -> None:
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    packages = {name for name in MODULES if _is_package(name)}
    assert packages - listed == set(), f"packages missing from pyproject.toml: {sorted(packages - listed)}"
    assert {p for p in listed if p not in packages and not p.endswith("demo_models")} == set()


def test_no_top_level_modules_besides_faces_and_cross_cutting_files() -> None:
    stray = [
        str(path.relative_to(REPO))
        for folder in HALVES
        for path in (REPO / folder).glob("*.py")
        if path.name != "__init__.py" and str(path.relative_to(REPO)) not in TOP_LEVEL_ALLOWED
    ]
    assert not stray, f"top-level modules should live in a concern folder: {stray}"


def test_environment_is_read_only_in_the_config_package() -> None:
    """``controller/config/environment.py`` lists every variable; nothing else touches ``os.environ``."""
    bad = []
    for name, path in MODULES.items():
        if name.startswith("mlgate.controller.config"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            text = ast.unparse(node) if isinstance(node, (ast.Attribute, ast.Call)) else ""
            if text in ("os.environ", "os.getenv") or text.startswith("os.getenv("):
                bad.append(f"{name}:{node.lineno}")
    assert not bad, f"environment read outside controller/config: {sorted(set(bad))}"
