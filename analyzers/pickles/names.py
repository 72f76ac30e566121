"""Resolve pickle global names the way ``find_class`` does, and place each in a policy tier.

``classify(module, name)`` canonicalises the written name (module aliases such
as ``posix``/``nt``/``_pickle``, Python 2 names through ``_compat_pickle``),
follows dotted qualnames the way protocol 4 walks attributes (``torch`` +
``serialization.os.system`` reaches ``os.system``; ``pathlib`` + ``os.system``
too), matches denied packages by parent module (``asyncio.unix_events...``),
and returns a ``Resolution``: allowed (with the pack's reason), denied (with
its category), unknown standard-library name, a dotted name that walks into
another module, or unknown. Nothing is imported: the tables in
``packs`` and ``sys.stdlib_module_names`` are all it consults.
"""

from __future__ import annotations

import _compat_pickle
import enum
import fnmatch
import re
import sys
from dataclasses import dataclass
from functools import lru_cache

from ..core.records import NamedTuple
from ..embedded_code.marshal_names import DANGEROUS_NAMES
from .packs import (
    ALIASES,
    BEHAVIOURS,
    CATEGORY_RULES,
    DENIED,
    DENIED_ATTRIBUTES,
    DENIED_PATTERNS,
    PACKS,
    PURE_DECODERS,
    Allow,
    Behaviour,
    Category,
    Pattern,
)

MAX_PARTS = 16
"""Dotted qualnames with more parts than this are not walked (and are reported as such)."""


class Tier(enum.IntEnum):
    """Policy tiers, ordered by concern."""

    ALLOWED = 0
    UNKNOWN = 1  # third-party name in no pack
    STDLIB = 2  # standard-library name in no pack: stdlib gadgets are the usual bypass
    CROSSING = 3  # dotted qualname that walks through another module
    UNRESOLVED = 4  # the name is not a literal (computed, EXT code, dropped by a budget)
    DENIED = 5


@dataclass(frozen=True)
class Resolution:
    """What a global name refers to and which tier it falls in."""

    module: str | None
    name: str | None
    tier: Tier
    category: Category | None = None
    reason: str = ""  # the pack's reason (allowed), the deny note, or why it is unresolved
    via: str = ""  # how the written name reaches the target, when it is not direct
    behaviour: Behaviour | None = None

    @property
    def dotted(self) -> str:
        if self.module is None or self.name is None:
            return "<unresolved>"
        return f"{self.module}.{self.name}" if self.name else self.module


def _prefixes(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1)]


class _CompiledPattern(NamedTuple):
    modules: re.Pattern[str]
    exclude: re.Pattern[str] | None
    names: re.Pattern[str]
    reason: str
    roots: tuple[str, ...]  # literal module prefixes before the first wildcard


_TEST_MODULES = re.compile(r"(?:^|\.)(?:tests?|testing|_testing|conftest)(?:\.|$)")


def _globs(text: str) -> re.Pattern[str]:
    return re.compile("|".join(fnmatch.translate(g) for g in text.split()))


def _roots(pattern: Pattern) -> tuple[str, ...]:
    return tuple(g.split("*", 1)[0].rstrip(".") for g in pattern.modules.split())


def _compile(pattern: Pattern) -> _CompiledPattern:
    return _CompiledPattern(
        _globs(pattern.modules),
        _globs(pattern.exclude) if pattern.exclude else None,
        re.compile(pattern.names),
        pattern.reason,
        _roots(pattern),
    )


def _build() -> tuple[
    dict[tuple[str, str], str], list[Pattern], dict[str, Category], dict[str, list[tuple[str, Category]]]
]:
    exact: dict[tuple[str, str], str] = {}
    subtree: list[Pattern] = []
    entries: list[Allow | Pattern] = [e for pack in PACKS for e in pack.entries] + list(PURE_DECODERS)
    for entry in entries:
        if isinstance(entry, Pattern):
            subtree.append(entry)
        else:
            for name in entry.names:
                exact.setdefault((entry.module, name), entry.reason)
    whole: dict[str, Category] = {}
    named: dict[str, list[tuple[str, Category]]] = {}
    for deny in DENIED:
        if deny.names is None:
            whole.setdefault(deny.module, deny.category)
        else:
            named.setdefault(deny.module, []).extend((n, deny.category) for n in deny.names)
    return exact, subtree, whole, named


