"""Loader parity for Keras and SavedModel (issue 13 items 3, 4 and 7).

Fixtures come from ``tests/fixtures/keras_tf/build_parity.py`` (real Keras 3 / TensorFlow saves,
edited where noted). Keras' rules come from its own source: ``_retrieve_class_or_fn`` maps
``{"module": "builtins", "class_name": "function", "config": NAME}`` to ``keras.<m>.NAME`` for its
built-in modules, else to whatever the loading process registered under NAME.
"""

from __future__ import annotations

import json
import zipfile

import pytest

from mlgate.analyzers.core.policy import Policy, Verdict
from mlgate.analyzers.core.report import build_report
from mlgate.analyzers.keras.config_walker import keras_names, walk_config

from .helpers import FIXTURES, scan


def _verdict(*parts: str) -> Verdict:
    return build_report(scan(*parts), Policy()).verdict


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_fixture_lambda_really_uses_the_builtins_function_shape(suffix: str) -> None:
    """The fixtures hold what Keras 3 writes, not a hand-made guess of it."""
    path = FIXTURES / "keras" / f"parity_lambda_unmapped{suffix}"
    if suffix == ".keras":
        config = json.loads(zipfile.ZipFile(path).read("config.json"))
    else:
        h5py = pytest.importorskip("h5py")
        with h5py.File(path) as f:
            config = json.loads(f.attrs["model_config"])
    lam = next(layer for layer in config["config"]["layers"] if layer["class_name"] == "Lambda")
    assert lam["config"]["function"] == {
        "module": "builtins",
        "class_name": "function",
        "config": "plain_scale",
        "registered_name": "function",
    }


@pytest.mark.parametrize(
    ("name", "severity"),
    [
        ("parity_lambda_unmapped.keras", "high"),
        ("parity_lambda_unmapped.h5", "high"),
        ("parity_lambda_dangerous.keras", "critical"),
        ("parity_lambda_dangerous.h5", "critical"),
    ],
)
def test_lambda_naming_an_unmapped_function_is_quarantined(name: str, severity: str) -> None:
    result = scan("keras", name)
    hits = [f for f in result.findings if f.rule == "MLG-KER-013"]
    assert [f.severity.label for f in hits] == [severity]
    assert hits[0].location.endswith("config/layers/lam/config/function")
    assert "registered" in hits[0].message
    assert _verdict("keras", name) is Verdict.QUARANTINED


@pytest.mark.parametrize(
    "name", ["parity_lambda_builtin.keras", "parity_lambda_builtin.h5", "parity_kerashub_registered.keras"]
)
def test_benign_twins_with_keras_builtins_and_kerashub_names_are_approved(name: str) -> None:
    result = scan("keras", name)
    assert result.findings == []
    assert _verdict("keras", name) is Verdict.APPROVED


@pytest.mark.parametrize(
    ("name", "api", "location"),
    [
        ("parity_get_file_class.keras", "keras.utils.get_file", "config/layers/3"),
        ("parity_unsafe_class.keras", "keras.config.enable_unsafe_deserialization", "compile_config/metrics/0"),
        (
            "parity_internal_loader_class.keras",
            "keras.src.saving.saving_api.load_model",
            "config/layers/dense/config/kernel_initializer",
        ),
    ],
)
def test_non_modelling_api_used_as_a_class_is_critical(name: str, api: str, location: str) -> None:
    result = scan("keras", name)
    hits = [f for f in result.findings if f.rule == "MLG-KER-003"]
    assert len(hits) == 1 and hits[0].severity.label == "critical"
    assert hits[0].location.endswith(location) and api in hits[0].message


def test_keras_names_come_from_keras_itself() -> None:
    builtin, public, internal = keras_names()
    assert {"relu", "softmax", "mean_squared_error", "GlorotUniform"} <= builtin
    assert not {"system", "eval", "plain_scale"} & builtin
    assert "keras.utils.get_file" in public and "keras.src.utils.file_utils.get_file" in internal


_SPOTS = {
    "layer": lambda d: {"class_name": "Functional", "config": {"layers": [d]}},
    "activation": lambda d: {"class_name": "Dense", "config": {"name": "x", "activation": d}},
    "compile_loss": lambda d: {"compile_config": {"loss": d}},
    "optimizer": lambda d: {"compile_config": {"optimizer": {"class_name": "Adam", "config": {"lr": d}}}},
    "inbound_kwargs": lambda d: {"inbound_nodes": [{"args": [], "kwargs": {"fn": d}}]},
    "nested_list": lambda d: {"config": {"layers": [[[d]]]}},
}


