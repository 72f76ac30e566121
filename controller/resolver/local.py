"""Local paths and code files a model names, resolved relative to the file that names them.

A relative path starts from the folder of the file that names it (``sub/config.json``
naming ``modeling.py`` means ``sub/modeling.py``), like the loaders do. Absolute
and home paths are never resolved: they name whatever is on the loading machine,
not something that ships with the model. Paths that leave the model folder (by
``..`` or through a symlink) are not resolved either. A path that names a part
of the scanned model is reported as such (it was scanned with the model); a
path next to a single-file target is scanned as a dependency of its own. Code
references that name a module file fall back to the package form
(``pkg/mod.py`` -> ``pkg/mod/__init__.py``).
"""

from __future__ import annotations

from pathlib import Path

from mlgate.analyzers.configs.sites import relative_inside
from mlgate.analyzers.core.references import Reference, RefKind

from .interface import Origin, Resolution, unresolved

_SEPARATORS = "!#@:"


class LocalResolver:
    """Resolves ``local`` and ``code`` references against the model's own folder."""

    def resolve(self, reference: Reference, origin: Origin) -> Resolution:
        value = reference.ref.strip()
        if value.startswith(("/", "~", "\\\\")) or (len(value) > 2 and value[1] == ":" and value[2] in "\\/"):
            return unresolved(
                f"absolute path {value}: it names whatever is on the loading machine, so mlgate does not scan it"
            )
        naming = naming_file(origin, reference.location)
        relative = relative_inside(naming, value)
        if relative is None:
            return unresolved(f"{value} (named by {naming or 'the model'}) is outside the model folder")
        candidates = [relative]
        if reference.kind is RefKind.CODE and relative.endswith(".py"):
            candidates.append(relative[: -len(".py")] + "/__init__.py")
        if origin.root is None:
            return self._members(origin, candidates, reference)
        root = origin.root.resolve()
        for candidate in candidates:
            path = origin.root / candidate
            if not path.exists():
                continue
            real = path.resolve()
            if real != root and root not in real.parents:
                return unresolved(f"{candidate} resolves outside the model folder (through a symbolic link)")
            if _inside_target(origin, real):
                return Resolution(
                    resolved=True, inside_target=candidate, resolved_to=f"{candidate} (part of this model)"
                )
            return Resolution(resolved=True, path=real, resolved_to=candidate, identity=str(real))
        return unresolved(_missing(candidates[0], reference))

    def _members(self, origin: Origin, candidates: list[str], reference: Reference) -> Resolution:
        for candidate in candidates:
            if candidate in origin.members or any(m.startswith(candidate.rstrip("/") + "/") for m in origin.members):
                return Resolution(
                    resolved=True, inside_target=candidate, resolved_to=f"{candidate} (part of this model)"
                )
        return unresolved(_missing(candidates[0], reference))


def _missing(candidate: str, reference: Reference) -> str:
    if reference.kind is RefKind.CODE:
        return (
            f"{candidate} is not shipped with the model: the loader would import it from its environment or fetch "
            "it, so mlgate cannot scan it"
        )
    return f"{candidate} does not exist in the model folder"


def _inside_target(origin: Origin, real: Path) -> bool:
    if origin.target is None:
        return False
    target = origin.target.resolve()
    if target.is_dir():
        return real == target or target in real.parents
    return real == target


def naming_file(origin: Origin, location: str) -> str:
    """The model-relative path of the file a reference location points into (``a/b.json#x`` -> ``a/b.json``).

    Locations nest container members and fields with ``!``, ``#``, ``@`` and ``:``; the longest
    prefix that is a file of the model wins. Empty when none is (paths then start at the root).
    """
    cuts = sorted({i for i, ch in enumerate(location) if ch in _SEPARATORS} | {len(location)}, reverse=True)
    for cut in cuts:
        prefix = location[:cut]
        if not prefix or prefix.startswith(("/", "\\")):
            continue
        if origin.root is not None and (origin.root / prefix).is_file():
            return prefix
        if origin.root is None and prefix in origin.members:
            return prefix
    return ""