_ALLOW_EXACT, _ALLOW_PATTERNS, _DENY_WHOLE, _DENY_NAMED = _build()
_DENY_NOTES = {d.module: d.note for d in DENIED if d.note and d.names is None}
_DENY_NAME_NOTES = {(d.module, n): d.note for d in DENIED if d.note and d.names is not None for n in d.names}


# The pattern entries are compiled on first use: most pickles name only exact entries, and compiling
# every glob and name pattern would cost more than the rest of the module's import.
@lru_cache(maxsize=1)
def _allow_subtree() -> tuple[_CompiledPattern, ...]:
    return tuple(_compile(p) for p in _ALLOW_PATTERNS)


@lru_cache(maxsize=1)
def _deny_patterns() -> tuple[tuple[re.Pattern[str], re.Pattern[str], Category, str], ...]:
    return tuple((_globs(d.modules), re.compile(d.names), d.category, d.note) for d in DENIED_PATTERNS)


_KNOWN_TOP = (
    frozenset(sys.stdlib_module_names) | {m.split(".")[0] for m in _DENY_WHOLE} | {m.split(".")[0] for m in _DENY_NAMED}
)
"""Top-level module names a dotted qualname must not walk into."""
_STDLIB = frozenset(sys.stdlib_module_names) | {"builtins"}
_MENTIONED = [
    *_DENY_WHOLE,
    *_DENY_NAMED,
    *(n for v in _DENY_NAMED.values() for n, _ in v),
    *(m for m, _ in _ALLOW_EXACT),
    *(n for _, n in _ALLOW_EXACT),
    *(root for p in _ALLOW_PATTERNS for root in _roots(p)),
]
KNOWN_NAMES = frozenset(_MENTIONED) | frozenset(".".join(_MENTIONED).split(".")) | _STDLIB | DANGEROUS_NAMES
"""Module and attribute names the policy mentions, whole and each dotted part (one split of them all
joined, in C): memoized strings equal to one are always kept."""


def canonical(module: str, name: str) -> tuple[str, str, str]:
    """(module, name, via): Python 2 names mapped as ``fix_imports`` does, module aliases resolved."""
    via = []
    mapped = _compat_pickle.NAME_MAPPING.get((module, name))
    if mapped is not None:
        via.append(f"{module}.{name} -> {mapped[0]}.{mapped[1]}")
        module, name = mapped
    target = ALIASES.get(module) or _compat_pickle.IMPORT_MAPPING.get(module)
    if target is not None and target != module:
        via.append(f"{module} -> {target}")
        module = target
    return module, name, "; ".join(via)


def denied(module: str, name: str) -> Category | None:
    """The category denying ``module.name`` (parents of ``module`` included), or None."""
    for prefix in _prefixes(module):
        category = _DENY_WHOLE.get(prefix)
        if category is not None:
            return category
    for denied_name, category in _DENY_NAMED.get(module, ()):
        if name == denied_name or name.startswith(denied_name + "."):
            return category
    for modules, names, category, _ in _deny_patterns():
        if modules.fullmatch(module) and names.fullmatch(name.split(".", 1)[0]):
            return category
    if "." in name:
        return DENIED_ATTRIBUTES.get(name.rsplit(".", 1)[1])
    return None


def allowed(module: str, name: str) -> str | None:
    """The pack reason allowing ``module.name``, or None. Pattern entries allow undotted names only."""
    reason = _ALLOW_EXACT.get((module, name))
    if reason is not None:
        return reason
    if not name or "." in name or _TEST_MODULES.search(module):
        return None  # patterns never reach a library's test helpers
    for pattern in _allow_subtree():
        if (
            pattern.modules.fullmatch(module)
            and not (pattern.exclude is not None and pattern.exclude.fullmatch(module))
            and pattern.names.fullmatch(name)
        ):
            return pattern.reason
    return None


