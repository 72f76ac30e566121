"""torch.fx GraphModule pickles: the generated source they carry, checked with ``ast`` and never run.

``torch.save`` of a ``torch.fx.GraphModule`` pickles it as
``torch.fx.graph_module.reduce_graph_module(body, import_block)``; loading it
compiles and runs ``import_block + body["_code"]``. torch generates that source
and treats it as data, so a file can put any Python there. mlgate's decision
(docs/rules.md, MLG-PKL-027): the source is approved only when it has the shape
torch generates, checked statically:

* the import block only imports from ``torch``, ``math``, ``operator`` and
  ``typing`` (and binds ``NoneType = type(None)``);
* the code is only ``def`` statements, whose bodies are straight-line
  assignments, expression statements and ``return``, with no imports, classes,
  loops, ``with``/``try``, lambdas, ``global`` or dunder attributes;
* every name it reads is a parameter, a local it assigned, a name the import
  block bound, or a harmless builtin (``getattr`` only as ``getattr(self, "...")``);
* every dotted reference reached from an imported module passes the deny
  catalogue (``torch.load``, ``torch.hub``... fail), except torch's own operator
  namespaces under ``torch._C`` (``torch._C._nn.linear``).

Anything else, or source the scan cannot see, is reported as code that runs at load.
"""

from __future__ import annotations

import ast

from .names import denied
from .packs import DENIED_ATTRIBUTES

_IMPORT_ROOTS = frozenset({"torch", "math", "operator", "typing"})
_BUILTINS = frozenset(
    {
        "getattr",
        "len",
        "int",
        "float",
        "bool",
        "tuple",
        "list",
        "dict",
        "slice",
        "range",
        "isinstance",
        "type",
        "max",
        "min",
        "abs",
        "sum",
        "str",
        "None",
        "True",
        "False",
        "Ellipsis",
        "print",
        "NoneType",
    }
)
_OP_NAMESPACES = ("torch._C._nn.", "torch._C._fft.", "torch._C._linalg.", "torch._C._special.", "torch._C._nested.")
_STATEMENTS = (ast.Assign, ast.AnnAssign, ast.Expr, ast.Return, ast.Pass, ast.Delete)
MAX_SOURCE = 1 << 20
"""Longest generated source parsed (larger is reported as unreadable)."""


def fx_source_problem(import_block: str, code: str) -> str:
    """Why ``import_block + code`` is not the shape torch.fx generates ("" when it is)."""
    if len(import_block) + len(code) > MAX_SOURCE:
        return "the generated source is too large to check"
    try:
        imports = ast.parse(import_block)
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return "the source does not parse"
    bound: dict[str, str] = {"NoneType": "builtins.NoneType"}
    for node in imports.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] not in _IMPORT_ROOTS:
                    return f"the import block imports {alias.name}"
                if alias.asname:
                    bound[alias.asname] = alias.name
                else:
                    bound[alias.name.split(".")[0]] = alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            if node.level or not node.module or node.module.split(".")[0] not in _IMPORT_ROOTS:
                return f"the import block imports from {node.module or 'a relative module'}"
            for alias in node.names:
                if alias.name == "*":
                    return f"the import block star-imports {node.module}"
                bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif not _is_nonetype(node):
            return f"the import block runs {ast.unparse(node)[:80]!r}"
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef) or node.decorator_list:
            return f"module-level statement {ast.unparse(node)[:80]!r}"
        problem = _function_problem(node, bound)
        if problem:
            return f"{node.name}(): {problem}"
    return ""


def _is_nonetype(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Assign)
        and len(node.targets) == 1
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id == "NoneType"
        and ast.unparse(node.value) == "type(None)"
    )


def _function_problem(fn: ast.FunctionDef, bound: dict[str, str]) -> str:
    local = {a.arg for a in (*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs)}
    for extra in (fn.args.vararg, fn.args.kwarg):
        if extra is not None:
            local.add(extra.arg)
    for stmt in fn.body:
        if not isinstance(stmt, _STATEMENTS):
            return f"statement {ast.unparse(stmt)[:80]!r} torch.fx does not generate"
        for node in ast.walk(stmt):
            if isinstance(node, (ast.Lambda, ast.NamedExpr, ast.Await, ast.Yield, ast.YieldFrom)):
                return f"{type(node).__name__.lower()} in {ast.unparse(stmt)[:80]!r}"
            if isinstance(node, ast.Attribute) and node.attr.startswith("__"):
                return f"dunder attribute {node.attr}"
            if isinstance(node, ast.Attribute) and node.attr in DENIED_ATTRIBUTES:
                return f"method {node.attr} ({DENIED_ATTRIBUTES[node.attr].value})"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr":
                if not (
                    len(node.args) == 2
                    and isinstance(node.args[0], ast.Name)
                    and node.args[0].id == "self"
                    and isinstance(node.args[1], ast.Constant)
                    and isinstance(node.args[1].value, str)
                    and not node.args[1].value.startswith("__")
                ):
                    return f"getattr other than getattr(self, 'name'): {ast.unparse(node)[:80]!r}"
        for node in ast.walk(stmt):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                if node.id not in local and node.id not in bound and node.id not in _BUILTINS:
                    return f"name {node.id!r} that is neither a parameter, a local nor an import"
        inner = {id(n.value) for n in ast.walk(stmt) if isinstance(n, ast.Attribute)}
        for node in ast.walk(stmt):
            if isinstance(node, ast.Attribute) and id(node) not in inner:  # whole chains only
                dotted = _dotted(node, bound)
                if dotted and not dotted.startswith(_OP_NAMESPACES):
                    parts = dotted.split(".")
                    for k in range(1, len(parts)):
                        if denied(".".join(parts[:k]), ".".join(parts[k:])) is not None:
                            return f"reference to {dotted}"
        targets: list[ast.expr] = []
        if isinstance(stmt, ast.Assign):
            targets = list(stmt.targets)
        elif isinstance(stmt, ast.AnnAssign):
            targets = [stmt.target]
        for target in targets:
            for node in ast.walk(target):
                if isinstance(node, ast.Name):
                    if node.id in bound or node.id == "self":
                        return f"assignment to {node.id}"
                    local.add(node.id)
                elif isinstance(node, (ast.Attribute, ast.Subscript)):
                    return f"assignment to {ast.unparse(node)[:60]}"
    return ""


def _dotted(node: ast.Attribute, bound: dict[str, str]) -> str:
    """``torch.load`` for an attribute chain rooted at an imported name ("" otherwise)."""
    parts = [node.attr]
    value: ast.expr = node.value
    while isinstance(value, ast.Attribute):
        parts.append(value.attr)
        value = value.value
    if not isinstance(value, ast.Name) or value.id not in bound:
        return ""
    return ".".join([bound[value.id], *reversed(parts)])
