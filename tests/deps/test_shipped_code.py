"""Code a model ships and mlgate scans is inventory (low); code it only names stays a finding (issue 16).

MLflow's pyfunc flavor puts the model's ``code/`` folder on ``sys.path`` and unpickles ``python_model.pkl``:
a pickled ``PythonModel`` whose class lives in ``code/`` is what ``mlflow.pyfunc.save_model(python_model=...,
code_paths=[...])`` writes for a plain model class. The class's module is scanned with the model, so the
pickle's unknown global, the code folder and the pickle itself are low; a module the model does not ship,
or ships outside the import path, stays medium, and shipped code that does something risky is still
reported (and quarantined) under its own rule.
"""

from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import pytest

from mlgate.analyzers.core.policy import Policy, Verdict
from mlgate.controller.scanning import scan_target

MLMODEL = """\
flavors:
  python_function:
    cloudpickle_version: 3.1.3
    code: code
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.pyfunc.model
    python_model: python_model.pkl
    python_version: 3.11.7
mlflow_version: 3.18.0
"""

PLAIN = """\
import mlflow.pyfunc


class ScaleModel(mlflow.pyfunc.PythonModel):
    def __init__(self, factor=2.0):
        self.factor = factor

    def predict(self, context, model_input, params=None):
        return model_input * self.factor
"""

RISKY = PLAIN.replace(
    "return model_input * self.factor", "import os\n        os.system('id')\n        return model_input"
)


@pytest.fixture
def model_pickle(monkeypatch) -> bytes:
    """A pickled instance of ``scale_model.ScaleModel``, written by pickle as cloudpickle writes it by reference."""
    module = types.ModuleType("scale_model")
    cls = type("ScaleModel", (), {"__module__": "scale_model", "__init__": lambda self: setattr(self, "factor", 2.0)})
    module.ScaleModel = cls
    monkeypatch.setitem(sys.modules, "scale_model", module)
    return pickle.dumps(cls(), protocol=4)


def write_model(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return root


def severities(report, rule: str) -> list[str]:
    return [f.severity.label for f in report.findings if f.rule == rule]


def test_plain_pyfunc_with_its_class_in_code_is_approved_with_low_inventory(tmp_path, model_pickle):
    folder = write_model(tmp_path, {"MLmodel": MLMODEL, "python_model.pkl": model_pickle, "code/scale_model.py": PLAIN})
    report = scan_target(folder, Policy())
    assert report.verdict is Verdict.APPROVED and report.scan_complete
    assert severities(report, "MLG-PKL-012") == ["low"]
    assert severities(report, "MLG-CODE-011") == ["low"]
    assert severities(report, "MLG-CODE-010") == ["low"]
    assert severities(report, "MLG-CODE-001") == ["low"]
    (unknown,) = [f for f in report.findings if f.rule == "MLG-PKL-012"]
    assert "code/scale_model.py" in unknown.message


def test_a_module_the_model_does_not_ship_stays_medium(tmp_path, model_pickle):
    folder = write_model(tmp_path, {"MLmodel": MLMODEL, "python_model.pkl": model_pickle, "code/helpers.py": "X = 1\n"})
    report = scan_target(folder, Policy())
    assert severities(report, "MLG-PKL-012") == ["medium"]


def test_a_module_outside_the_import_path_stays_medium(tmp_path, model_pickle):
    """``extra/`` is not an MLflow code folder: ``import scale_model`` would not find it there."""
    folder = write_model(
        tmp_path,
        {
            "MLmodel": MLMODEL,
            "python_model.pkl": model_pickle,
            "code/helpers.py": "X = 1\n",
            "extra/scale_model.py": PLAIN,
        },
    )
    report = scan_target(folder, Policy())
    assert severities(report, "MLG-PKL-012") == ["medium"]


def test_shipped_code_that_runs_commands_is_still_quarantined(tmp_path, model_pickle):
    folder = write_model(tmp_path, {"MLmodel": MLMODEL, "python_model.pkl": model_pickle, "code/scale_model.py": RISKY})
    report = scan_target(folder, Policy())
    assert report.verdict is Verdict.QUARANTINED
    assert "MLG-CODE-002" in {f.rule for f in report.findings}
    assert severities(report, "MLG-CODE-001") == ["medium"]  # the inventory says risky sites were found


def test_a_python_model_the_folder_does_not_hold_stays_high(tmp_path):
    folder = write_model(tmp_path, {"MLmodel": MLMODEL, "code/scale_model.py": PLAIN})
    report = scan_target(folder, Policy())
    assert severities(report, "MLG-CODE-011") == ["high"]


def test_transformers_auto_map_code_shipped_or_not(tmp_path):
    config = (
        '{"model_type": "x", "auto_map": {"AutoModel": "modeling_x.XModel", "AutoConfig": "configuration_x.XConfig"}}'
    )
    folder = write_model(tmp_path, {"config.json": config, "modeling_x.py": "import math\n\nclass XModel:\n    pass\n"})
    report = scan_target(folder, Policy())
    found = {f.location: f.severity.label for f in report.findings if f.rule == "MLG-CODE-010"}
    assert found == {"config.json#auto_map.AutoModel": "low", "config.json#auto_map.AutoConfig": "medium"}
