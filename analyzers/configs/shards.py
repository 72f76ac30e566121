"""Sharded checkpoint indexes: ``model.safetensors.index.json``, ``pytorch_model.bin.index.json`` and kin.

transformers (``load_sharded_checkpoint``, ``from_pretrained``), diffusers and accelerate load a
sharded checkpoint through its index: ``{"metadata": {...}, "weight_map": {tensor: shard file}}``.
The loader joins every distinct shard name onto the index's folder (``os.path.join``, so an absolute
name replaces the folder) and loads that file (``safe_open`` for safetensors, ``torch.load`` for
``.bin`` shards). The index is recognised by its structure (a ``weight_map`` object), so any
``*.index.json`` name and any subfolder are covered.

Every shard of the model is a file of the target, so the walker scans each one like any other
weight file (safetensors header, torch zip directory and pickle: never the tensor bytes). What the
index adds is a promise about which files load, checked here against the target's file list:

* a shard named by the index that the model does not ship (MLG-DEP-012, incomplete): what would
  load was not scanned;
* a shard name that leaves the model folder: ``../``, an absolute or home path, a drive letter, a
  URL or other scheme (MLG-DEP-013): the loader reads a file that is not part of the model.

Only names are read; a ``weight_map`` that is not an object of strings is malformed (the loader
fails on it), which makes the scan incomplete.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..core.findings import Finding, Rule, Severity
from ..core.walker import Malformed
from .sites import _SCHEME, Site, _is_host_path, relative_inside

ANALYZER = "configs"
MISSING = Rule(
    "MLG-DEP-012",
    Severity.MEDIUM,
    "Sharded checkpoint index names a shard the model does not ship",
    ANALYZER,
    incomplete=True,
)
OUTSIDE = Rule(
    "MLG-DEP-013", Severity.HIGH, "Sharded checkpoint index names a shard outside the model folder", ANALYZER
)

_SHOWN = 5


def handle(data: Any, site: Site) -> Iterator[Finding]:
    """Check a sharded-checkpoint index (a mapping with a ``weight_map`` object) against the model's files."""
    if not isinstance(data, dict) or "weight_map" not in data:
        return
    weight_map = data["weight_map"]
    if not isinstance(weight_map, dict):
        if site.file_name.endswith("index.json"):
            raise Malformed(f"weight_map is a JSON {type(weight_map).__name__}, not an object of shard names")
        return  # some other config with a weight_map field: not an index
    bad = [str(k) for k, v in weight_map.items() if not isinstance(v, str)]
    if bad:
        raise Malformed(f"weight_map values of {', '.join(repr(b) for b in bad[:_SHOWN])} are not shard file names")
    shards: dict[str, list[str]] = {}
    for tensor, shard in weight_map.items():
        shards.setdefault(shard, []).append(tensor)
    missing: list[str] = []
    for shard in sorted(shards):
        where = site.at(f"weight_map.{shards[shard][0]}")
        why = _outside(site, shard)
        if why:
            yield OUTSIDE.finding(
                where,
                f"shard {shard!r} ({len(shards[shard])} tensor(s)) {why}: the loader joins it onto the model "
                "folder and loads whatever it names, which is not part of this model and was not scanned",
            )
            continue
        if site.artifact.parent is not None:
            continue  # inside an archive: the target's file list does not describe its members
        path = relative_inside(site.artifact.name, shard)
        if path is not None and path not in site.ctx.files:
            missing.append(shard)
    if missing:
        shown = ", ".join(repr(m) for m in missing[:_SHOWN]) + (
            f" and {len(missing) - _SHOWN} more" if len(missing) > _SHOWN else ""
        )
        yield MISSING.finding(
            site.at("weight_map"),
            f"{len(missing)} of {len(shards)} shard(s) named by the index are not in the model: {shown}; "
            "the weights that would load were not scanned (the loader fails, or fetches them from elsewhere)",
        )


def _outside(site: Site, shard: str) -> str:
    """Why ``shard`` leaves the model folder ("" when it is a plain relative name inside it)."""
    text = shard.strip()
    if not text:
        return "is empty"
    if _is_host_path(text):
        return "is an absolute path on the loading machine"
    if _SCHEME.match(text):
        return "is a URL"
    if relative_inside(site.artifact.name, text) is None:
        return "climbs out of the model folder"
    return ""
