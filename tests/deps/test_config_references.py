"""Reference extraction from model configs: what each loader fetches or imports, and the findings it earns.

Expectations come from the loaders' behaviour (docs/rules.md, Configs and dependencies): PEFT loads
``base_model_name_or_path`` at ``revision``; transformers imports ``auto_map``
modules (``org/repo--module.Class`` from another repo); sentence-transformers
imports non-library module types and refuses paths outside the model; diffusers
imports component libraries; Hydra instantiates ``_target_``; MLflow imports
``loader_module`` and installs requirements.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from mlgate.analyzers.core.references import RefKind
from mlgate.analyzers.core.walker import scan_path


def scan_files(root: Path, files: dict[str, str | dict | list]):
    root.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    return scan_path(root)


def rules(scan) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in scan.findings:
        out.setdefault(f.rule, []).append(f.location)
    return out


def by_rule(scan, rule: str):
    return [f for f in scan.findings if f.rule == rule]


# --- PEFT -----------------------------------------------------------------------------------


def test_peft_base_model_is_a_pinned_hub_reference(tmp_path):
    commit = "a" * 40
    scan = scan_files(
        tmp_path / "m",
        {"adapter_config.json": {"peft_type": "LORA", "base_model_name_or_path": "acme/base", "revision": commit}},
    )
    (ref,) = scan.references
    assert (ref.kind, ref.ref, ref.revision, ref.field) == (RefKind.HF, "acme/base", commit, "base_model_name_or_path")
    assert ref.location == "adapter_config.json#base_model_name_or_path"
    assert scan.findings == []


@pytest.mark.parametrize("revision", [None, "main", "v1.0"])
def test_unpinned_base_model_is_low(tmp_path, revision):
    scan = scan_files(
        tmp_path / "m",
        {"adapter_config.json": {"peft_type": "LORA", "base_model_name_or_path": "acme/base", "revision": revision}},
    )
    (finding,) = scan.findings
    assert (finding.rule, finding.severity.label) == ("MLG-DEP-001", "low")
    assert "acme/base" in finding.message


@pytest.mark.parametrize(
    ("library", "rule", "severity"),
    [
        ("transformers.models.bert.modeling_bert", None, None),
        ("diffusers", None, None),
        ("mypkg.models", "MLG-DEP-006", "high"),
        ("os", "MLG-DEP-006", "critical"),
        ("transformersx", "MLG-DEP-006", "high"),
    ],
)
def test_peft_auto_mapping_parent_library_follows_peft_allowlist(tmp_path, library, rule, severity):
    scan = scan_files(
        tmp_path / "m",
        {
            "adapter_config.json": {
                "peft_type": "LORA",
                "base_model_name_or_path": "acme/base",
                "revision": "b" * 40,
                "auto_mapping": {"base_model_class": "X", "parent_library": library},
            }
        },
    )
    found = [(f.rule, f.severity.label) for f in scan.findings]
    assert found == ([] if rule is None else [(rule, severity)])


def test_prompt_tuning_tokenizer_is_a_dependency_only_when_loaded(tmp_path):
    config = {
        "peft_type": "PROMPT_TUNING",
        "base_model_name_or_path": "acme/base",
        "revision": "c" * 40,
        "prompt_tuning_init": "TEXT",
        "tokenizer_name_or_path": "acme/tok",
    }
    scan = scan_files(tmp_path / "a", {"adapter_config.json": config})
    assert {(r.ref, r.field) for r in scan.references} == {
        ("acme/base", "base_model_name_or_path"),
        ("acme/tok", "tokenizer_name_or_path"),
    }
    config["prompt_tuning_init"] = "RANDOM"
    scan = scan_files(tmp_path / "b", {"adapter_config.json": config})
    assert [r.ref for r in scan.references] == ["acme/base"]


# --- transformers ---------------------------------------------------------------------------


def test_auto_map_local_and_cross_repo_code(tmp_path):
    scan = scan_files(
        tmp_path / "m",
        {
            "config.json": {
                "model_type": "x",
                "auto_map": {"AutoConfig": "configuration_x.XConfig", "AutoModel": "other/repo--modeling_y.YModel"},
            }
        },
    )
    refs = {(r.kind, r.ref, r.location) for r in scan.references}
    assert refs == {
        (RefKind.CODE, "configuration_x.py", "config.json#auto_map.AutoConfig"),
        (RefKind.HF, "other/repo", "config.json#auto_map.AutoModel"),
    }
    assert sorted(rules(scan)) == ["MLG-CODE-010", "MLG-DEP-001"]  # remote code twice, other/repo unpinned
    assert all(f.severity.label == "medium" for f in by_rule(scan, "MLG-CODE-010"))


def test_tokenizer_auto_map_pair_and_processor_auto_map(tmp_path):
    scan = scan_files(
        tmp_path / "m",
        {
            "tokenizer_config.json": {"auto_map": {"AutoTokenizer": ["tokenization_x.XTok", None]}},
            "preprocessor_config.json": {"auto_map": {"AutoImageProcessor": "image_processing_x.XProc"}},
        },
    )
    assert sorted((r.ref, r.location) for r in scan.references) == [
        ("image_processing_x.py", "preprocessor_config.json#auto_map.AutoImageProcessor"),
        ("tokenization_x.py", "tokenizer_config.json#auto_map.AutoTokenizer[0]"),
    ]


def test_custom_pipelines_are_code(tmp_path):
    scan = scan_files(
        tmp_path / "m",
        {"config.json": {"custom_pipelines": {"text-x": {"impl": "pipe_x.XPipeline", "pt": ["AutoModel"]}}}},
    )
    (ref,) = scan.references
    assert (ref.kind, ref.ref, ref.field) == (RefKind.CODE, "pipe_x.py", "impl")


def test_nested_name_or_path_is_provenance_only(tmp_path):
    scan = scan_files(
        tmp_path / "m",
        {"config.json": {"_name_or_path": "/home/alice/ckpt", "text_config": {"_name_or_path": "acme/text"}}},
    )
    assert scan.references == []
    assert sorted(rules(scan)["MLG-DEP-011"]) == ["config.json#_name_or_path", "config.json#text_config._name_or_path"]
    assert all(f.severity.label == "info" for f in scan.findings)


# --- sentence-transformers ------------------------------------------------------------------


def test_modules_json_paths_and_types(tmp_path):
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "../outside", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "/etc/st", "type": "sentence_transformers.models.Normalize"},
        {"idx": 3, "name": "3", "path": "3_Custom", "type": "custom_st.MyModule"},
        {"idx": 4, "name": "4", "path": "4_X", "type": "subprocess.Popen"},
        {"idx": 5, "name": "5", "path": "5_Y", "type": "somepkg.layers.Pool"},
    ]
    scan = scan_files(tmp_path / "m", {"modules.json": modules})
    found = {(f.rule, f.location, f.severity.label) for f in scan.findings}
    assert found == {
        ("MLG-DEP-003", "modules.json#[1].path", "high"),
        ("MLG-DEP-002", "modules.json#[2].path", "high"),
        ("MLG-CODE-010", "modules.json#[3].type", "medium"),
        ("MLG-DEP-006", "modules.json#[4].type", "critical"),
        ("MLG-DEP-006", "modules.json#[5].type", "high"),
    }
    assert [(r.kind, r.ref) for r in scan.references] == [(RefKind.CODE, "custom_st.py")]


# --- diffusers ------------------------------------------------------------------------------


def test_standard_diffusers_index_is_quiet(tmp_path):
    index = {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": "0.42.1",
        "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
        "scheduler": ["diffusers", "PNDMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "feature_extractor": [None, None],
    }
    scan = scan_files(tmp_path / "m", {"model_index.json": index})
    assert scan.findings == [] and scan.references == []


def test_diffusers_custom_pipeline_components_and_cross_repo(tmp_path):
    index = {
        "_class_name": ["pipeline_evil", "EvilPipeline"],
        "_diffusers_version": "0.42.1",
        "unet": ["my_unet", "MyUNet"],
        "vae": ["os", "system"],
        "text_encoder": [None, None, {"repo": "acme/te", "revision": "d" * 40, "subfolder": "text_encoder"}],
    }
    scan = scan_files(tmp_path / "m", {"model_index.json": index})
    assert {(r.kind, r.ref) for r in scan.references} == {
        (RefKind.CODE, "pipeline_evil.py"),
        (RefKind.CODE, "unet/my_unet.py"),
        (RefKind.HF, "acme/te"),
    }
    assert {(f.rule, f.location, f.severity.label) for f in scan.findings} == {
        ("MLG-CODE-010", "model_index.json#_class_name", "medium"),
        ("MLG-CODE-010", "model_index.json#unet[0]", "medium"),
        ("MLG-DEP-006", "model_index.json#vae[0]", "critical"),
    }


# --- Hydra / NeMo ---------------------------------------------------------------------------

NEMO_CONFIG = """\
target: nemo.collections.asr.models.EncDecCTCModel
nemo_version: 2.3.0
init_from_nemo_model: /mnt/shared/base.nemo
init_from_pretrained_model: nvidia/parakeet-tdt-0.6b-v2
encoder:
  _target_: nemo.collections.asr.modules.ConformerEncoder
