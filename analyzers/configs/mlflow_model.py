"""MLflow model folders: ``MLmodel``, environment files, ``pickle_module_info.txt``.

``MLmodel`` decides what ``mlflow.pyfunc.load_model`` imports and runs:
``loader_module`` (imported, then ``_load_pyfunc``), each flavor's ``code``
folder (put on ``sys.path``), ``python_model`` (a cloudpickle that runs its
author's code by design), ``artifacts`` paths, the PyTorch pickle module, and
Hub weights fetched at load (``transformers.source_model_name``). The
environment files (``requirements.txt``, ``conda.yaml``, ``python_env.yaml``)
are installed when the model is served with an environment manager: requirements
that install from URLs, VCS, local paths or extra package indexes are findings.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from ..core.findings import Finding, Rule, Severity
from ..embedded_code.catalogue import is_dangerous_module, under
from .huggingface import ENV_IMPORT
from .sites import Site

REQUIREMENT_SOURCE = Rule(
    "MLG-DEP-008", Severity.HIGH, "Package requirement installs from a URL, VCS, local path or extra index", "configs"
)
REQUIREMENT_UNPINNED = Rule("MLG-DEP-009", Severity.LOW, "Package requirements are not pinned", "configs")
PICKLED_MODEL = Rule(
    "MLG-CODE-011", Severity.HIGH, "MLflow model unpickles a Python model that runs its author's code", "configs"
)

PICKLE_MODULES = frozenset({"pickle", "cloudpickle", "dill", "mlflow.pytorch.pickle_module"})
_INDEX_OPTIONS = ("-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--trusted-host")
_EDITABLE = ("-e", "--editable")
_INCLUDES = ("-r", "--requirement", "-c", "--constraint")
_URLISH = re.compile(r"(^|[\s@])([A-Za-z][\w+.-]*://|git\+|hg\+|svn\+|bzr\+|file:)")
_PINNED = re.compile(r"(===?)\s*[\w.*+!-]+")
_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*")


def handle(data: Any, site: Site) -> Iterator[Finding]:
    """MLmodel checks, and requirement checks for conda / python_env environment files."""
    if not isinstance(data, dict):
        return
    flavors = data.get("flavors")
    if isinstance(flavors, dict):
        yield from _mlmodel(flavors, site)
    if _is_environment(data):
        for key in ("dependencies", "build_dependencies"):
            yield from _environment_requirements(data, key, site)


def _environment_requirements(data: dict, key: str, site: Site) -> list[Finding]:
    """pip requirements listed in conda.yaml (under ``pip:``) or python_env.yaml."""
    items = data.get(key)
    if not isinstance(items, list):
        return []
    lines: list[tuple[str, str]] = []
    for index, item in enumerate(items):
        if isinstance(item, str) and "channels" not in data:  # conda packages are not pip requirements
            lines.append((site.at(f"{key}[{index}]"), item))
        elif isinstance(item, dict) and isinstance(item.get("pip"), list):
            lines.extend(
                (site.at(f"{key}[{index}].pip[{i}]"), r) for i, r in enumerate(item["pip"]) if isinstance(r, str)
            )
    # build tools (pip, setuptools, wheel) are routinely left unpinned by MLflow itself
    return requirement_findings(lines, site.at(key), pins=key == "dependencies")


def _is_environment(data: dict) -> bool:
    """conda.yaml (``channels``/``name`` + ``dependencies``) or python_env.yaml (``python`` + dependencies)."""
    return isinstance(data.get("dependencies"), list) and ("channels" in data or "name" in data or "python" in data)


# Flavor fields naming a file of the model that the flavor loads (and usually unpickles).
_MODEL_FILES = ("data", "model_path", "pickled_model", "model_data", "saved_model_dir")


def _mlmodel(flavors: dict, site: Site) -> Iterator[Finding]:
    code_dirs: list[str] = []
    for name, conf in flavors.items():
        for key in _MODEL_FILES if isinstance(conf, dict) else ():
            value = conf.get(key)
            if isinstance(value, str) and value.strip():
                where = site.at(f"flavors.{name}.{key}")
                yield from site.path_findings(value.strip(), where, f"MLflow {name} loads", Severity.HIGH)
        if isinstance(conf, dict) and isinstance(conf.get("code"), str) and conf["code"].strip():
            code = conf["code"].strip()
            code_dirs.append(code)
            detail = f"MLflow puts {code}/ on sys.path when loading the {name} flavor: its modules become importable"
            yield from site.code_file(code, f"flavors.{name}.code", detail)
            shipped = site.shipped(code)
            if shipped is not None:
                site.ctx.add_import_root(shipped)
    pyfunc = flavors.get("python_function")
    if isinstance(pyfunc, dict):
        yield from _pyfunc(pyfunc, code_dirs, site)
    pytorch = flavors.get("pytorch")
    if isinstance(pytorch, dict) and isinstance(pytorch.get("pickle_module_name"), str):
        yield from pickle_module_findings(pytorch["pickle_module_name"], site.at("flavors.pytorch.pickle_module_name"))
    transformers = flavors.get("transformers")
    if isinstance(transformers, dict) and "model_binary" not in transformers:
        source = transformers.get("source_model_name")
        if isinstance(source, str) and source.strip():
            revision = transformers.get("source_model_revision")
            yield from site.dependency(
                source,
                "flavors.transformers.source_model_name",
                revision=revision if isinstance(revision, str) else None,
                what="MLflow downloads weights of",
            )


def _pyfunc(pyfunc: dict, code_dirs: list[str], site: Site) -> Iterator[Finding]:
    loader = pyfunc.get("loader_module")
    if isinstance(loader, str) and loader.strip() and not under(loader.strip(), ("mlflow",)):
        loader = loader.strip()
        where = "flavors.python_function.loader_module"
        if is_dangerous_module(loader):
            yield ENV_IMPORT.finding(
                site.at(where),
                f"MLflow imports loader module {loader}, which runs commands or code",
                severity=Severity.CRITICAL,
            )
        elif code_dirs:
            module_path = f"{code_dirs[0]}/{loader.replace('.', '/')}.py"
            detail = f"MLflow imports loader module {loader} from the model's code folder and calls _load_pyfunc()"
            yield from site.code_file(module_path, where, detail)
        else:
            yield ENV_IMPORT.finding(
                site.at(where),
                f"MLflow imports loader module {loader} from the serving environment (it is not shipped with the "
                "model, so mlgate cannot read it)",
            )
    python_model = pyfunc.get("python_model")
    if isinstance(python_model, str) and python_model.strip():
        where = site.at("flavors.python_function.python_model")
        shipped = site.shipped(python_model.strip())
        if shipped is not None:
            # Everything that pickle can run was scanned with it: code pickled by value (MLG-PKL-017, critical
            # when it reaches processes, network or exec), classes named from modules (unknown ones, or the
            # model's own code folder, scanned too), dangerous globals.
            yield PICKLED_MODEL.finding(
                where,
                f"MLflow unpickles {python_model} (cloudpickle) on load and calls the PythonModel it holds: that "
                "code runs by design; the pickle ships with the model and was scanned (see its findings and those "
                "of the modules it names)",
                severity=Severity.LOW,
            )
        else:
            yield PICKLED_MODEL.finding(
                where,
                f"MLflow unpickles {python_model} (cloudpickle) on load: the pickled PythonModel runs its author's "
                "code by design; see the pickle findings for that file",
            )
        yield from site.path_findings(python_model, where, "MLflow unpickles", Severity.HIGH)
    artifacts = pyfunc.get("artifacts")
    if isinstance(artifacts, dict):
        for name, spec in artifacts.items():
            path = spec.get("path") if isinstance(spec, dict) else None
            if isinstance(path, str) and path.strip():
                where = site.at(f"flavors.python_function.artifacts.{name}.path")
                yield from site.path_findings(
                    path, where, f"MLflow hands artifact {name} to the model from", Severity.HIGH
                )


def pickle_module_findings(module: str, where: str) -> list[Finding]:
    """The module MLflow's PyTorch flavor imports and passes to ``torch.load`` as ``pickle_module``."""
    module = module.strip()
    if not module or module in PICKLE_MODULES:
        return []
    dangerous = is_dangerous_module(module) and module not in PICKLE_MODULES
    return [
        ENV_IMPORT.finding(
            where,
            f"MLflow imports {module!r} and uses it to unpickle the model (expected one of "
            f"{', '.join(sorted(PICKLE_MODULES))})",
            severity=Severity.CRITICAL if dangerous else None,
        )
    ]


