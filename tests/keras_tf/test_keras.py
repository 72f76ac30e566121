"""Keras config walker on real Keras 3 / tf_keras files and hand-edited configs (../fixtures/keras_tf/build_keras.py).

Each injection fixture carries exactly one gadget; the test asserts the rule
that gadget must raise, where it sits in the config, and its severity
(docs/rules.md, Keras). Benign saves must not raise anything from the Keras analyzer.
"""

from __future__ import annotations

import pytest

from keras_tf.helpers import by, scan
from mlgate.analyzers.core.references import RefKind
from mlgate.analyzers.keras.config_walker import walk_config


@pytest.mark.parametrize("name", ["benign_k3.keras", "benign_k3.h5", "benign_lookup.keras"])
def test_benign_keras_files_are_silent(name: str) -> None:
    assert by(scan("keras", name), "keras") == []


@pytest.mark.parametrize(
    ("name", "rule", "location", "severity"),
    [
        ("inj_module_function.keras", "MLG-KER-002", "config.json:config/layers/head/config/activation", "critical"),
        ("inj_compile_gadget.keras", "MLG-KER-002", "config.json:compile_config/loss", "critical"),
        ("inj_enable_unsafe.keras", "MLG-KER-003", "config.json:config/layers/head/config/activation", "critical"),
        ("inj_get_file.keras", "MLG-KER-003", "config.json:config/layers/head/config/kernel_initializer", "critical"),
        (
            "inj_stringlookup_path.keras",
            "MLG-KER-008",
            "config.json:config/layers/lookup/config/vocabulary",
            "critical",
        ),
        ("inj_tfsmlayer.keras", "MLG-KER-007", "config.json:config/layers/remote/config/filepath", "high"),
        ("inj_torchwrapper.keras", "MLG-KER-006", "config.json:config/layers/torch", "critical"),
        ("inj_layer_name.keras", "MLG-KER-011", "config.json:config/layers/../../../tmp/mlgate-canary/slip", "medium"),
        ("inj_custom_object.keras", "MLG-KER-010", "config.json:config/layers/head", "low"),
        ("inj_extra_member.keras", "MLG-KER-012", "assets/hook.py", "medium"),
    ],
)
def test_each_injection_raises_its_rule(name: str, rule: str, location: str, severity: str) -> None:
    findings = by(scan("keras", name), "keras")
    assert [(f.rule, f.location, f.severity.label) for f in findings] == [(rule, f"{name}!{location}", severity)]


def test_tfsmlayer_is_recorded_as_a_dependency() -> None:
    result = scan("keras", "inj_tfsmlayer.keras")
    [ref] = result.references
    assert (ref.kind, ref.ref) == (RefKind.S3, "s3://models-bucket/other/saved_model")
    assert ref.location == "inj_tfsmlayer.keras!config.json:config/layers/remote/config/filepath"


def test_torch_wrapper_payload_is_walked_as_a_child_artifact() -> None:
    """The decoded torch.save zip is handed back to the walker (archive + pickle analyzers read it)."""
    result = scan("keras", "inj_torchwrapper.keras")
    child = "inj_torchwrapper.keras!config.json:config/layers/torch/config/module"
    assert any(f.location.startswith(child + "!") for f in result.findings if f.analyzer != "keras")


LAMBDA_FILES = [
    ("evil_lambda.keras", "evil_lambda.keras!config.json:config/layers/lam/config/function"),
    ("evil_lambda_k3.h5", "evil_lambda_k3.h5:model_config:config/layers/lam/config/function"),
    ("evil_lambda_tfk.h5", "evil_lambda_tfk.h5:model_config:config/layers/lam/config/function"),
    ("lambda_tfk_savedmodel", "keras_metadata.pb:root:config/layers/lam/config/function"),
]


@pytest.mark.parametrize(("name", "location"), LAMBDA_FILES)
def test_lambda_bytecode_in_every_container_is_critical_with_its_names(name: str, location: str) -> None:
    findings = [f for f in by(scan("keras", name), "keras") if f.rule == "MLG-KER-001"]
    assert [f.location for f in findings] == [location]  # the metadata root repeats the layer: reported once
    [finding] = findings
    assert finding.severity.label == "critical"  # the bytecode calls __import__('os').system
    assert "__import__" in finding.message and "system" in finding.message
    assert "runs inside load_model" in finding.message


def test_tf_keras_saved_model_graph_itself_is_benign() -> None:
    assert by(scan("keras", "lambda_tfk_savedmodel"), "savedmodel") == []


def test_tf_keras_named_function_lambda() -> None:
    [finding] = by(scan("keras", "tfk_named_function.h5"), "keras")
    assert (finding.rule, finding.severity.label) == ("MLG-KER-004", "critical")
    assert "os.getcwd" in finding.message


def test_tf_keras_tfoplambda_io_symbol() -> None:
    [finding] = by(scan("keras", "tfk_tfoplambda.h5"), "keras")
    assert (finding.rule, finding.severity.label) == ("MLG-KER-005", "high")
    assert finding.location == "tfk_tfoplambda.h5:model_config:config/layers/tf.math.abs/config/function"


# ---------------------------------------------------------------- walker semantics on small configs
def _rules(config: object, version: str | None = None) -> list[tuple[str, str]]:
    return [(f.rule, f.severity.label) for f in walk_config(config, "c", keras_version=version).findings]


