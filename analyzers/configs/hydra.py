"""Hydra ``_target_`` and NeMo model configs: callables a config instantiates, models it initialises from.

Hydra's ``instantiate`` calls whatever ``_target_`` names with the sibling keys
as arguments (CVE-2025-23304 in NeMo; FlexTok-style safetensors metadata); NeMo
imports the top-level ``target`` class of ``model_config.yaml`` on restore.
Targets inside the allowlist (NeMo, ``torch.nn``, ``torch.optim``...) pass;
targets in modules that run commands or code are CRITICAL; any other target is
HIGH (it imports and calls code that is not part of the model). NeMo
``init_from_*`` and ``restore_from_path`` fields name other models.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from ..core.findings import Finding, Rule, Severity
from ..embedded_code.catalogue import is_dangerous_module, under
from .sites import Site

TARGET = Rule("MLG-DEP-007", Severity.HIGH, "Config instantiates a callable outside the allowlist", "configs")

TARGET_ALLOWLIST = (
    "nemo",
    "torch.nn",
    "torch.optim",
    "torch.utils.data",
    "pytorch_lightning.callbacks",
    "lightning.pytorch.callbacks",
    "omegaconf",
    "megatron.core",
)
_DOTTED = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+$")
_NEMO_MARKERS = ("nemo_version", "init_from_nemo_model", "init_from_pretrained_model", "init_from_ptl_ckpt")
_INIT_FIELDS = ("init_from_nemo_model", "init_from_pretrained_model", "init_from_ptl_ckpt", "restore_from_path")
_TOKENIZER_FILES = ("model", "vocab_file", "merge_file", "tokenizer_model")


def hydra_target(target: str, where: str) -> Finding | None:
    """The finding for one ``_target_`` value, or None when it is an allowed building block."""
    return _check_target(target, where, "Hydra instantiate() calls")


def handle(data: Any, site: Site) -> Iterator[Finding]:
    """NeMo ``target`` and dependencies when ``data`` is a NeMo model config (``_target_`` is checked by configs)."""
    if not isinstance(data, dict) or not _is_nemo(data, site):
        return
    target = data.get("target")
    if isinstance(target, str):
        finding = _check_target(target, site.at("target"), "NeMo restore imports model class")
        if finding is not None:
            yield finding
    for section, config in (("", data), ("model", data.get("model"))):
        if isinstance(config, dict):
            yield from _nemo_dependencies(config, section, site)


def _is_nemo(data: dict, site: Site) -> bool:
    target = data.get("target")
    has_target = isinstance(target, str) and bool(_DOTTED.match(target))
    return has_target and (any(k in data for k in _NEMO_MARKERS) or site.file_name == "model_config.yaml")


def _check_target(target: str, where: str, action: str) -> Finding | None:
    name = target.strip()
    if under(name, TARGET_ALLOWLIST):
        return None
    if is_dangerous_module(name):
        return TARGET.finding(where, f"{action} {name}, which runs commands or code", severity=Severity.CRITICAL)
    return TARGET.finding(where, f"{action} {name}, which is not in the allowlist of model building blocks")


def _nemo_dependencies(config: dict, section: str, site: Site) -> Iterator[Finding]:
    prefix = f"{section}." if section else ""
    for key in _INIT_FIELDS:
        value = config.get(key)
        if isinstance(value, str) and value.strip():
            yield from site.dependency(value, f"{prefix}{key}", what="NeMo initialises from")
        elif isinstance(value, dict):  # {name: {path: ..., include: [...]}} or {name: {name: ...}}
            for name, spec in value.items():
                ref = spec.get("path") or spec.get("name") if isinstance(spec, dict) else spec
                if isinstance(ref, str) and ref.strip():
                    yield from site.dependency(ref, f"{prefix}{key}.{name}", what="NeMo initialises from")
    language_model = config.get("language_model")
    if isinstance(language_model, dict) and isinstance(language_model.get("pretrained_model_name"), str):
        yield from site.dependency(
            language_model["pretrained_model_name"],
            f"{prefix}language_model.pretrained_model_name",
            what="NeMo loads language model",
        )
    tokenizer = config.get("tokenizer")
    if isinstance(tokenizer, dict):
        for key in _TOKENIZER_FILES:
            value = tokenizer.get(key)
            if isinstance(value, str) and value.strip() and not value.startswith("nemo:"):
                yield from site.path_findings(value, site.at(f"{prefix}tokenizer.{key}"), "NeMo tokenizer reads")
