"""Sharded checkpoint indexes: ``model.safetensors.index.json``, ``pytorch_model.bin.index.json`` and kin.

transformers (``from_pretrained``, ``load_sharded_checkpoint``), diffusers and accelerate
(``load_checkpoint_in_model``) load a sharded checkpoint through its index,
``{"metadata": {...}, "weight_map": {tensor: shard file}}``: each joins every distinct shard name onto
the index's folder with ``os.path.join`` and opens the result (``safe_open`` for ``.safetensors``,
``torch.load`` otherwise). Nothing else is resolved. What that does with each kind of name was
recorded by running the loaders (``tests/fixtures/shards/build_fixtures.py --probe``,
``loader_behaviour.json``; the tests replay every recorded case):

* ``../x`` and an absolute path load a file outside the model folder (MLG-DEP-013). On Windows
  (``ntpath``) a backslash is a separator, a leading slash or backslash is rooted and a drive letter
  replaces the folder too; those are treated alike, since the loading machine is unknown;
* ``~`` is not expanded and a URL (``https://h/x``, ``file:///x``) is not fetched: both are relative
  paths inside the folder (``<folder>/https:/h/x``), so they load only if the model ships that file;
* a shard the folder lacks makes every loader fail (``FileNotFoundError``; none skips it or fetches
  it elsewhere for a local folder): MLG-DEP-012, low but incomplete, since the weights that would
  load once the file is supplied were not scanned;
* an empty name (or one that normalises to the folder itself) names a folder and the load fails:
  malformed, so the scan is incomplete.

The index is recognised by its structure (a ``weight_map`` object: transformers' four index names
``model.safetensors``, ``pytorch_model.bin``, ``tf_model.h5``, ``flax_model.msgpack`` + ``.index.json``,
diffusers' ``diffusion_pytorch_model.*.index.json``, variants such as ``model.safetensors.index.fp16.json``,
any subfolder), plus accelerate's flat form: a file named ``*.index.json`` that is one object of shard
names, which ``load_checkpoint_in_model`` takes as the map itself. PEFT adapters are not sharded.

Every shard of the model is a file of the target, so the walker scans each one like any other
weight file (safetensors header, torch zip directory and pickle: never the tensor bytes). Only
names are read here; a map that is not an object of strings is malformed (the loader fails on it),
which makes the scan incomplete.
"""

from __future__ import annotations

import ntpath
import posixpath
import re
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any

from ..core.findings import Finding, Rule, Severity
from ..core.walker import Malformed
from .sites import _SCHEME, Site

ANALYZER = "configs"
MISSING = Rule(
    "MLG-DEP-012",
    Severity.LOW,
    "Sharded checkpoint index names a shard the model does not ship",
    ANALYZER,
    incomplete=True,
)
OUTSIDE = Rule(
    "MLG-DEP-013", Severity.HIGH, "Sharded checkpoint index names a shard outside the model folder", ANALYZER
)

_SHOWN = 5
_INDEX_NAME = re.compile(r"\.index(\.[^.]+)?\.json$", re.IGNORECASE)
"""Index file names: ``*.index.json`` and the variant form ``*.index.<variant>.json``."""
_FLAT_INDEX = ".index.json"
"""accelerate takes a folder's ``*.index.json`` without ``weight_map`` as the map itself."""
_DRIVE = re.compile(r"^[A-Za-z]:")


def handle(data: Any, site: Site) -> Iterator[Finding]:
    """Check a sharded-checkpoint index against the model's files: a mapping with a ``weight_map`` object, or
    accelerate's flat ``*.index.json`` (one object of shard names)."""
    if not isinstance(data, dict):
        return
    name = site.file_name
    if "weight_map" in data:
        weight_map = data["weight_map"]
        if not isinstance(weight_map, dict):
            if _INDEX_NAME.search(name):
                raise Malformed(f"weight_map is a JSON {type(weight_map).__name__}, not an object of shard names")
            return  # some other config with a weight_map field: not an index
    elif name.lower().endswith(_FLAT_INDEX) and data and all(isinstance(v, str) for v in data.values()):
        weight_map = data
    else:
        return
    bad = [str(k) for k, v in weight_map.items() if not isinstance(v, str)]
    if bad:
        raise Malformed(f"weight_map values of {', '.join(repr(b) for b in bad[:_SHOWN])} are not shard file names")
    shards: dict[str, list[str]] = {}
    for tensor, shard in weight_map.items():
        shards.setdefault(shard, []).append(tensor)
    folder = PurePosixPath(site.artifact.name).parent.as_posix()
    missing: list[str] = []
    for shard in sorted(shards):
        where = site.at(f"weight_map.{shards[shard][0]}")
        why = _outside(folder, shard)
        if why:
            yield OUTSIDE.finding(
                where,
                f"shard {shard!r} ({len(shards[shard])} tensor(s)) {why}: the loaders (transformers, diffusers, "
                "accelerate) join it onto the model folder with os.path.join and load that file, which is not "
                "part of this model and was not scanned",
            )
            continue
        paths = _inside(folder, shard)
        if paths is None:
            raise Malformed(
                f"weight_map names {shard!r} for {len(shards[shard])} tensor(s), which is the model folder itself, "
                "not a file: the loader fails on it"
            )
        if site.artifact.parent is not None:
            continue  # inside an archive: the target's file list does not describe its members
        if not any(path in site.ctx.files for path in paths):
            missing.append(shard)
    if missing:
        shown = ", ".join(repr(m) + _as_path(folder, m) for m in missing[:_SHOWN]) + (
            f" and {len(missing) - _SHOWN} more" if len(missing) > _SHOWN else ""
        )
        yield MISSING.finding(
            site.at("weight_map"),
            f"{len(missing)} of {len(shards)} shard(s) named by the index are not in the model: {shown}; "
            "the loaders (transformers, diffusers, accelerate) refuse to load it as shipped (FileNotFoundError), "
            "and whatever file is put there to make it load was not scanned",
        )


def _outside(folder: str, shard: str) -> str:
    """Why ``shard`` (joined onto ``folder`` by the loader) leaves the model folder, on Linux or on Windows
    ("" when both resolve inside)."""
    if shard.startswith("/"):
        return "is an absolute path on the loading machine"
    if shard.startswith("\\") or _DRIVE.match(shard):
        return "is an absolute path on a Windows loading machine (a drive, a share or the drive's root)"
    if _climbs(posixpath.normpath(posixpath.join(folder, shard))):
        return "climbs out of the model folder"
    if _climbs(ntpath.normpath(ntpath.join(folder, shard)).replace("\\", "/")):
        return "climbs out of the model folder on a Windows loading machine (backslashes separate there)"
    return ""


def _climbs(joined: str) -> bool:
    return joined == ".." or joined.startswith("../")


def _inside(folder: str, shard: str) -> list[str] | None:
    """The model paths the loader may open for ``shard`` (Linux, then Windows reading); None if it names the
    folder itself."""
    paths = [
        posixpath.normpath(posixpath.join(folder, shard)),
        ntpath.normpath(ntpath.join(folder, shard)).replace("\\", "/"),
    ]
    if not shard or posixpath.normpath(folder) in paths:
        return None
    return paths


def _as_path(folder: str, shard: str) -> str:
    """For a name that looks like a URL: the path the loader really opens (it fetches nothing)."""
    if not _SCHEME.match(shard) or _DRIVE.match(shard):
        return ""
    opened = posixpath.normpath(posixpath.join(folder, shard))
    return f" (a URL is not fetched: the loader opens the model's file {opened!r})"