def _named_deny(module: str, name: str) -> bool:
    """Whether ``module.name`` is denied by name (not only because its module is denied as a whole)."""
    return any(name == n or name.startswith(n + ".") for n, _ in _DENY_NAMED.get(module, ()))


def is_stdlib(module: str) -> bool:
    return module.split(".")[0] in _STDLIB


def _walks(module: str, parts: list[str]) -> list[tuple[str, str, bool]]:
    """Where a dotted qualname may land: (module, rest, crosses into a known module)."""
    out = []
    n = len(parts)
    for k in range(1, n):
        sub = f"{module}.{'.'.join(parts[:k])}"
        out.append((sub, ".".join(parts[k:]), sub in _DENY_WHOLE or sub in _DENY_NAMED))
    for j in range(n - 1):
        for k in range(j, n - 1):
            absolute = ".".join(parts[j : k + 1])
            out.append((absolute, ".".join(parts[k + 1 :]), parts[j] in _KNOWN_TOP))
    return out


@lru_cache(maxsize=8192)
def classify(module: str | None, name: str | None) -> Resolution:
    """Resolve and tier the global ``module`` / ``name`` (``name`` "" means the module object)."""
    if module is None or name is None:
        return Resolution(None, None, Tier.UNRESOLVED, reason="the name is not a literal in the pickle")
    module, name, via = canonical(module, name)
    behaviour = BEHAVIOURS.get((module, name))
    parts = name.split(".") if name else []
    if len(parts) > MAX_PARTS:
        return Resolution(module, name, Tier.CROSSING, reason=f"dotted name with {len(parts)} parts", via=via)
    exact = _ALLOW_EXACT.get((module, name))
    if exact is not None and not _named_deny(module, name):
        # a pack entry naming this exact qualname overrides a whole-module deny (torch._C.Generator)
        return Resolution(module, name, Tier.ALLOWED, reason=exact, via=via, behaviour=behaviour)
    worst: Resolution | None = None
    category = denied(module, name)
    if category is not None:
        worst = Resolution(module, name, Tier.DENIED, category, _note(module, name), via, behaviour)
    crossing = ""
    if len(parts) > 1:
        for target, rest, crosses in _walks(module, parts):
            category = denied(target, rest)
            if category is not None and (worst is None or _gravity(category) > _gravity(worst.category)):
                hop = f"{module}.{name} reaches {target}.{rest}"
                worst = Resolution(target, rest, Tier.DENIED, category, _note(target, rest), _join(via, hop), behaviour)
            if crosses and not crossing:
                crossing = f"{module}.{name} walks into module {target}"
    if worst is not None:
        return worst
    reason = allowed(module, name)
    if reason is not None:
        return Resolution(module, name, Tier.ALLOWED, reason=reason, via=via, behaviour=behaviour)
    if crossing:
        return Resolution(module, name, Tier.CROSSING, reason=crossing, via=via, behaviour=behaviour)
    if is_stdlib(module):
        return Resolution(
            module,
            name,
            Tier.STDLIB,
            reason="standard-library name outside the allowlist",
            via=via,
            behaviour=behaviour,
        )
    return Resolution(module, name, Tier.UNKNOWN, reason="not in any allowlist pack", via=via, behaviour=behaviour)


def _gravity(category: Category | None) -> int:
    return CATEGORY_RULES[category].severity if category is not None else -1


def _note(module: str, name: str = "") -> str:
    note = _DENY_NAME_NOTES.get((module, name.split(".", 1)[0]))
    if note:
        return note
    for modules, names, _, text in _deny_patterns():
        if modules.fullmatch(module) and names.fullmatch(name.split(".", 1)[0]):
            return text
    for prefix in _prefixes(module):
        if prefix in _DENY_NOTES:
            return _DENY_NOTES[prefix]
    return ""


def _join(a: str, b: str) -> str:
    return f"{a}; {b}" if a else b