def test_keras_builtins_and_dtype_policies_are_benign() -> None:
    config = {
        "module": "keras.layers", "class_name": "Dense", "registered_name": None,
        "config": {"name": "d", "activation": {"module": "builtins", "class_name": "function", "config": "relu"},
                   "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}}},
    }  # fmt: skip
    assert _rules(config) == []


def test_python_builtin_through_builtins_module_is_critical() -> None:
    config = {
        "class_name": "Dense",
        "config": {"name": "d", "activation": {"module": "builtins", "class_name": "function", "config": "exec"}},
    }
    assert _rules(config) == [("MLG-KER-002", "critical")]


def test_dangerous_module_class_is_critical_even_outside_lambda() -> None:
    config = {
        "class_name": "Model",
        "config": {"layers": [{"module": "subprocess", "class_name": "Popen", "config": {}}]},
    }
    assert _rules(config) == [("MLG-KER-002", "critical")]


def test_unsafe_toggle_makes_a_later_lambda_critical() -> None:
    config = {
        "class_name": "Model",
        "config": {"layers": [
            {"module": "keras.layers", "class_name": "Dense", "config": {"name": "a", "activation": {
                "module": "keras.config", "class_name": "function", "config": "enable_unsafe_deserialization"}}},
            {"module": "keras.layers", "class_name": "Lambda", "config": {"name": "l", "function": {
                "class_name": "__lambda__", "config": {"code": "not-base64!", "defaults": None, "closure": None}}}},
        ]},
    }  # fmt: skip
    assert sorted(_rules(config)) == [("MLG-KER-001", "critical"), ("MLG-KER-003", "critical")]


def test_old_keras_version_raises_one_level() -> None:
    config = {"class_name": "TFSMLayer", "module": "keras.layers", "config": {"name": "t", "filepath": "m"}}
    assert _rules(config, "3.15.1") == [("MLG-KER-007", "high")]
    assert _rules(config, "3.8.0") == [("MLG-KER-007", "critical")]


def test_deeply_nested_config_is_refused_not_crashing() -> None:
    deep: object = {}
    for _ in range(400):
        deep = {"class_name": "X", "config": deep}
    with pytest.raises(RecursionError):
        walk_config(deep, "c")


def _keras_zip_with(tmp_path, name: str, extra: dict[str, bytes]):
    """A real Keras 3 file (the benign fixture) with ``extra`` members appended as Keras' zip writer would."""
    import zipfile

    from keras_tf.helpers import FIXTURES

    path = tmp_path / name
    with zipfile.ZipFile(FIXTURES / "keras" / "benign_k3.keras") as src, zipfile.ZipFile(path, "w") as out:
        for info in src.infolist():
            out.writestr(info, src.read(info))
        for member, data in extra.items():
            out.writestr(member, data)
    return path


def test_escaping_member_names_are_reported_once_by_the_archive_analyzer(tmp_path) -> None:
    from mlgate.analyzers.core.walker import scan_path

    path = _keras_zip_with(tmp_path, "slip.keras", {"../../escape.py": b"x = 1\n", "/abs/hook.py": b"y = 2\n"})
    result = scan_path(path, label="slip.keras")
    assert by(result, "keras") == []  # member names belong to the archive analyzer
    names = sorted((f.rule, f.location) for f in result.findings if f.rule in {"MLG-ARC-001", "MLG-ARC-002"})
    assert names == [("MLG-ARC-001", "slip.keras!../../escape.py"), ("MLG-ARC-002", "slip.keras!/abs/hook.py")]


def test_a_zip_over_the_member_budget_is_refused_once_without_reading_its_directory(tmp_path) -> None:
    from mlgate.analyzers.core.budget import Budgets
    from mlgate.analyzers.core.walker import ScanOptions, scan_path

    path = _keras_zip_with(tmp_path, "many.keras", {f"assets/{i:03d}.txt": b"" for i in range(40)})
    result = scan_path(path, ScanOptions(budgets=Budgets(max_members=20)), label="many.keras")
    assert not result.complete
    assert [(f.rule, f.analyzer) for f in result.findings] == [("MLG-CORE-002", "core")]
    # The member reader refuses from the end record's count (bench/archive_budgets.py shows the cost).
    from mlgate.analyzers.archives.zip_and_streams import read_zip_entries
    from mlgate.analyzers.core.budget import BudgetExceeded

    with open(path, "rb") as stream:
        assert len(read_zip_entries(stream)) == 43
        with pytest.raises(BudgetExceeded, match="lists 43 members"):
            read_zip_entries(stream, max_entries=20)


def test_a_keras_zip_within_the_budget_is_still_read_after_the_archive_walk(tmp_path) -> None:
    """The archive walk charges members first; the Keras reader must not mistake that for an oversized zip."""
    from mlgate.analyzers.core.budget import Budgets
    from mlgate.analyzers.core.walker import ScanOptions, scan_path

    path = _keras_zip_with(tmp_path, "hook.keras", {"assets/hook.py": b"import os\n"})
    # 5 = the file + its 4 members: the archive walk leaves no budget, yet the directory is within it.
    result = scan_path(path, ScanOptions(budgets=Budgets(max_members=5)), label="hook.keras")
    assert result.complete
    assert [(f.rule, f.location) for f in by(result, "keras")] == [("MLG-KER-012", "hook.keras!assets/hook.py")]