optim:
  name: adamw
  sched:
    _target_: torch.optim.lr_scheduler.CosineAnnealingLR
callbacks:
  - _target_: {cb}
tokenizer:
  model: nemo:tokenizer.model
  vocab_file: ../../vocab.txt
"""


@pytest.mark.parametrize(
    ("callback", "expected"),
    [
        ("os.system", ("MLG-DEP-007", "critical")),
        ("acme_tools.LogCallback", ("MLG-DEP-007", "high")),
        ("pytorch_lightning.callbacks.ModelCheckpoint", None),
    ],
)
def test_nemo_config_targets_and_dependencies(tmp_path, callback, expected):
    scan = scan_files(tmp_path / "m", {"model_config.yaml": NEMO_CONFIG.format(cb=callback)})
    found = {(f.rule, f.location, f.severity.label) for f in scan.findings}
    base = {
        ("MLG-DEP-002", "model_config.yaml#init_from_nemo_model", "medium"),
        ("MLG-DEP-001", "model_config.yaml#init_from_pretrained_model", "low"),
        ("MLG-DEP-003", "model_config.yaml#tokenizer.vocab_file", "high"),
    }
    if expected:
        base.add((expected[0], "model_config.yaml#callbacks[0]._target_", expected[1]))
    assert found == base
    assert {(r.kind, r.ref) for r in scan.references} == {
        (RefKind.LOCAL, "/mnt/shared/base.nemo"),
        (RefKind.HF, "nvidia/parakeet-tdt-0.6b-v2"),
    }


def test_nemo_target_outside_nemo(tmp_path):
    scan = scan_files(tmp_path / "m", {"model_config.yaml": "target: builtins.exec\nnemo_version: 2.0\n"})
    (finding,) = scan.findings
    assert (finding.rule, finding.severity.label, finding.location) == (
        "MLG-DEP-007",
        "critical",
        "model_config.yaml#target",
    )


# --- MLflow ---------------------------------------------------------------------------------

MLMODEL = """\
flavors:
  python_function:
    loader_module: {loader}
    python_model: python_model.pkl
    artifacts:
      weights:
        path: ../../../secrets/key.pem
        uri: /tmp/key.pem
  pytorch:
    pickle_module_name: {pickle_module}
  transformers:
    source_model_name: acme/llm
    source_model_revision: {commit}