@pytest.mark.parametrize("spot", sorted(_SPOTS))
@pytest.mark.parametrize(
    ("entry", "api"),
    [
        ({"module": "keras.utils", "class_name": "get_file", "config": {}}, "keras.utils.get_file"),
        ({"module": "keras.src.utils.file_utils", "class_name": "get_file", "config": {}}, "file_utils.get_file"),
        (
            {"module": "keras.config", "class_name": "enable_unsafe_deserialization", "config": {}},
            "enable_unsafe_deserialization",
        ),
        ({"module": "keras.models", "class_name": "load_model", "config": {}}, "keras.models.load_model"),
        ({"module": "keras.src.saving", "class_name": "Anything", "config": {}}, "keras.src.saving"),
        (
            {"module": "acme", "class_name": "Thing", "config": {}, "registered_name": "keras.utils.get_file"},
            "keras.utils.get_file",
        ),
        ({"module": "keras", "class_name": "save_weights", "config": {}}, "save_weights"),
    ],
)
def test_non_modelling_entries_in_every_json_location(spot: str, entry: dict, api: str) -> None:
    result = walk_config(_SPOTS[spot](entry), "config.json")
    hits = [f for f in result.findings if f.rule == "MLG-KER-003"]
    assert len(hits) == 1 and hits[0].severity.label == "critical" and api in hits[0].message


@pytest.mark.parametrize(
    "entry",
    [
        {"module": "keras.layers", "class_name": "Dense", "config": {"name": "d"}},
        {"module": "keras.models", "class_name": "Sequential", "config": {"name": "s"}},
        {"module": "keras", "class_name": "Functional", "config": {"name": "f"}},
        {"module": "keras.optimizers", "class_name": "Adam", "config": {}},
        {
            "module": "keras_hub.src.models.gemma.gemma_backbone",
            "class_name": "GemmaBackbone",
            "registered_name": "keras_hub>GemmaBackbone",
            "config": {},
        },  # fmt: skip
        {"module": "builtins", "class_name": "function", "config": "relu", "registered_name": "function"},
        {"module": "keras.activations", "class_name": "function", "config": "gelu", "registered_name": None},
    ],
)
def test_modelling_entries_stay_clean(entry: dict) -> None:
    for spot in _SPOTS.values():
        assert walk_config(spot(entry), "config.json").findings == []


@pytest.mark.parametrize(("name", "severity"), [("my_fn", "high"), ("acme>my_fn", "high"), ("popen", "critical")])
def test_builtins_function_names_keras_does_not_map(name: str, severity: str) -> None:
    entry = {"module": "builtins", "class_name": "function", "config": name, "registered_name": "function"}
    findings = walk_config({"class_name": "Lambda", "config": {"name": "l", "function": entry}}, "c").findings
    assert [(f.rule, f.severity.label) for f in findings] == [("MLG-KER-013", severity)]


# --- SavedModel: ops taking a file name, pattern or URL (item 7) --------------------------------------------
@pytest.mark.parametrize(
    ("name", "rule", "location", "severity", "text"),
    [
        (
            "parity_tf1_table_const",
            "MLG-TF-001",
            "graph_def/text_file_init/InitializeTableFromTextFileV2",
            "critical",
            "'/etc/passwd'",
        ),
        (
            "parity_tf1_table_url",
            "MLG-TF-001",
            "graph_def/text_file_init/InitializeTableFromTextFileV2",
            "critical",
            "gs://",
        ),
        ("parity_sampler_vocab_file", "MLG-TF-001", "FixedUnigramCandidateSampler", "critical", "'/etc/passwd'"),
    ],
)
def test_savedmodel_path_ops_with_constant_paths(name: str, rule: str, location: str, severity: str, text: str) -> None:
    result = scan("savedmodel", name)
    hits = [f for f in result.findings if f.rule == rule and f.location.endswith(location)]
    assert len(hits) == 1 and hits[0].severity.label == severity and text in hits[0].message
    assert _verdict("savedmodel", name) is Verdict.QUARANTINED


def test_tf1_table_fed_from_its_asset_is_approved() -> None:
    """TF1 builders list assets in the saved_model_assets collection; the loader feeds the Const."""
    assert (FIXTURES / "savedmodel" / "parity_tf1_table_asset" / "assets" / "vocab.txt").is_file()
    result = scan("savedmodel", "parity_tf1_table_asset")
    assert result.findings == [] and result.complete
    assert _verdict("savedmodel", "parity_tf1_table_asset") is Verdict.APPROVED


def test_every_registered_path_op_is_in_the_catalogue() -> None:
    """Each TF op whose arguments name a file, pattern or address (from TF 2.21's registry) is catalogued."""
    from mlgate.analyzers.savedmodel.ops import CATALOGUE, registered_ops

    path_ops = {
        "ReadFile", "WriteFile", "MatchingFiles", "InitializeTableFromTextFile", "InitializeTableFromTextFileV2",
        "FixedUnigramCandidateSampler", "Skipgram", "DumpTensor", "CalibrationStatisticsSaver", "DTensorRestoreV2",
        "RpcClient", "RpcServer", "LoadAndRemapMatrix", "GenerateVocabRemapping", "TextLineDataset",
        "TFRecordDataset", "FixedLengthRecordDataset", "CSVDataset", "LMDBDataset", "CreateSummaryDbWriter",
        "CreateSummaryFileWriter", "DatasetToTFRecord", "SaveDataset", "LoadDataset", "CacheDataset",
        "DataServiceDataset", "RegisterDataset", "DistributedSave", "RecordInput", "PrintV2", "DebugIdentity",
    }  # fmt: skip
    assert path_ops <= registered_ops()
    assert path_ops <= set(CATALOGUE)
