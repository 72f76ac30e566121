"""Chat-template lint: Jinja2 templates that models ship (tokenizer configs, GGUF metadata).

Runtimes render these templates on every request; one that renders outside a
sandbox (llama-cpp-python before 0.2.72, CVE-2024-34359) runs whatever a
server-side template injection reaches. The template is parsed with
``ImmutableSandboxedEnvironment().parse()`` (never rendered) and its syntax tree
is checked for the escape gadgets: private and dunder attribute access
(``__class__``, ``__globals__``, ``_module``...), the ``attr`` filter with
dunder or computed names, process and import primitives (``os``, ``popen``),
and includes of other templates. Benign templates (``raise_exception``,
``namespace``, ``loop``, ``strftime_now``, ``tojson``, string methods) pass.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import jinja2.ext
from jinja2 import nodes
from jinja2.exceptions import TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ..core.findings import Finding, Rule, Severity

ESCAPE = Rule("MLG-TPL-001", Severity.CRITICAL, "Chat template reaches Python internals (sandbox escape)", "templates")
PRIMITIVE = Rule("MLG-TPL-002", Severity.CRITICAL, "Chat template names process or import primitives", "templates")
COMPUTED = Rule("MLG-TPL-003", Severity.HIGH, "Chat template computes attribute names at render time", "templates")
INCLUDE = Rule("MLG-TPL-004", Severity.MEDIUM, "Chat template includes or imports other templates", "templates")
UNPARSEABLE = Rule(
    "MLG-TPL-005", Severity.MEDIUM, "Chat template does not parse; it was not checked", "templates", incomplete=True
)

MAX_TEMPLATE_CHARS = 1 << 20
"""Longer templates are not parsed (incomplete): real chat templates are a few KB."""

# Attribute names that are Python internals even without a leading underscore.
_INTERNAL = frozenset(
    {
        "mro",
        "func_globals",
        "func_code",
        "f_globals",
        "f_locals",
        "f_back",
        "f_builtins",
        "gi_frame",
        "gi_code",
        "cr_frame",
        "tb_frame",
        "co_code",
    }
)
# Attribute names that are process, import or code primitives; a template never needs them.
_PRIMITIVES = frozenset(
    {
        "os",
        "popen",
        "system",
        "subprocess",
        "import_module",
        "spawn",
        "spawnv",
        "check_output",
        "getoutput",
        "load_module",
        "execfile",
        "eval",
        "exec",
        "builtins",
        "sys",
        "modules",
    }
)
# Dunder names escape chains use; a string constant equal to one is flagged (``{% set k = '__class__' %}``).
_ESCAPE_DUNDERS = frozenset(
    {
        "__class__",
        "__base__",
        "__bases__",
        "__mro__",
        "__subclasses__",
        "__globals__",
        "__builtins__",
        "__import__",
        "__init__",
        "__dict__",
        "__getattribute__",
        "__code__",
        "__func__",
        "__self__",
        "__module__",
        "__loader__",
        "__spec__",
        "__reduce__",
        "__reduce_ex__",
        "__getitem__",
        "__call__",
    }
)
# A str.format field reaching an attribute or item by dunder name: '{0.__class__}', '{x[__globals__]}'.
_FORMAT_DUNDER = re.compile(r"\{[^{}]*[.\[](__\w+__)")


class _GenerationTag(jinja2.ext.Extension):
    """Parses transformers' ``{% generation %}...{% endgeneration %}`` block (body only; nothing runs)."""

    tags = {"generation"}

    def parse(self, parser: jinja2.parser.Parser) -> list[nodes.Node]:
        next(parser.stream)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


def _environment() -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[_GenerationTag, jinja2.ext.loopcontrols, jinja2.ext.do],
    )


def lint_template(source: str, location: str) -> list[Finding]:
    """Findings for one chat template; ``location`` names where it sits (file and field)."""
    if len(source) > MAX_TEMPLATE_CHARS:
        return [UNPARSEABLE.finding(location, f"template of {len(source)} characters is larger than mlgate parses")]
    try:
        tree = _environment().parse(source)
    except TemplateSyntaxError as exc:
        return [UNPARSEABLE.finding(f"{location}:{exc.lineno}", f"Jinja syntax error: {exc.message}")]
    except RecursionError:
        return [UNPARSEABLE.finding(location, "template nested too deeply to parse")]
    hits: dict[Rule, list[tuple[int, str, str]]] = {}
    for rule, node, name in _gadgets(tree):
        hits.setdefault(rule, []).append((node.lineno, name, _render(node)))
    findings = []
    for rule, items in hits.items():
        names = sorted({name for _, name, _ in items})
        line, _, example = min(items)
        findings.append(rule.finding(f"{location}:{line}", f"{_MESSAGES[rule]} {', '.join(names)} (e.g. {example})"))
    return findings


_MESSAGES = {
    ESCAPE: "template reaches Python internals a sandbox escape needs:",
    PRIMITIVE: "template names process or import primitives:",
    COMPUTED: "template builds attribute names at render time:",
    INCLUDE: "template pulls in other templates, whose content depends on the runtime's loader:",
}


def _gadgets(tree: nodes.Node) -> Iterator[tuple[Rule, nodes.Node, str]]:
    for node in tree.find_all(nodes.Node):
        if isinstance(node, nodes.Getattr):
            yield from _name_hit(node, node.attr)
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            if node.arg.value.startswith("_") or node.arg.value in _INTERNAL:
                yield ESCAPE, node, node.arg.value
        elif isinstance(node, nodes.Filter) and node.name == "attr":
            arg = node.args[0] if node.args else None
            if isinstance(arg, nodes.Const) and isinstance(arg.value, str):
                yield from _name_hit(node, arg.value)
            else:
                yield COMPUTED, node, "|attr(<computed>)"
        elif isinstance(node, nodes.Const) and isinstance(node.value, str):
            if node.value in _ESCAPE_DUNDERS:
                yield ESCAPE, node, node.value
            for match in _FORMAT_DUNDER.findall(node.value):
                yield ESCAPE, node, match
        elif isinstance(node, (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
            yield INCLUDE, node, type(node).__name__.lower()


def _name_hit(node: nodes.Node, name: str) -> Iterator[tuple[Rule, nodes.Node, str]]:
    if name.startswith("_") or name in _INTERNAL:
        yield ESCAPE, node, name
    elif name in _PRIMITIVES:
        yield PRIMITIVE, node, name


def _render(node: nodes.Node, depth: int = 0) -> str:
    """A short source-like rendering of an expression chain, for messages."""
    if depth > 12:
        return "..."
    if isinstance(node, nodes.Name):
        return node.name
    if isinstance(node, nodes.Const):
        return repr(node.value)[:40]
    if isinstance(node, nodes.Getattr):
        return f"{_render(node.node, depth + 1)}.{node.attr}"
    if isinstance(node, nodes.Getitem):
        return f"{_render(node.node, depth + 1)}[{_render(node.arg, depth + 1)}]"
    if isinstance(node, nodes.Filter):
        inner = _render(node.node, depth + 1) if node.node is not None else ""
        args = ", ".join(_render(a, depth + 1) for a in node.args)
        return f"{inner}|{node.name}({args})"
    if isinstance(node, nodes.Call):
        return f"{_render(node.node, depth + 1)}(...)"
    return type(node).__name__
