"""Config analyzers: JSON and YAML model configs, plus the few text files loaders act on.

Reads each JSON/YAML artifact once (bounded), reports duplicate keys and YAML
Python tags, then hands the parsed data to the format handlers, which recognise
their files by structure: Hugging Face (``huggingface``), Hydra/NeMo
(``hydra``), MLflow (``mlflow_model``), sharded-checkpoint indexes (``shards``). Handlers record ``Reference``s
for the resolver and never resolve anything themselves.

Plain text files are read by ``text`` (loaded with the first text file, without the YAML parser).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..core.artifact import Artifact
from ..core.findings import Finding, Rule, Severity
from ..core.kinds import Kind
from ..core.registry import register
from ..core.walker import ScanContext
from ..secrets import SECRET_FIELD
from . import huggingface as config_hf
from . import hydra as config_hydra
from . import mlflow_model as config_mlflow
from . import shards as config_shards
from .parsing import ConfigDict, Document, join, parse_json, parse_yaml, walk
from .sites import Site
from .text import read_bounded

DUPLICATE_KEY = Rule("MLG-DEP-005", Severity.MEDIUM, "Duplicate key in a config (loaders keep the last)", "configs")
PYTHON_TAG = Rule("MLG-DEP-010", Severity.HIGH, "YAML uses Python object tags", "configs")

MAX_CONFIG_BYTES = 64 << 20
"""Larger JSON/YAML files are not parsed (incomplete). Big tokenizer.json files are about 35 MB."""
# Keys whose duplication changes what gets loaded or run: reported HIGH instead of MEDIUM.
SENSITIVE_KEYS = frozenset(
    {
        "auto_map",
        "auto_mapping",
        "base_model_name_or_path",
        "revision",
        "chat_template",
        "_target_",
        "target",
        "loader_module",
        "code",
        "python_model",
        "artifacts",
        "custom_pipelines",
        "type",
        "path",
        "_class_name",
        "tokenizer_name_or_path",
        "pickle_module_name",
        "source_model_name",
        "model_binary",
        "flavors",
        "pickled_model",
        "model_path",
        "data",
    }
)

Handler = Callable[[Any, Site], Iterable[Finding]]
HANDLERS: tuple[Handler, ...] = (config_hf.handle, config_hydra.handle, config_mlflow.handle, config_shards.handle)


@register(Kind.JSON, "configs")
def analyze_json(artifact: Artifact, ctx: ScanContext) -> Iterable[Finding]:
    raw = read_bounded(artifact, ctx, MAX_CONFIG_BYTES, "config_bytes")
    ctx.observe_document(artifact.location, raw.decode("utf-8", "replace"), reachable=True)
    yield from _analyze(parse_json(raw), artifact, ctx)


@register(Kind.YAML, "configs")
def analyze_yaml(artifact: Artifact, ctx: ScanContext) -> Iterable[Finding]:
    raw = read_bounded(artifact, ctx, MAX_CONFIG_BYTES, "config_bytes")
    ctx.observe_document(artifact.location, raw.decode("utf-8", "replace"), reachable=True)
    yield from _analyze(parse_yaml(raw), artifact, ctx)


def _analyze(doc: Document, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
    site = Site(artifact, ctx)
    # Duplicates and Hydra targets: find the mappings that have them among those the parser built;
    # walk the tree for their paths only when there is one (big tokenizer files have none).
    flagged = {id(m) for m in doc.mappings if m.duplicates or isinstance(m.get("_target_"), str)}
    flagged |= {id(m) for m in doc.mappings if any(isinstance(k, str) and SECRET_FIELD.search(k) for k in m)}
    for path, node in walk(doc.data) if flagged else ():
        if id(node) not in flagged:
            continue
        flagged.discard(id(node))  # once per mapping, at its first path (YAML aliases share mappings)
        for key, value in node.items():
            if isinstance(key, str) and isinstance(value, str) and SECRET_FIELD.search(key):
                ctx.observe_value(site.at(join(str(path), key)), value, key)
        if isinstance(node, ConfigDict) and node.duplicates:
            yield from _duplicates(site, str(path), node.duplicates)
        target = node.get("_target_")
        if isinstance(target, str):
            finding = config_hydra.hydra_target(target, site.at(join(str(path), "_target_")))
            if finding is not None:
                yield finding
        if not flagged:
            break
    for tag in doc.python_tags:
        yield PYTHON_TAG.finding(
            f"{artifact.location}:{tag.line}",
            f"YAML tag {tag.tag.replace('tag:yaml.org,2002:', '!!')}: an unsafe loader (yaml.load / unsafe_load) "
            "constructs the object and runs code; safe loaders refuse the file",
        )
    for handler in HANDLERS:
        yield from handler(doc.data, site)


def _duplicates(site: Site, path: str, keys: list[str]) -> Iterator[Finding]:
    for key in keys:
        sensitive = key in SENSITIVE_KEYS
        yield DUPLICATE_KEY.finding(
            site.at(join(path, key)),
            f"key {key!r} appears more than once; Python loaders use the last value, a reader sees the first"
            + (" (this key decides what gets loaded or run)" if sensitive else ""),
            severity=Severity.HIGH if sensitive else None,
        )
