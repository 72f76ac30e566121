"""The analyzer registry loads a module only for the kinds it declares, and the declarations are true."""

from __future__ import annotations

import pickle
import subprocess
import sys

from mlgate.analyzers.core import registry

HEAVY = (
    "google.protobuf",
    "h5py",
    "py7zr",
    "jinja2",
    "huggingface_hub",
    "boto3",
    "botocore",
    "mlflow",
    "model_signing",
)


def test_declared_kinds_are_exactly_what_each_module_registers() -> None:
    registry.load_all()
    registered: dict[str, set] = {}
    for kind, entries in registry._REGISTRY.items():
        for _, fn in entries:
            if fn.__module__ in registry.ANALYZER_MODULES:
                registered.setdefault(fn.__module__, set()).add(kind)
    declared = {module: set(kinds) for module, kinds in registry.ANALYZER_MODULES.items()}
    assert registered == declared


def test_dispatch_order_follows_the_declaration() -> None:
    names = [fn.__module__ for _, fn in registry.analyzers_for(registry.Kind.ZIP)]
    assert names == [m for m in registry.ANALYZER_MODULES if registry.Kind.ZIP in registry.ANALYZER_MODULES[m]]


def test_scanning_a_pickle_loads_no_heavy_dependency(tmp_path) -> None:
    model = tmp_path / "model.pkl"
    model.write_bytes(pickle.dumps({"weights": [0.5, 0.25], "classes": ["a", "b"]}))
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['mlgate', 'scan', {str(model)!r}, '--format', 'json']\n"
        "try:\n    runpy.run_module('mlgate.controller', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    line = [ln for ln in done.stderr.splitlines() if ln.startswith("HEAVY")]
    assert line == ["HEAVY []"], done.stderr[-2000:]
    assert '"verdict": "approved"' in done.stdout
