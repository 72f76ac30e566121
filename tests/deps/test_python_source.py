"""Python source shipped with a model: ``ast`` only, names resolved through the file's own imports.

Each case is code a loader would import (``trust_remote_code``, MLflow code
paths); the expectation is what that import or the model's construction would
do, so the severity follows when the call runs.
"""

from __future__ import annotations

import textwrap

import pytest

from mlgate.analyzers.core.policy import Policy, Verdict
from mlgate.analyzers.core.walker import Malformed
from mlgate.analyzers.embedded_code.python_source import analyze_source
from mlgate.controller.scanning import scan_target


def findings(source: str):
    return [f for f in analyze_source(textwrap.dedent(source).encode(), "m.py") if f.rule != "MLG-CODE-001"]


def summary(source: str) -> set[tuple[str, str, str]]:
    return {(f.rule, f.location, f.severity.label) for f in findings(source)}


@pytest.mark.parametrize(
    "source",
    [
        "import os\nos.system('id')\n",
        "import os as o\no.system('id')\n",
        "from os import system as run\nrun('id')\n",
        "import os\nrun = os.system\nrun('id')\n",
        "__import__('os').system('id')\n",
        "import importlib\nimportlib.import_module('subprocess').check_call(['id'])\n",
        "import os\ngetattr(os, 'system')('id')\n",
        "from subprocess import *\nPopen(['id'])\n",
        "import posix\nposix.system('id')\n",
        "import sys\nsys.modules['os'].popen('id')\n",
    ],
)
def test_process_spawn_at_import_through_any_alias(source):
    last_line = source.count("\n")  # the call is on the last line
    assert ("MLG-CODE-002", f"m.py:{last_line}", "critical") in summary(source)


def test_names_are_resolved_not_substring_matched():
    source = """\
    import os
    from torch import nn

    def my_system(x):
        return x

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.subsystem = nn.Linear(2, 2)

        def forward(self, x):
            y = self.system(x) if hasattr(self, 'system') else x
            return my_system(os.path.join('a', 'b')) and y

        def system(self, x):
            return x
    """
    assert findings(source) == []


def test_timing_decides_severity():
    source = """\
    import subprocess

    class M:
        def __init__(self):
            self._prepare()

        def _prepare(self):
            subprocess.run(['curl', 'x'])

        def forward(self, x):
            subprocess.run(['ls'])
            return x

    if __name__ == '__main__':
        subprocess.run(['make'])
    """
    found = {(f.location, f.severity.label): f.message for f in findings(source)}
    assert set(found) == {("m.py:8", "critical"), ("m.py:11", "high"), ("m.py:15", "medium")}
    assert "constructed" in found[("m.py:8", "critical")]
    assert "M.forward()" in found[("m.py:11", "high")]
    assert "script" in found[("m.py:15", "medium")]


def test_exec_of_decoded_string_is_critical_even_indirect():
    source = """\
    import base64, zlib
    blob = zlib.decompress(base64.b64decode('eJzLzC3ILypRSEksSQQAGx4Egw=='))

    def later():
        exec(blob)
    """
    assert summary(source) == {("MLG-CODE-003", "m.py:5", "critical")}


def test_literal_exec_is_analyzed_and_constant_eval_is_not_a_finding():
    source = "exec(\"import os; os.system('id')\")\nx = eval('1e-5')\n"
    assert summary(source) == {("MLG-CODE-002", "m.py:1", "critical"), ("MLG-CODE-004", "m.py:1", "high")}


@pytest.mark.parametrize(
    ("source", "rule"),
    [
        ("import requests\nrequests.get('http://x')\n", "MLG-CODE-005"),
        ("import urllib.request as u\nu.urlopen('http://x')\n", "MLG-CODE-005"),
        ("import socket\nsocket.create_connection(('x', 1))\n", "MLG-CODE-005"),
        ("open('/etc/cron.d/x', 'w').write('x')\n", "MLG-CODE-006"),
        ("import shutil, os\nshutil.rmtree(os.path.expanduser('~/.ssh'))\n", "MLG-CODE-006"),
        ("from pathlib import Path\n(Path.home() / '.bashrc').write_text('x')\n", "MLG-CODE-006"),
        ("import importlib\nname = input()\nimportlib.import_module(name)\n", "MLG-CODE-007"),
        ("import ctypes\nctypes.CDLL('./libx.so')\n", "MLG-CODE-008"),
        ("x = ().__class__.__base__.__subclasses__()\n", "MLG-CODE-009"),
    ],
)
def test_capabilities_at_import_are_high(source, rule):
    assert (rule, "high") in {(f.rule, f.severity.label) for f in findings(source)}


def test_writes_inside_the_model_are_not_findings():
    source = """\
    import os
    here = os.path.dirname(__file__)
    with open(os.path.join(here, 'cache.json'), 'w') as fh:
        fh.write('{}')
    open('notes.txt', 'a').close()
    open('/etc/hosts').read()
    """
    assert findings(source) == []


def test_plain_modelling_code_is_low_inventory_and_approved(tmp_path):
    """Read whole, nothing risky: inventory at low (issue 16: every custom-code model had a medium finding)."""
    (tmp_path / "modeling_x.py").write_text(
        textwrap.dedent("""\
        import math
        import torch
        from torch import nn
        from .configuration_x import XConfig

        class XModel(nn.Module):
            config_class = XConfig

            def __init__(self, config):
                super().__init__()
                self.proj = nn.Linear(config.hidden, config.hidden)
                self.act = getattr(nn, config.act)()

            def forward(self, x):
                return self.act(self.proj(x)) / math.sqrt(2.0)
        """)
    )
    report = scan_target(tmp_path, Policy())
    assert [(f.rule, f.severity.label, f.location) for f in report.findings if f.rule.startswith("MLG-CODE")] == [
        ("MLG-CODE-001", "low", "modeling_x.py")
    ]
    assert not [f for f in report.findings if f.severity.label in ("medium", "high", "critical")]
    assert report.verdict is Verdict.APPROVED


def test_code_with_a_risky_call_site_keeps_a_medium_inventory(tmp_path):
    (tmp_path / "modeling_x.py").write_text(
        textwrap.dedent("""\
        import importlib

        class XModel:
            def load_plugin(self, name):
                return importlib.import_module(name)
        """)
    )
    findings = scan_target(tmp_path, Policy()).findings
    inventory = [f for f in findings if f.rule == "MLG-CODE-001"]
    assert [f.severity.label for f in inventory] == ["medium"]
    assert "1 risky call site(s)" in inventory[0].message
    assert any(f.rule == "MLG-CODE-007" for f in findings)


def test_syntax_error_is_malformed():
    with pytest.raises(Malformed, match="syntax error at line 2"):
        analyze_source(b"import os\ndef broken(:\n", "m.py")


def test_syntax_error_makes_the_scan_incomplete(tmp_path):
    (tmp_path / "modeling.py").write_text("def f(:\n")
    report = scan_target(tmp_path, Policy())
    assert not report.scan_complete and report.verdict is Verdict.QUARANTINED
    assert [f.rule for f in report.findings] == ["MLG-CORE-003"]