mlflow_version: 3.17.2
"""


def test_mlmodel_fields(tmp_path):
    text = MLMODEL.format(loader="acme_serving.loader", pickle_module="evil_pickle", commit="e" * 40)
    scan = scan_files(tmp_path / "m", {"MLmodel": text, "pickle_module_info.txt": "mlflow.pytorch.pickle_module\n"})
    found = {(f.rule, f.location, f.severity.label) for f in scan.findings}
    assert found == {
        ("MLG-DEP-006", "MLmodel#flavors.python_function.loader_module", "high"),
        ("MLG-CODE-011", "MLmodel#flavors.python_function.python_model", "high"),
        ("MLG-DEP-003", "MLmodel#flavors.python_function.artifacts.weights.path", "high"),
        ("MLG-DEP-006", "MLmodel#flavors.pytorch.pickle_module_name", "high"),
    }
    assert [(r.kind, r.ref, r.revision) for r in scan.references] == [(RefKind.HF, "acme/llm", "e" * 40)]


def test_mlmodel_loader_module_in_code_dir_is_code(tmp_path):
    text = "flavors:\n  python_function:\n    loader_module: pkg.loader\n    code: code\n"
    scan = scan_files(tmp_path / "m", {"MLmodel": text})
    assert sorted((r.kind.value, r.ref) for r in scan.references) == [("code", "code"), ("code", "code/pkg/loader.py")]
    assert {f.rule for f in scan.findings} == {"MLG-CODE-010"}


def test_mlmodel_model_files_must_stay_in_the_model(tmp_path):
    text = (
        "flavors:\n  sklearn:\n    pickled_model: ../../other/model.pkl\n"
        "  python_function:\n    model_path: model.pkl\n"
    )
    scan = scan_files(tmp_path / "m", {"MLmodel": text})
    assert [(f.rule, f.location) for f in scan.findings] == [("MLG-DEP-003", "MLmodel#flavors.sklearn.pickled_model")]


def test_pickle_module_info_outside_known_modules(tmp_path):
    scan = scan_files(tmp_path / "m", {"pickle_module_info.txt": "os\n"})
    (finding,) = scan.findings
    assert (finding.rule, finding.severity.label, finding.location) == (
        "MLG-DEP-006",
        "critical",
        "pickle_module_info.txt",
    )


def test_requirements_sources_and_pins(tmp_path):
    scan = scan_files(
        tmp_path / "m",
        {
            "requirements.txt": "mlflow==3.17.2\n--extra-index-url https://pypi.evil.example/simple\n"
            "acme-ops @ git+https://github.com/acme/ops\n-e ./vendor/pkg\nnumpy>=1.26\ntorch\n",
            "python_env.yaml": (
                "python: 3.11\nbuild_dependencies:\n- pip\n- wheel\ndependencies:\n- -r requirements.txt\n"
            ),
            "conda.yaml": "channels:\n- conda-forge\ndependencies:\n- python=3.11\n- pip:\n  - mlflow==3.17.2\n"
            "  - https://files.example/pkg.whl\nname: env\n",
        },
    )
    found = sorted((f.rule, f.location) for f in scan.findings if not f.rule.startswith("MLG-NET-"))
    assert ("MLG-NET-001", "conda.yaml@82") in {(f.rule, f.location) for f in scan.findings}  # where pip fetches
    assert found == [
        ("MLG-DEP-008", "conda.yaml#dependencies[1].pip[1]"),
        ("MLG-DEP-008", "requirements.txt:2"),
        ("MLG-DEP-008", "requirements.txt:3"),
        ("MLG-DEP-008", "requirements.txt:4"),
        ("MLG-DEP-009", "requirements.txt"),
    ]
    (unpinned,) = by_rule(scan, "MLG-DEP-009")
    assert "numpy" in unpinned.message and "torch" in unpinned.message and "mlflow" not in unpinned.message


# --- parsing like the loader ----------------------------------------------------------------


def test_duplicate_auto_map_reports_and_follows_the_last_value(tmp_path):
    text = (
        '{"model_type": "x", "auto_map": {"AutoModel": "modeling_ok.OkModel"},\n'
        ' "auto_map": {"AutoModel": "evil/code--modeling_evil.EvilModel"}}'
    )
    scan = scan_files(tmp_path / "m", {"config.json": text})
    dup = by_rule(scan, "MLG-DEP-005")
    assert [(f.location, f.severity.label) for f in dup] == [("config.json#auto_map", "high")]
    assert [(r.kind, r.ref) for r in scan.references] == [(RefKind.HF, "evil/code")]  # what Python loaders see


def test_harmless_duplicate_is_medium(tmp_path):
    scan = scan_files(tmp_path / "m", {"config.json": '{"hidden_size": 8, "hidden_size": 16}'})
    assert [(f.rule, f.severity.label) for f in scan.findings] == [("MLG-DEP-005", "medium")]


def test_yaml_python_tag_is_reported_not_constructed(tmp_path):
    scan = scan_files(
        tmp_path / "m",
        {"MLmodel": "flavors: {}\nx: !!python/object/apply:os.system ['touch /tmp/mlgate-canary/yaml-tag']\n"},
    )
    (finding,) = scan.findings
    assert (finding.rule, finding.severity.label, finding.location) == ("MLG-DEP-010", "high", "MLmodel:2")


def test_yaml_alias_bomb_around_a_target(tmp_path):
    """A billion-laughs tree hiding a Hydra target: reported once, without expanding the tree."""
    lines = ['a: &a [{_target_: os.system}, "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for prev, name in zip("abcdefg", "bcdefgh", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 10) + "]")
    started = time.monotonic()
    scan = scan_files(tmp_path / "m", {"conf.yaml": "\n".join(lines) + "\n"})
    assert time.monotonic() - started < 5
    assert [(f.rule, f.severity.label, f.location) for f in scan.findings] == [
        ("MLG-DEP-007", "critical", "conf.yaml#a[0]._target_")
    ]


def test_broken_json_config_is_incomplete(tmp_path):
    scan = scan_files(tmp_path / "m", {"config.json": '{"auto_map": {"AutoModel": "x.Y"},'})
    assert not scan.complete
    assert [f.rule for f in scan.findings] == ["MLG-CORE-003"]


# --- reference classification ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind", "rule", "severity"),
    [
        ("models:/base@champion", RefKind.MLFLOW, "MLG-DEP-001", "low"),
        ("models:/base/3", RefKind.MLFLOW, None, None),
        ("runs:/0123abc/model", RefKind.MLFLOW, None, None),
        ("s3://bucket/bases/bert", RefKind.S3, "MLG-DEP-001", "low"),
        ("http://models.example/base.bin", RefKind.URL, "MLG-DEP-004", "high"),
        ("gs://bucket/base", RefKind.URL, "MLG-DEP-004", "medium"),
        ("~/models/base", RefKind.LOCAL, "MLG-DEP-002", "medium"),
        ("C:\\models\\base", RefKind.LOCAL, "MLG-DEP-002", "medium"),
        ("./base", RefKind.LOCAL, None, None),
        ("../../base", RefKind.LOCAL, "MLG-DEP-003", "high"),
        ("gpt2", RefKind.HF, "MLG-DEP-001", "low"),
    ],
)
def test_reference_kinds(tmp_path, value, kind, rule, severity):
    scan = scan_files(tmp_path / "m", {"adapter_config.json": {"peft_type": "LORA", "base_model_name_or_path": value}})
    (ref,) = scan.references
    assert ref.kind is kind
    found = [(f.rule, f.severity.label) for f in scan.findings if not f.rule.startswith("MLG-NET-")]
    assert found == ([] if rule is None else [(rule, severity)])


def test_diffusers_component_configs_name_no_components(tmp_path):
    """A component's config has ``_class_name`` + ``_diffusers_version`` too, and lists of block classes.

    ``UNet2DConditionModel`` reads ``down_block_types`` as parameters; only ``model_index.json`` names
    components to import (issue 16: every Stable Diffusion UNet and VAE was reported as custom code).
    """
    unet = {
        "_class_name": "UNet2DConditionModel",
        "_diffusers_version": "0.35.2",
        "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
        "block_out_channels": [8, 16],
    }
    vae = {**unet, "_class_name": "AutoencoderKL", "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"]}
    index = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.35.2", "unet": ["my_unet", "MyUNet"]}
    scan = scan_files(tmp_path / "m", {"unet/config.json": unet, "vae/config.json": vae, "model_index.json": index})
    # The index's custom component is still reported; the component configs add nothing.
    assert {(f.rule, f.location) for f in scan.findings} == {("MLG-CODE-010", "model_index.json#unet[0]")}
    assert [(r.kind, r.ref) for r in scan.references] == [(RefKind.CODE, "unet/my_unet.py")]


def test_modular_diffusers_index_is_read_too(tmp_path):
    index = {
        "_class_name": "StableDiffusionXLModularPipeline",
        "_diffusers_version": "0.35.2",
        "unet": [None, None, {"repo": "acme/unet", "revision": "e" * 40, "subfolder": "unet"}],
        "vae": ["os", "system"],
    }
    scan = scan_files(tmp_path / "m", {"modular_model_index.json": index})
    assert {(r.kind, r.ref) for r in scan.references} == {(RefKind.HF, "acme/unet")}
    assert {(f.rule, f.severity.label) for f in scan.findings} == {("MLG-DEP-006", "critical")}
