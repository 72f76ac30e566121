"""The fixed set of targets whose scan reports must not change by accident, and how to read them.

``regenerate.py`` writes ``scan_reports.json`` from the current code; ``test_golden_reports.py``
scans the same targets and compares, ignoring durations. A change that is meant to change a
verdict or a finding regenerates the file in the same commit, so the diff shows it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = (
    "tests/fixtures/archives",
    "tests/fixtures/backdoors/onnx",
    "tests/fixtures/backdoors/savedmodel",
    "tests/fixtures/deps/gguf",
    "tests/fixtures/deps/models",
    "tests/fixtures/keras_tf/keras",
    "tests/fixtures/keras_tf/onnx",
    "tests/fixtures/keras_tf/savedmodel",
    "tests/fixtures/pickles/benign",
    "tests/fixtures/pickles/malicious",
    "tests/fixtures/pickles/marshal",
    "tests/fixtures/pickles/suspicious",
    "examples",
    "controller/mlflow/demo_models",
)
GOLDEN = Path(__file__).with_name("scan_reports.json")
VOLATILE = ("duration_s",)


def targets() -> list[str]:
    """Every child of each collection (files and folders), builders and notes excluded, sorted."""
    out = []
    for collection in COLLECTIONS:
        for child in sorted((REPO / collection).iterdir()):
            if child.suffix in (".py", ".md", ".json") and child.is_file() and collection == "examples":
                continue
            if child.name.startswith(("build_", "dump_", "README", "__")):
                continue
            out.append(str(child.relative_to(REPO)))
    return out


def scan_reports(mlgate: list[str]) -> dict[str, dict]:
    """Scan every target with the given ``mlgate`` command; reports keyed by target, durations removed
    and the checkout's own path written ``<repo>`` (a dependency's cache path appears in reasons).
    ``--digest`` keeps content digests in the golden file (``mlgate scan`` leaves them null otherwise)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_", "HF_"))}
    env["HF_HUB_CACHE"] = str(REPO / "tests/fixtures/deps/hub")
    names = targets()
    done = subprocess.run(
        [*mlgate, "scan", *names, "--format", "json", "--digest"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode not in (0, 1):
        raise RuntimeError(f"mlgate scan failed ({done.returncode}): {done.stderr.strip()}")
    reports = {}
    for target in json.loads(done.stdout)["targets"]:
        for key in VOLATILE:
            target.pop(key, None)
        for dep in target.get("dependencies", ()):
            for key in VOLATILE:
                dep.pop(key, None)
        reports[target["target"]] = json.loads(json.dumps(target).replace(str(REPO), "<repo>"))
    return reports


def default_command() -> list[str]:
    return [sys.executable, "-m", "mlgate.controller"]
