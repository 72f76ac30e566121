"""The analyzer registry: which analyzer functions read which content kind.

The contract is one function from an artifact to findings::

    @register(Kind.PICKLE, "pickle")
    def analyze(artifact: Artifact, ctx: ScanContext) -> Iterable[Finding]: ...

Containers recurse by calling ``ctx.walk(child)``; references to other models
go to ``ctx.add_reference(...)``. Several analyzers may read the same kind (the
zip walker and the Keras config reader both read ``.keras`` zips); each
decides from content whether the artifact is its business.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from .kinds import Kind

if TYPE_CHECKING:
    from .artifact import Artifact
    from .findings import Finding
    from .walker import ScanContext

AnalyzerFn = Callable[["Artifact", "ScanContext"], Iterable["Finding"]]

# Modules that register analyzers. Listed explicitly: adding a format is one line here.
ANALYZER_MODULES: tuple[str, ...] = (
    "mlgate.analyzers.archives.zip_and_streams",
    "mlgate.analyzers.archives.tar",
    "mlgate.analyzers.archives.sevenzip",
    "mlgate.analyzers.tensors.safetensors",
    "mlgate.analyzers.savedmodel.analyzer",
    "mlgate.analyzers.keras.containers",
    "mlgate.analyzers.onnx.analyzer",
    "mlgate.analyzers.configs.analyzer",
    "mlgate.analyzers.embedded_code.python_source",
    "mlgate.analyzers.tensors.gguf",
    "mlgate.analyzers.pickles.analyzer",
    "mlgate.analyzers.pickles.pytorch",
    "mlgate.analyzers.pickles.numpy_arrays",
)

_REGISTRY: dict[Kind, list[tuple[str, AnalyzerFn]]] = {}
_loaded = False


def register(kind: Kind, name: str) -> Callable[[AnalyzerFn], AnalyzerFn]:
    """Decorator: ``fn`` analyzes artifacts of ``kind``; ``name`` appears in findings."""

    def decorate(fn: AnalyzerFn) -> AnalyzerFn:
        entries = _REGISTRY.setdefault(kind, [])
        if all(existing is not fn for _, existing in entries):
            entries.append((name, fn))
        return fn

    return decorate


def analyzers_for(kind: Kind) -> list[tuple[str, AnalyzerFn]]:
    """The (name, function) pairs registered for ``kind``, in registration order."""
    load_all()
    return list(_REGISTRY.get(kind, ()))


def load_all() -> None:
    """Import every analyzer module once, so their ``register`` calls run."""
    global _loaded
    if _loaded:
        return
    for module in ANALYZER_MODULES:
        importlib.import_module(module)
    _loaded = True