def requirement_findings(lines: list[tuple[str, str]], file_location: str, pins: bool = True) -> list[Finding]:
    """Findings for pip requirement lines given as (location, text); ``pins`` also reports unpinned ones."""
    out = []
    unpinned = []
    for where, raw in lines:
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        option = line.split(None, 1)[0].split("=", 1)[0]
        if option in _INDEX_OPTIONS:
            out.append(
                REQUIREMENT_SOURCE.finding(
                    where, f"{line!r}: packages come from a package index or location other than the default one"
                )
            )
        elif option in _EDITABLE:
            out.append(
                REQUIREMENT_SOURCE.finding(where, f"{line!r}: installs (and runs the build of) a local or VCS checkout")
            )
        elif option in _INCLUDES:
            continue  # the included file is itself part of the model and scanned
        elif _URLISH.search(line) or line.startswith((".", "/", "~")):
            out.append(
                REQUIREMENT_SOURCE.finding(
                    where, f"{line!r}: installs from a URL, VCS or path instead of a package index"
                )
            )
        elif not line.startswith("-") and not _PINNED.search(line):
            match = _NAME.match(line)
            unpinned.append(match.group(0) if match else line)
    if unpinned and pins:
        names = ", ".join(unpinned[:8]) + (f" and {len(unpinned) - 8} more" if len(unpinned) > 8 else "")
        out.append(
            REQUIREMENT_UNPINNED.finding(
                file_location, f"installs whatever version is newest at serving time of: {names}"
            )
        )
    return out
