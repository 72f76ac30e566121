"""The benign suite as data: which folders are models, how each is scanned, what counts as a false positive.

Shared by ``tests/benign/test_benign_suite.py`` and ``bench/false_positives.py``. Scans go through the
``mlgate scan --format json`` command (the stable report contract), not through internal modules.

Layout: every folder directly under ``tests/fixtures/benign/`` is one model, except the group folders in
``GROUPS``, whose every sub-folder (and every model file directly inside, builder scripts and notes
aside) is one model. A model folder holding a ``hub/`` folder is a Hugging Face hub cache for its own
dependencies: the scan runs with ``HF_HUB_CACHE`` pointing there (as on a machine that downloaded the
base model); every other scan gets an empty cache, so nothing outside the suite is ever read.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

SUITE = Path(__file__).resolve().parent.parent / "fixtures" / "benign"
GROUPS = ("keras_tf",)  # built by tests/fixtures/benign/keras_tf/ builders: one model per entry inside
NOT_MODELS = {".py", ".md", ".txt", ".pyc"}
SERIOUS = ("medium", "high", "critical")


@dataclass(frozen=True)
class Outcome:
    """One model folder's scan: its name in the suite and the target entry of the JSON report."""

    name: str
    report: dict

    @property
    def approved(self) -> bool:
        return self.report["verdict"] == "approved"

    @property
    def serious(self) -> list[dict]:
        return [f for f in self.report["findings"] if f["severity"] in SERIOUS]

    @property
    def false_positive(self) -> bool:
        return not self.approved or bool(self.serious) or not self.report["scan_complete"]


def model_folders() -> list[Path]:
    """Every model of the suite (folders, and model files inside group folders), sorted by name."""
    models = []
    for entry in sorted(SUITE.iterdir()):
        if entry.name.startswith((".", "_")) or not entry.is_dir():
            continue
        if entry.name in GROUPS:
            for inner in sorted(entry.iterdir()):
                if inner.name.startswith((".", "_")) or inner.name == "__pycache__":
                    continue
                if inner.is_dir() or inner.suffix not in NOT_MODELS:
                    models.append(inner)
            continue
        models.append(entry)
    return models


def name_of(path: Path) -> str:
    return path.relative_to(SUITE).as_posix()


def mlgate_command() -> list[str]:
    """The installed ``mlgate`` next to this interpreter, else the one on PATH."""
    local = Path(sys.executable).parent / "mlgate"
    if local.exists():
        return [str(local)]
    found = shutil.which("mlgate")
    if found:
        return [found]
    raise RuntimeError("the mlgate command is not installed (pip install -e .)")


def scan(models: list[Path] | None = None, jobs: int = 2) -> list[Outcome]:
    """Scan every model (one ``mlgate scan`` per hub cache) and return outcomes in suite order."""
    models = model_folders() if models is None else models
    groups: dict[Path | None, list[Path]] = {}
    for model in models:
        hub = model / "hub"
        groups.setdefault(hub if hub.is_dir() else None, []).append(model)
    outcomes: dict[str, Outcome] = {}
    with tempfile.TemporaryDirectory(prefix="mlgate-benign-") as empty:
        for hub, members in groups.items():
            env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING", "AWS_", "HF_"))}
            env |= {"HF_HUB_CACHE": str(hub or Path(empty) / "hub"), "HF_HUB_OFFLINE": "1", "NO_COLOR": "1"}
            command = [*mlgate_command(), "scan", "--format", "json", "--no-progress", "--jobs", str(jobs)]
            done = subprocess.run(
                [*command, *(str(m) for m in members)], env=env, capture_output=True, text=True, check=False
            )
            if done.returncode not in (0, 1):
                raise RuntimeError(f"mlgate scan failed ({done.returncode}): {done.stderr.strip()}")
            for model, target in zip(members, json.loads(done.stdout)["targets"], strict=True):
                outcomes[name_of(model)] = Outcome(name_of(model), target)
    return [outcomes[name_of(m)] for m in models]
