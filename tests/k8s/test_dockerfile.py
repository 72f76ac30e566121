"""The Dockerfile, checked by parsing it (no container engine here) and by running its build-stage install
steps in a fresh virtual environment against the repository's own pyproject.toml."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from k8s_helpers import REPO
from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DOCKERFILE = REPO / "Dockerfile"


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        keyword, _, rest = full.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def _stages() -> tuple[dict[str, str], list[list[tuple[str, str]]]]:
    """(global ARG defaults, instructions per stage)."""
    args: dict[str, str] = {}
    stages: list[list[tuple[str, str]]] = []
    for keyword, rest in _instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            stages.append([(keyword, rest)])
        elif not stages:
            if keyword == "ARG" and "=" in rest:
                name, value = rest.split("=", 1)
                args[name] = value
        else:
            stages[-1].append((keyword, rest))
    return args, stages


def _env(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, rest in stage:
        if keyword == "ENV":
            for token in shlex.split(rest):
                name, _, value = token.partition("=")
                env[name] = value
    return env


def test_multi_stage_from_a_pinned_slim_python() -> None:
    args, stages = _stages()
    assert len(stages) >= 2
    for stage in stages:
        base = stage[0][1].split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], base)
        assert re.fullmatch(r"python:3\.\d+\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", image), image


def test_runtime_stage_is_non_root_read_only_friendly_and_runs_mlgate() -> None:
    _, stages = _stages()
    runtime = stages[-1]
    users = [rest for keyword, rest in runtime if keyword == "USER"]
    assert users, "the runtime stage must set USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0 and (not gid or (gid.isdigit() and int(gid) > 0))
    entrypoint = [rest for keyword, rest in runtime if keyword == "ENTRYPOINT"]
    assert entrypoint and json.loads(entrypoint[-1]) == ["mlgate"]
    env = _env(runtime)
    for name in ("TMPDIR", "HOME", "MLGATE_HOME"):
        assert env[name].startswith("/tmp"), name  # the chart's writable emptyDir
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    # Nothing is installed in the runtime stage: it only copies the built virtual environment (and removes
    # the base's package installer).
    for keyword, rest in runtime:
        if keyword == "RUN":
            assert not re.search(r"\bpip[\d.]*\s+install\b|\b(apt-get|apt|apk|dnf|yum)\b", rest), rest


def test_no_secrets_in_the_image_definition() -> None:
    secretish = re.compile(r"(?i)(secret|password|passwd|token|api_?key|access_?key|credential|signing)")
    for keyword, rest in _instructions(DOCKERFILE.read_text()):
        if keyword in {"ENV", "ARG", "LABEL"}:
            for token in shlex.split(rest):
                assert not secretish.search(token.partition("=")[0]), f"{keyword} {token}"
        if keyword in {"COPY", "ADD"}:
            assert not re.search(r"(?i)\.(pem|key|env)\b|\.aws|kubeconfig", rest), rest


def test_runtime_dependencies_are_the_client_only() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = {Requirement(r).name.lower() for r in project["dependencies"]}
    assert "mlflow-skinny" in names
    assert "mlflow" not in names, "the runtime must not pull the full MLflow server"
    assert not {"pytest", "moto", "helm-python-sdk", "kubernetes-validate"} & names
    _, stages = _stages()
    installs = [rest for keyword, rest in stages[0] if keyword == "RUN" and "pip" in rest and " install " in rest]
    arguments = [shlex.split(m) for rest in installs for m in re.findall(r"pip\"? install ([^&;|]+)", rest)]
    assert ["."] in arguments, "the build stage installs the project itself, without extras"
    for args in arguments:
        for arg in args:
            if not arg.startswith("-") and arg != ".":
                assert Requirement(arg).name.lower() == "pip", f"the build installs {arg} besides the project"


def _excluded(path: str, patterns: list[str]) -> bool:
    """.dockerignore semantics (last matching pattern wins; ``!`` re-includes)."""
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path, pattern + "/*") or pattern == "**":
            excluded = not negate
    return excluded


def test_dockerignore_keeps_the_context_to_what_the_build_copies() -> None:
    patterns = [
        p.strip() for p in (REPO / ".dockerignore").read_text().splitlines() if p.strip() and not p.startswith("#")
    ]
    _, stages = _stages()
    copied = [rest.split()[0] for keyword, rest in stages[0] if keyword == "COPY" and "--from" not in rest]
    sources = [s for rest in (r for k, r in stages[0] if k == "COPY") for s in rest.split()[:-1]]
    assert copied
    for source in sources:
        assert (REPO / source).exists(), source
        assert not _excluded(source, patterns), f"{source} is excluded from the build context"
        if (REPO / source).is_dir():
            assert not _excluded(f"{source}/core.py", patterns)
    for path in (
        ".git/config",
        "tests/conftest.py",
        "charts/mlgate/values.yaml",
        "bench/x.py",
        "controller/__pycache__/x.pyc",
        ".env",
    ):
        assert _excluded(path, patterns), path


@pytest.mark.slow
@pytest.mark.timeout(600)  # a fresh venv install; slow when the machine is shared
def test_build_stage_installs_in_a_fresh_venv(tmp_path: Path) -> None:
    """Run the build stage's COPY and RUN steps for real (VENV and WORKDIR mapped into tmp_path)."""
    _, stages = _stages()
    build = stages[0]
    context = tmp_path / "src"
    venv = tmp_path / "venv"
    context.mkdir()
    # `python` in RUN lines is the base image's interpreter: use this one (same minor version family).
    shim = tmp_path / "bin"
    shim.mkdir()
    for name in ("python", "python3"):
        (shim / name).symlink_to(sys.executable)
    env = {**os.environ, **_env(build), "VENV": str(venv), "PATH": f"{shim}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PIP_NO_CACHE_DIR", None)  # keep the local wheel cache: same resolution, faster test
    env.pop("VIRTUAL_ENV", None)
    started = time.monotonic()
    for keyword, rest in build[1:]:
        if keyword == "COPY":
            *sources, destination = rest.split()
            target = context / destination.removeprefix("./")
            for source in sources:
                origin = REPO / source
                if origin.is_dir():
                    shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
                else:
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, target / origin.name)
        elif keyword == "RUN":
            result = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", rest],
                cwd=context,
                env=env,
                capture_output=True,
                text=True,
                timeout=540,
            )
            assert result.returncode == 0, f"RUN {rest}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    elapsed = time.monotonic() - started

    python = venv / "bin" / "python"
    probe = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.metadata as m, importlib.util as u, json; "
            "print(json.dumps({'mlgate': m.version('mlgate'), 'requires': m.requires('mlgate'), "
            "'skinny': m.version('mlflow-skinny'), 'flask': u.find_spec('flask') is not None, "
            "'pytest': u.find_spec('pytest') is not None, 'pip': u.find_spec('pip') is not None, "
            "'mlflow': [d.metadata['Name'] for d in m.distributions() if d.metadata['Name'].lower() == 'mlflow']}))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert probe.returncode == 0, probe.stderr
    facts = json.loads(probe.stdout)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    from mlgate.analyzers import __version__

    assert facts["mlgate"] == __version__
    installed = {Requirement(r).name.lower() for r in facts["requires"] if "extra ==" not in r}
    assert installed == {Requirement(r).name.lower() for r in project["dependencies"]}
    assert facts["flask"] is False and facts["pytest"] is False  # no MLflow server, no test extras
    assert facts["mlflow"] == [], "the full mlflow package is installed"
    assert facts["pip"] is False, "pip is still in the environment the runtime stage copies"
    assert not list((venv / "bin").glob("pip*"))
    helped = subprocess.run(
        [str(venv / "bin" / "mlgate"), "admission-server", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert helped.returncode == 0 and "AdmissionReview" in helped.stdout
    print(f"build stage install took {elapsed:.0f} s")
