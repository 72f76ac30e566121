"""What ``mlgate`` imports to scan one plain pickle, a torch zip, and to print its version (issue 19).

Start-up is most of the cost of scanning a small file, and an import added at the top of a module
on that path costs every scan. These tests pin the path: modules a pickle scan must not load (what
other formats, other subcommands, references and policy files need), a budget of modules, and an
almost empty ``--version``. A new import on the path fails here with the module named; make it
lazy (imported where it is used) or, if a pickle scan really needs it, raise the budget here.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

FORBIDDEN_IN_PICKLE_SCAN = (
    # secrets: detect-secrets and requests load only for a string with a token's shape
    "detect_secrets",
    "requests",
    "urllib3",
    "http.client",
    "ssl",
    "socket",
    "email",
    # logging loads with -v, a remote target or --jobs; the progress bar locks without threading
    "logging",
    "threading",
    # --jobs, references, other formats, policy files
    "multiprocessing",
    "concurrent.futures.process",
    "subprocess",
    "tarfile",
    "zipfile",
    "zstandard",
    "lz4",
    "py7zr",
    "tomllib",
    "mlgate.controller.resolver",
    "mlgate.controller.s3",
    "mlgate.controller.mlflow",
    "mlgate.controller.config.settings",
    "mlgate.controller.formats.sarif",
    "mlgate.controller.formats.text",
    "mlgate.analyzers.archives",
    "mlgate.analyzers.configs",
    "mlgate.analyzers.core.digest",
    "mlgate.analyzers.pickles.fx_code",
    "mlgate.analyzers.pickles.joblib_arrays",
    # typing (analyzers/core/records.py gives NamedTuple); pathlib, with urllib.parse and ipaddress, for
    # a folder, a policy file or --output only; the signature verifier only when the policy uses
    # signatures or the target carries a signature file
    "typing",
    "pathlib",
    "urllib",
    "ipaddress",
    "mlgate.analyzers.signatures",
    # argparse's stock help formatter imports shutil (with bz2 and lzma); the pickle VM's literal
    # decompression loads bz2 and lzma for a pickle that decompresses something
    "shutil",
    "bz2",
    "lzma",
)
# A torch zip reads the archive, the pickle and plain text members: none of the config parsers (YAML,
# the config handlers, the Keras config walker), which load with the first config or Keras archive.
# The archive readers load bz2 and lzma (archives/streams.py's codecs).
FORBIDDEN_IN_TORCH_ZIP_SCAN = tuple(
    m
    for m in FORBIDDEN_IN_PICKLE_SCAN
    if m not in ("mlgate.analyzers.archives", "mlgate.analyzers.configs", "bz2", "lzma")
) + (
    "yaml",
    "importlib.resources",
    "tempfile",
    "mlgate.analyzers.configs.analyzer",
    "mlgate.analyzers.configs.parsing",
    "mlgate.analyzers.configs.sites",
    "mlgate.analyzers.configs.huggingface",
    "mlgate.analyzers.configs.hydra",
    "mlgate.analyzers.configs.mlflow_model",
    "mlgate.analyzers.keras.config_walker",
    "mlgate.analyzers.embedded_code.catalogue",
)
TORCH_ZIP_MLGATE_MODULE_BUDGET = 52  # 48 when this was written
MLGATE_MODULE_BUDGET = 40  # 38 when this was written
ALL_MODULE_BUDGET = 105  # modules beyond the interpreter's own start-up; 90 when this was written


def _modules_after(argv: list[str]) -> tuple[list[str], list[str], str]:
    """(modules ``mlgate argv`` loaded, in order of name; modules of a bare interpreter; its stdout)."""
    code = (
        "import sys, io, contextlib, json\n"
        "before = set(sys.modules)\n"
        "from mlgate.controller.cli.main import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        f"    main({argv!r})\n"
        "print(json.dumps([sorted(set(sys.modules) - before), out.getvalue()]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded, stdout = json.loads(done.stdout)
    return loaded, [m for m in loaded if m == "mlgate" or m.startswith("mlgate.")], stdout


def _under(module: str, names: tuple[str, ...]) -> bool:
    return any(module == n or module.startswith(n + ".") for n in names)


def test_a_pickle_scan_loads_only_the_pickle_path(tmp_path) -> None:
    model = tmp_path / "model.pkl"
    model.write_bytes(pickle.dumps({"weights": [0.5, 0.25], "classes": ["tok0", "tok1"], "act": "gelu"}))
    loaded, ours, stdout = _modules_after(["scan", str(model), "--format", "json", "--no-progress"])
    assert json.loads(stdout)["targets"][0]["verdict"] == "approved"  # the scan did run
    assert "mlgate.analyzers.pickles.vm" in ours
    assert [m for m in loaded if _under(m, FORBIDDEN_IN_PICKLE_SCAN)] == []
    assert len(ours) <= MLGATE_MODULE_BUDGET, ours
    assert len(loaded) <= ALL_MODULE_BUDGET, loaded


def test_a_torch_zip_scan_loads_no_config_parser() -> None:
    model = FIXTURES / "benign" / "torch-state-dict" / "model.pt"  # torch.save: data.pkl, tensors, text members
    loaded, ours, stdout = _modules_after(["scan", str(model), "--format", "json", "--no-progress"])
    report = json.loads(stdout)["targets"][0]
    assert report["verdict"] == "approved" and report["scan_complete"]  # the zip and its members were read
    assert {"mlgate.analyzers.archives.zip_and_streams", "mlgate.analyzers.pickles.vm"} <= set(ours)
    assert [m for m in loaded if _under(m, FORBIDDEN_IN_TORCH_ZIP_SCAN)] == []
    assert len(ours) <= TORCH_ZIP_MLGATE_MODULE_BUDGET, ours


def test_verbose_and_remote_scans_still_configure_logging(tmp_path) -> None:
    model = tmp_path / "model.pkl"
    model.write_bytes(pickle.dumps([1, 2]))
    code = (
        "import logging, sys\n"
        "from mlgate.controller.cli import main as _\n"
        "main = sys.modules['mlgate.controller.cli.main']\n"
        "main.main(sys.argv[1:])\n"
        "root = logging.getLogger()\n"
        "print(logging.getLevelName(root.level), len(root.handlers))\n"
    )
    for argv, expected in ((["-v"], "INFO 1"), (["-vv"], "DEBUG 1"), ([], "WARNING 0")):
        done = subprocess.run(
            [sys.executable, "-c", code, *argv, "scan", str(model), "--no-progress"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert done.stdout.strip().splitlines()[-1] == expected, (argv, done.stdout, done.stderr)


def test_version_imports_almost_nothing() -> None:
    loaded, ours, stdout = _modules_after(["--version"])
    assert stdout.startswith("mlgate ")
    assert set(ours) <= {"mlgate", "mlgate.analyzers", "mlgate.controller", "mlgate.controller.cli",
                         "mlgate.controller.cli.main"}  # fmt: skip
    assert "argparse" not in loaded and "logging" not in loaded
