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

from .kinds import Kind
from .records import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from .artifact import Artifact
    from .findings import Finding
    from .walker import ScanContext

AnalyzerFn = Callable[["Artifact", "ScanContext"], Iterable["Finding"]]

# Modules that register analyzers, with the kinds each one reads, in dispatch order. A module is
# imported the first time one of its kinds is met, so a scan pays only for the formats it sees
# (a pickle never loads protobuf, h5py or py7zr). Adding a format is one line here;
# tests/core/test_registry.py checks these lists against what the modules register.
_COMPRESSED = (Kind.GZIP, Kind.BZIP2, Kind.XZ, Kind.LZMA, Kind.ZLIB, Kind.ZSTD, Kind.LZ4, Kind.JOBLIB_ZF)
ANALYZER_MODULES: dict[str, tuple[Kind, ...]] = {
    "mlgate.analyzers.archives.zip_and_streams": (Kind.ZIP, *_COMPRESSED),
    "mlgate.analyzers.archives.tar": (Kind.TAR,),
    "mlgate.analyzers.archives.sevenzip": (Kind.SEVENZIP,),
    "mlgate.analyzers.tensors.safetensors": (Kind.SAFETENSORS,),
    "mlgate.analyzers.savedmodel.analyzer": (Kind.SAVEDMODEL,),
    "mlgate.analyzers.keras.containers": (Kind.ZIP, Kind.HDF5, Kind.KERAS_METADATA),
    "mlgate.analyzers.onnx.analyzer": (Kind.ONNX,),
    "mlgate.analyzers.configs.analyzer": (Kind.JSON, Kind.YAML),
    "mlgate.analyzers.configs.text": (Kind.TEXT,),
    "mlgate.analyzers.embedded_code.python_source": (Kind.PYTHON,),
    "mlgate.analyzers.tensors.gguf": (Kind.GGUF,),
    "mlgate.analyzers.tensors.msgpack": (Kind.MSGPACK,),
    "mlgate.analyzers.pickles.analyzer": (Kind.PICKLE,),
    "mlgate.analyzers.pickles.pytorch": (Kind.ZIP, Kind.TAR),
    "mlgate.analyzers.pickles.numpy_arrays": (Kind.NUMPY,),
    "mlgate.analyzers.secrets.binary_strings": (Kind.PICKLE, Kind.SAVEDMODEL, Kind.KERAS_METADATA, Kind.ONNX),
}
_ORDER = {module: i for i, module in enumerate(ANALYZER_MODULES)}

_REGISTRY: dict[Kind, list[tuple[str, AnalyzerFn]]] = {}
_DISPATCH: dict[Kind, tuple[tuple[str, AnalyzerFn], ...]] = {}  # analyzers_for's answers (reset by register)
_loaded_kinds: set[Kind] = set()


class Probe(NamedTuple):
    """A format's own parser asked whether bytes the sniffer did not claim are that format anyway.

    ``claimed``: the loader would read the bytes as the format and act on them (the analyzers of
    the kind must run); ``detail`` says why, or where and why the parser gave up.
    """

    claimed: bool
    detail: str


ProbeFn = Callable[["Artifact", "ScanContext", bytes, bool], Probe]
"""``probe(artifact, ctx, head, by_name)``: ``by_name`` when the file name promises the format."""

_PROBES: dict[Kind, ProbeFn] = {}


def register_probe(kind: Kind) -> Callable[[ProbeFn], ProbeFn]:
    """Decorator: ``fn`` decides, with the format's own parser, whether an artifact is of ``kind``.

    Used where content sniffing cannot be trusted to decide (a pickle may start with any opcode
    and push megabytes before its first import): the walker asks the probe, not the sniffer.
    """

    def decorate(fn: ProbeFn) -> ProbeFn:
        _PROBES[kind] = fn
        return fn

    return decorate


def probe_for(kind: Kind) -> ProbeFn | None:
    """The probe registered for ``kind``, if any (its modules are imported on first use, like analyzers)."""
    analyzers_for(kind)
    return _PROBES.get(kind)


_WARM_UPS: dict[Kind, Callable[[], None]] = {}


def register_warm_up(kind: Kind) -> Callable[[Callable[[], None]], Callable[[], None]]:
    """Decorator: ``fn`` starts, in the background, what reading ``kind`` needs (the h5py child), for a
    scan that sees files of that kind ahead (``warm_up``)."""

    def decorate(fn: Callable[[], None]) -> Callable[[], None]:
        _WARM_UPS[kind] = fn
        return fn

    return decorate


def warm_up(kind: Kind) -> None:
    """Import the analyzers of ``kind`` and run its warm-up, if it has one."""
    analyzers_for(kind)
    fn = _WARM_UPS.get(kind)
    if fn is not None:
        fn()


def register(kind: Kind, name: str) -> Callable[[AnalyzerFn], AnalyzerFn]:
    """Decorator: ``fn`` analyzes artifacts of ``kind``; ``name`` appears in findings."""

    def decorate(fn: AnalyzerFn) -> AnalyzerFn:
        entries = _REGISTRY.setdefault(kind, [])
        if all(existing is not fn for _, existing in entries):
            entries.append((name, fn))
            _DISPATCH.clear()
        return fn

    return decorate


def analyzers_for(kind: Kind) -> tuple[tuple[str, AnalyzerFn], ...]:
    """The (name, function) pairs registered for ``kind``, in ``ANALYZER_MODULES`` order.

    Called for every file and member: the answer is kept per kind until the next ``register``."""
    entries = _DISPATCH.get(kind)
    if entries is not None:
        return entries
    if kind not in _loaded_kinds:
        for module, kinds in ANALYZER_MODULES.items():
            if kind in kinds:
                importlib.import_module(module)
        _loaded_kinds.add(kind)
    ordered = sorted(_REGISTRY.get(kind, ()), key=lambda entry: _ORDER.get(entry[1].__module__, len(_ORDER)))
    _DISPATCH[kind] = entries = tuple(ordered)
    return entries


# Modules that declare rules without registering an analyzer, loaded by the analyzers that use them
# only when needed (chat templates: jinja2; Keras configs: with the first one): ``load_all`` imports
# them so the catalogue is complete.
RULE_MODULES = (
    "mlgate.analyzers.embedded_code.templates",
    "mlgate.analyzers.signatures.verify",
    "mlgate.analyzers.keras.config_walker",
)


def load_all() -> None:
    """Import every analyzer module, so all their ``register`` calls have run and every rule is in the
    catalogue (rule lists, exceptions, tests)."""
    for module in (*ANALYZER_MODULES, *RULE_MODULES):
        importlib.import_module(module)
