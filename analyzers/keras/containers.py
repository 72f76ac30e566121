"""Where Keras configs live: ``.keras`` zips, legacy HDF5 files, and Keras-2 ``keras_metadata.pb``.

Each analyzer pulls the JSON out of its container and hands it to
``keras.walk_config``; decoded payloads (TorchModuleWrapper pickles) go back
to the walker as child artifacts so the pickle analyzer scans them. HDF5 is
read with h5py attributes only (never ``load_model``), in a child process with a
hard deadline (``hdf5_reader``); the zip is read through
the archive analyzer's member reader (which also walks every member itself).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

from ..core.artifact import Artifact, read_exact
from ..core.budget import BudgetExceeded
from ..core.findings import Finding, Rule, Severity
from ..core.kinds import Kind
from ..core.records import TYPE_CHECKING
from ..core.registry import register, register_warm_up
from ..core.walker import Malformed, ScanContext

if TYPE_CHECKING:
    from typing import BinaryIO

    from .config_walker import ConfigScan

ANALYZER = "keras"  # the analyzer name of ``config_walker``'s rules too (it loads with the first Keras config)

MAX_CONFIG_BYTES = 64 << 20  # config.json / metadata.json / HDF5 attribute text
MAX_BUFFERED_HDF5 = 256 << 20  # an HDF5 stream that cannot seek is buffered up to this size

EXTRA_MEMBER = Rule("MLG-KER-012", Severity.MEDIUM, "Unexpected file inside a .keras archive", ANALYZER)

KERAS_MEMBERS = frozenset({"config.json", "metadata.json", "model.weights.h5", "model.weights.npz"})
SUSPICIOUS_SUFFIXES = frozenset(
    {".py", ".pyc", ".pkl", ".pickle", ".so", ".dll", ".dylib", ".exe", ".sh", ".bat", ".pt", ".pth", ".joblib"}
)
H5_CONFIG_ATTRS = ("model_config", "training_config")


def _emit(ctx: ScanContext, artifact: Artifact, scan: ConfigScan) -> Iterator[Finding]:
    for ref in scan.references:
        ctx.add_reference(ref)
    for where, data in scan.children:
        name = where.removeprefix(f"{artifact.location}!").removeprefix(f"{artifact.location}:")
        ctx.walk(artifact.child(name, lambda data=data: io.BytesIO(data), len(data), container="keras-config"))
    yield from scan.findings


def _walk_config(config: object, where: str, keras_version: str | None = None) -> ConfigScan:
    """``config_walker.walk_config``, imported with the first Keras config rather than the first zip."""
    from .config_walker import walk_config

    return walk_config(config, where, keras_version=keras_version)


def _json(raw: bytes | str, what: str) -> object:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise Malformed(f"{what} is not valid JSON: {exc}") from None


# ---------------------------------------------------------------------------------- .keras zip
@register_warm_up(Kind.HDF5)
def _start_hdf5_reader() -> None:
    """A scan with HDF5 files ahead: start the h5py child now (it imports h5py meanwhile)."""
    from .hdf5_reader import prestart

    prestart()


@register(Kind.ZIP, "keras")
def analyze_keras_zip(artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
    from ..archives.zip_reader import zip_directory

    with ctx.open(artifact) as stream:
        try:
            # A zip listing more members than the whole member budget is refused by the archive
            # analyzer from its end record (the scan is incomplete); do not parse its directory here.
            entries = zip_directory(artifact, stream, ctx.tracker.budgets.max_members, ctx).entries
        except (Malformed, BudgetExceeded):
            return  # the archive analyzer reports the broken or oversized zip: one finding, not two
        names = {e.name for e in entries}
        if "config.json" not in names or "metadata.json" not in names:
            return
        metadata: object = None
        for entry in entries:
            if entry.name == "metadata.json":
                metadata = _json(_member(stream, entry, ctx), f"{artifact.location}!metadata.json")
        if not isinstance(metadata, dict) or "keras_version" not in metadata:
            return  # a zip with config.json that is not a Keras archive
        version = str(metadata.get("keras_version"))
        for entry in entries:
            if entry.name == "config.json":
                where = f"{artifact.location}!config.json"
                config = _json(_member(stream, entry, ctx), where)
                yield from _emit(ctx, artifact, _walk_config(config, where, keras_version=version))
        yield from _extra_members(artifact, [e.name for e in entries])


def _member(stream: BinaryIO, entry: object, ctx: ScanContext) -> bytes:
    from ..archives.zip_and_streams import open_zip_member

    with open_zip_member(stream, entry, ctx) as member:
        data = read_exact(member, MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise Malformed(f"{entry.name} is larger than {MAX_CONFIG_BYTES} bytes")  # type: ignore[attr-defined]
    return data


def _extra_members(artifact: Artifact, names: list[str]) -> Iterator[Finding]:
    from pathlib import PurePosixPath  # a Keras archive's only (start-up of other scans, issue 19)

    for name in names:
        if name.endswith("/") or name in KERAS_MEMBERS:
            continue
        path = PurePosixPath(name.replace("\\", "/"))
        if name.startswith(("/", "\\")) or ".." in path.parts:
            continue  # member names that escape are the archive analyzer's (MLG-ARC-001/002): one finding each
        if path.suffix.lower() in SUSPICIOUS_SUFFIXES or path.parts[0] != "assets":
            yield EXTRA_MEMBER.finding(
                f"{artifact.location}!{name}",
                f"{name!r} is not part of the Keras file format (config.json, metadata.json, weights, assets/); "
                "code shipped next to a model usually gets imported by a custom loader",
            )


# ---------------------------------------------------------------------------------------- HDF5
@register(Kind.HDF5, "keras-h5")
def analyze_keras_h5(artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
    with ctx.open(artifact) as stream:
        source: BinaryIO = stream
        size = artifact.size
        if not stream.seekable() or size is None:
            if artifact.size is not None and artifact.size > MAX_BUFFERED_HDF5:
                raise Malformed("HDF5 member is compressed and too large to read its attributes")
            data = read_exact(stream, MAX_BUFFERED_HDF5 + 1)
            if len(data) > MAX_BUFFERED_HDF5:
                raise Malformed("HDF5 member is compressed and too large to read its attributes")
            source, size = io.BytesIO(data), len(data)
        # libhdf5 runs in a child process with a hard deadline (it can hang in C on crafted data)
        from .hdf5_reader import read_attrs  # loaded with the first HDF5 file, not the first zip

        attrs = read_attrs(source, size, list(H5_CONFIG_ATTRS), ctx)
    for key in H5_CONFIG_ATTRS:
        if key not in attrs:
            continue
        text = attrs[key]
        ctx.observe_document(f"{artifact.location}:{key}", text, reachable=True)
        if len(text) > MAX_CONFIG_BYTES:
            raise Malformed(f"HDF5 attribute {key} is larger than {MAX_CONFIG_BYTES} bytes")
        where = f"{artifact.location}:{key}"
        yield from _emit(ctx, artifact, _walk_config(_json(text, where), where))


# ------------------------------------------------------------------------------ keras_metadata.pb
@register(Kind.KERAS_METADATA, "keras-metadata")
def analyze_keras_metadata(artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
    with ctx.open(artifact) as stream:
        data = read_exact(stream, MAX_CONFIG_BYTES * 4 + 1)
    if len(data) > MAX_CONFIG_BYTES * 4:
        raise Malformed("keras_metadata.pb is too large")
    from ..savedmodel import schema  # protobuf loads with the first keras_metadata.pb, not the first zip

    try:
        metadata = schema.parse_binary(schema.SavedMetadata, data)
    except schema.SchemaError as exc:
        raise Malformed(str(exc)) from None
    seen: set[tuple[str, str]] = set()  # the root node repeats every layer's config: report each thing once
    for i, node in enumerate(metadata.nodes):
        if not node.metadata:
            continue
        node_path = node.node_path.decode("utf-8", errors="replace") or f"node{i}"
        where = f"{artifact.location}:{node_path}"
        scan = _walk_config(_json(node.metadata.decode("utf-8", errors="replace"), where), where)
        fresh = []
        for f in scan.findings:
            if (f.rule, f.message) not in seen:
                seen.add((f.rule, f.message))
                fresh.append(f)
        scan.findings = fresh
        yield from _emit(ctx, artifact, scan)
