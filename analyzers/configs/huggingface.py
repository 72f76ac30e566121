"""Hugging Face configs: transformers, PEFT, tokenizers/processors, sentence-transformers, diffusers.

Each handler recognises its file by structure (``peft_type`` +
``base_model_name_or_path``; a list of ``{type, path}`` modules; ``_class_name``
+ ``_diffusers_version``), not by name, and reports what the loader will fetch
or import because of it. One exception follows the loader: diffusers reads components
only from its pipeline index (``model_index.json``, ``modular_model_index.json``).

* ``auto_map`` (config, tokenizer and processor configs) and ``custom_pipelines``:
  Python modules run with ``trust_remote_code``; ``org/repo--module.Class``
  pulls code from another repository.
* PEFT: the base model (and revision), the prompt-tuning tokenizer, and
  ``auto_mapping.parent_library`` (``importlib.import_module``).
* sentence-transformers ``modules.json``: module classes outside
  ``sentence_transformers`` and module paths leaving the model folder.
* diffusers ``model_index.json``: custom pipeline code, component libraries
  outside the ones diffusers loads itself, cross-repo components.
* ``chat_template`` strings go through the template lint.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..core.findings import Finding, Rule, Severity
from ..embedded_code.catalogue import is_dangerous_module, under
from .sites import Site

ENV_IMPORT = Rule(
    "MLG-DEP-006", Severity.HIGH, "Config makes the loader import a module from the serving environment", "configs"
)
PROVENANCE = Rule("MLG-DEP-011", Severity.INFO, "Config records the path or repo it was saved from", "configs")

# PEFT's own default ``import_allowlist`` (peft/auto.py), matched the way PEFT matches it.
PEFT_IMPORT_ALLOWLIST = ("diffusers", "lerobot", "megatron-core", "transformers")
_ST_PACKAGE = ("sentence_transformers",)
_DIFFUSERS_LIBRARIES = frozenset({"diffusers", "transformers", "onnxruntime.training"})
# The files DiffusionPipeline / ModularPipeline.from_pretrained read components from (their config_name).
_DIFFUSERS_INDEXES = frozenset({"model_index.json", "modular_model_index.json"})
# diffusers pipeline sub-packages that model_index.json names as component libraries.
_DIFFUSERS_PIPELINE_MODULES = frozenset(
    {
        "stable_diffusion",
        "stable_diffusion_safe",
        "stable_diffusion_xl",
        "deepfloyd_if",
        "kandinsky",
        "kandinsky2_2",
        "wuerstchen",
        "paint_by_example",
        "shap_e",
        "latent_diffusion",
        "audioldm2",
        "stable_cascade",
        "pixart_alpha",
        "stable_audio",
        "alt_diffusion",
        "unclip",
        "blip_diffusion",
        "controlnet",
        "pipelines",
    }
)


def handle(data: Any, site: Site) -> Iterator[Finding]:
    """Every Hugging Face check that applies to ``data``."""
    if isinstance(data, dict):
        yield from _auto_map(data, site)
        yield from _custom_pipelines(data, site)
        yield from _chat_templates(data, site)
        yield from _peft(data, site)
        yield from _diffusers(data, site)
        yield from _provenance(data, site)
    elif isinstance(data, list):
        yield from _sentence_transformers(data, site)


def class_reference(value: str, path: str, site: Site, loader: str) -> list[Finding]:
    """A transformers-style class reference ``module.Class`` or ``org/repo--module.Class``."""
    repo, sep, local = value.partition("--")
    if not sep:
        local, repo = value, ""
    module, _, cls = local.rpartition(".")
    if not module:
        return [ENV_IMPORT.finding(site.at(path), f"{loader} names class {value!r} without a module")]
    if repo:
        findings = site.dependency(repo, path, what=f"imports {module}.py from")
        detail = f"{loader} runs class {cls} from {module}.py of another repository, {repo} (needs trust_remote_code)"
        return [*findings, site.remote_code(path, detail)]
    detail = f"{loader} runs class {cls} from {module}.py shipped with the model (needs trust_remote_code)"
    return site.code_file(f"{module.replace('.', '/')}.py", path, detail)


def _auto_map(data: dict, site: Site) -> Iterator[Finding]:
    auto_map = data.get("auto_map")
    if not isinstance(auto_map, dict):
        return
    for auto_class, value in auto_map.items():
        values = value if isinstance(value, list) else [value]
        for index, item in enumerate(values):
            if isinstance(item, str) and item:
                path = f"auto_map.{auto_class}" + (f"[{index}]" if isinstance(value, list) else "")
                yield from class_reference(item, path, site, f"auto_map {auto_class}")


def _custom_pipelines(data: dict, site: Site) -> Iterator[Finding]:
    pipelines = data.get("custom_pipelines")
    if not isinstance(pipelines, dict):
        return
    for task, spec in pipelines.items():
        impl = spec.get("impl") if isinstance(spec, dict) else None
        if isinstance(impl, str) and impl:
            yield from class_reference(impl, f"custom_pipelines.{task}.impl", site, f"custom pipeline {task}")


def _chat_templates(data: dict, site: Site) -> Iterator[Finding]:
    template = data.get("chat_template")
    if not isinstance(template, (str, list)):
        return
    from ..embedded_code.templates import lint_template  # jinja2 loads with the first template

    if isinstance(template, str):
        yield from lint_template(template, site.at("chat_template"))
    else:
        for index, entry in enumerate(template):
            if isinstance(entry, dict) and isinstance(entry.get("template"), str):
                label = entry.get("name") if isinstance(entry.get("name"), str) else index
                yield from lint_template(entry["template"], site.at(f"chat_template[{label}]"))


def _peft(data: dict, site: Site) -> Iterator[Finding]:
    if "peft_type" not in data or "base_model_name_or_path" not in data:
        return
    base = data.get("base_model_name_or_path")
    revision = data.get("revision") if isinstance(data.get("revision"), str) else None
    if isinstance(base, str) and base.strip():
        yield from site.dependency(base, "base_model_name_or_path", revision=revision, what="adapter loads base model")
    tokenizer = data.get("tokenizer_name_or_path")
    if isinstance(tokenizer, str) and tokenizer.strip() and data.get("prompt_tuning_init") == "TEXT":
        yield from site.dependency(tokenizer, "tokenizer_name_or_path", what="prompt tuning loads tokenizer")
    mapping = data.get("auto_mapping")
    library = mapping.get("parent_library") if isinstance(mapping, dict) else None
    if isinstance(library, str) and not _peft_allowed(library):
        dangerous = is_dangerous_module(library)
        yield ENV_IMPORT.finding(
            site.at("auto_mapping.parent_library"),
            f"PEFT imports {library!r} (importlib.import_module) to find the base model class; it is outside "
            "PEFT's import allowlist" + (" and runs commands or code" if dangerous else ""),
            severity=Severity.CRITICAL if dangerous else None,
        )


def _peft_allowed(library: str) -> bool:
    return library in PEFT_IMPORT_ALLOWLIST or any(library.startswith(f"{a}.") for a in PEFT_IMPORT_ALLOWLIST)


def _sentence_transformers(data: list, site: Site) -> Iterator[Finding]:
    modules = [m for m in data if isinstance(m, dict) and isinstance(m.get("type"), str) and "path" in m]
    if not modules or len(modules) != len(data):
        return
    for index, module in enumerate(data):
        kind = module["type"]
        path = module.get("path")
        if isinstance(path, str):
            yield from site.path_findings(
                path, site.at(f"[{index}].path"), f"sentence-transformers module {index} is loaded from", Severity.HIGH
            )
        if under(kind, _ST_PACKAGE):
            continue
        where = f"[{index}].type"
        if is_dangerous_module(kind):
            yield ENV_IMPORT.finding(
                site.at(where),
                f"sentence-transformers instantiates {kind}, which runs commands or code",
                severity=Severity.CRITICAL,
            )
        elif "--" in kind or kind.count(".") == 1:
            yield from class_reference(kind, where, site, f"sentence-transformers module {index}")
        else:
            yield ENV_IMPORT.finding(
                site.at(where), f"sentence-transformers imports module class {kind} from the serving environment"
            )


def _diffusers(data: dict, site: Site) -> Iterator[Finding]:
    if "_class_name" not in data or "_diffusers_version" not in data:
        return
    if site.file_name not in _DIFFUSERS_INDEXES:
        # A component's own config (unet/config.json, scheduler/scheduler_config.json) has the same two
        # keys, but its lists are parameters (down_block_types: ["CrossAttnDownBlock2D", "DownBlock2D"]):
        # the model class reads them and imports nothing. Only the pipeline index names components.
        return
    pipeline = data.get("_class_name")
    if isinstance(pipeline, list) and len(pipeline) == 2 and all(isinstance(p, str) for p in pipeline):
        module, cls = pipeline
        detail = f"diffusers runs custom pipeline class {cls} from {module}.py (needs trust_remote_code)"
        yield from site.code_file(f"{module}.py", "_class_name", detail)
    for name, spec in data.items():
        if name.startswith("_") or not isinstance(spec, list) or len(spec) < 2:
            continue
        library = spec[0]
        if isinstance(library, str) and library not in _DIFFUSERS_LIBRARIES | _DIFFUSERS_PIPELINE_MODULES:
            yield from _diffusers_library(name, library, spec[1], site)
        if len(spec) >= 3 and isinstance(spec[2], dict):
            yield from _modular_component(name, spec[2], site)


def _diffusers_library(name: str, library: str, cls: object, site: Site) -> Iterator[Finding]:
    where = site.at(f"{name}[0]")
    if is_dangerous_module(library):
        yield ENV_IMPORT.finding(
            where,
            f"diffusers loads component {name} from library {library!r}, which runs commands or code",
            severity=Severity.CRITICAL,
        )
        return
    if "." in library:
        yield ENV_IMPORT.finding(where, f"diffusers loads component {name} from {library!r} in the serving environment")
        return
    detail = f"diffusers loads component {name} ({cls}) from {name}/{library}.py (needs trust_remote_code)"
    yield from site.code_file(f"{name}/{library}.py", f"{name}[0]", detail)


def _modular_component(name: str, spec: dict, site: Site) -> Iterator[Finding]:
    for key in ("pretrained_model_name_or_path", "repo"):
        repo = spec.get(key)
        if isinstance(repo, str) and repo.strip():
            revision = spec.get("revision") if isinstance(spec.get("revision"), str) else None
            yield from site.dependency(repo, f"{name}[2].{key}", revision=revision, what=f"component {name} loads")
            return


def _provenance(data: dict, site: Site, path: str = "", depth: int = 0) -> Iterator[Finding]:
    """``_name_or_path`` at the top and in nested sub-configs (``text_config``, ``encoder``...)."""
    value = data.get("_name_or_path")
    if isinstance(value, str) and value.strip():
        yield PROVENANCE.finding(
            site.at(f"{path}._name_or_path" if path else "_name_or_path"),
            f"saved from {value!r} (provenance only: loaders do not fetch it)",
        )
    if depth < 3:
        for key, child in data.items():
            if isinstance(child, dict):
                yield from _provenance(child, site, f"{path}.{key}" if path else str(key), depth + 1)
