"""Sharded checkpoints (docs/rules.md MLG-DEP-012/013): the index is checked against the model's files,
every shard is scanned, and no tensor bytes are read.

Fixtures: ``tests/fixtures/shards/`` (tiny GPT-2 saved by transformers with ``max_shard_size``, both
safetensors and ``.bin`` shards, plus copies with an edited index; ``build_fixtures.py`` made them).
``loader_behaviour.json`` records what transformers, diffusers and accelerate did with each kind of
``weight_map`` entry (``build_fixtures.py --probe`` ran them); ``test_scanner_agrees_with_the_loaders``
replays every recorded case against the scanner, so CI checks the rules against the real loaders
without installing them.
"""

from __future__ import annotations

import json
import ntpath
import posixpath
import shutil
from pathlib import Path

import pytest

from archives.builders import findings_of, scan, sparse_weights
from mlgate.analyzers.core.findings import Severity
from mlgate.analyzers.core.policy import Policy, Verdict
from mlgate.analyzers.core.walker import ScanOptions
from mlgate.controller.scanning import scan_target

SHARDS = Path(__file__).resolve().parents[1] / "fixtures" / "shards"
ST_INDEX, BIN_INDEX = "model.safetensors.index.json", "pytorch_model.bin.index.json"


def shard_names(folder: Path, index: str) -> list[str]:
    return sorted(set(json.loads((folder / index).read_text())["weight_map"].values()))


@pytest.mark.parametrize("name", ["clean-safetensors", "clean-bin", "nested"])
def test_checkpoints_saved_by_transformers_are_clean(name: str) -> None:
    report = scan_target(SHARDS / name, Policy())
    assert report.verdict is Verdict.APPROVED, report.findings
    assert report.scan_complete
    assert not [f for f in report.findings if f.severity >= Severity.MEDIUM], report.findings


def test_fixtures_are_real_sharded_checkpoints() -> None:
    for folder, index in (("clean-safetensors", ST_INDEX), ("clean-bin", BIN_INDEX)):
        shards = shard_names(SHARDS / folder, index)
        assert len(shards) >= 3
        assert all((SHARDS / folder / s).is_file() for s in shards)


def test_missing_shard_is_an_incomplete_finding() -> None:
    folder = SHARDS / "missing-shard"
    named = shard_names(folder, ST_INDEX)
    absent = [s for s in named if not (folder / s).exists()]
    assert len(absent) == 1
    result = scan(folder)
    found = findings_of(result, "MLG-DEP-012")
    assert len(found) == 1 and absent[0] in found[0].message
    assert found[0].location.startswith(ST_INDEX)
    assert found[0].severity is Severity.LOW and found[0].incomplete  # the loaders fail: nothing loads unscanned
    assert not result.complete
    assert scan_target(folder, Policy()).verdict is Verdict.QUARANTINED


@pytest.mark.parametrize(
    ("name", "index", "needle"),
    [
        ("escape-shard", BIN_INDEX, "climbs out of the model folder"),
        ("absolute-shard", ST_INDEX, "absolute path"),
    ],
)
def test_shard_outside_the_model_folder(name: str, index: str, needle: str) -> None:
    folder = SHARDS / name
    outside = [s for s in shard_names(folder, index) if not (folder / s).is_file()]
    assert len(outside) == 1
    result = scan(folder)
    found = findings_of(result, "MLG-DEP-013")
    assert len(found) == 1, result.findings
    assert outside[0] in found[0].message and needle in found[0].message
    assert found[0].severity is Severity.HIGH
    assert not findings_of(result, "MLG-DEP-012")  # outside is reported as outside, not as missing
    assert scan_target(folder, Policy()).verdict is Verdict.QUARANTINED


def test_url_shard_is_a_missing_file_not_a_fetch() -> None:
    """No loader fetches a URL named by an index: it opens ``<folder>/https:/host/...``, which the model lacks."""
    folder = SHARDS / "url-shard"
    url = next(s for s in shard_names(folder, ST_INDEX) if s.startswith("https://"))
    result = scan(folder)
    assert not findings_of(result, "MLG-DEP-013")
    found = findings_of(result, "MLG-DEP-012")
    assert len(found) == 1 and url in found[0].message and "not fetched" in found[0].message
    assert not result.complete


BEHAVIOUR = json.loads((SHARDS / "loader_behaviour.json").read_text())


def _climbs(path: str) -> bool:
    return path == ".." or path.startswith("../")


def _outside_on_windows(value: str) -> bool:
    """Where ``ntpath.join`` (a Windows loader's ``os.path.join``) takes ``value``: outside the model folder?"""
    drive, _ = ntpath.splitdrive(value)
    if drive or value.startswith(("\\", "/")):
        return True
    joined = ntpath.normpath(ntpath.join("model", value)).replace("\\", "/")
    return joined != "model" and not joined.startswith("model/")


def _shipped_on_windows(model: Path, value: str) -> bool:
    """Does a Windows loader (lexical ``..``, backslashes separate) open a file the model ships?"""
    joined = ntpath.normpath(ntpath.join("model", value)).replace("\\", "/")
    return joined.startswith("model/") and (model / joined.removeprefix("model/")).is_file()


def _plant(case: dict, root: Path) -> tuple[Path, str, str | None]:
    """The model folder of a recorded case, built as the probe built it: the first shard's entry set to the
    recorded value and its file put only where the probe put it. Returns (folder, value, shard)."""
    model = root / "model"
    shutil.copytree(SHARDS / case["fixture"], model)
    index_name = next(p.name for p in model.glob("*.index.json"))
    index = json.loads((model / index_name).read_text())
    shard = sorted(set(index["weight_map"].values()))[0]
    elsewhere = root / "elsewhere"

    def fill(text: str) -> str:
        return text.replace("{shard}", shard).replace("{abs}", str(elsewhere))

    original = (model / shard).read_bytes()
    (model / shard).unlink()
    if case["plant"] is not None:
        target = Path(fill(case["plant"])) if case["plant"].startswith("{abs}") else model / fill(case["plant"])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(original)
    value = fill(case["value"])
    index["weight_map"] = {k: (value if v == shard else v) for k, v in index["weight_map"].items()}
    if case["index"] != index_name:  # accelerate's flat form: the map alone, under another *.index.json name
        (model / index_name).unlink()
        index = index["weight_map"]
    (model / case["index"]).write_text(json.dumps(index))
    return model, value, shard


def test_loader_behaviour_was_recorded_for_every_kind_of_name() -> None:
    cases = {(c["case"], c["loader"]) for c in BEHAVIOUR["cases"]}
    for needed in ("plain", "missing", "parent", "absolute", "home", "url", "url-shipped", "empty", "flat-index"):
        assert any(case == needed for case, _ in cases), needed
    assert {loader for _, loader in cases} == {"transformers", "diffusers", "accelerate"}
    assert all(c["outcome"] in ("loaded", "error") for c in BEHAVIOUR["cases"])


@pytest.mark.parametrize("case", BEHAVIOUR["cases"], ids=lambda c: f"{c['loader']}-{c['case']}")
def test_scanner_agrees_with_the_loaders(tmp_path: Path, case: dict) -> None:
    """What the loader did decides what the scanner must say. Loaded from outside the model folder: MLG-DEP-013.
    Loaded from inside: no shard finding, the scan complete (the loaded file is a file of the model, scanned).
    Failed: the scan is incomplete (MLG-DEP-012 for a missing file, MLG-CORE-003 for a name that is no file),
    never approved, and MLG-DEP-013 only where a Windows loader's join leaves the folder (the probe ran on
    Linux, where a backslash is a plain character and ``sub/..`` needs ``sub`` to exist); where a Windows
    loader, which folds ``..`` by name, opens a file the model ships, that file is scanned and may pass."""
    model, value, _ = _plant(case, tmp_path)
    result = scan(model)
    outside = findings_of(result, "MLG-DEP-013")
    missing = findings_of(result, "MLG-DEP-012")
    if case["outcome"] == "loaded":
        plant = case["plant"]
        read_outside = plant.startswith("{abs}") or _climbs(posixpath.normpath(plant))
        if read_outside:
            assert len(outside) == 1 and repr(value) in outside[0].message, result.findings
            assert outside[0].severity is Severity.HIGH
            assert scan_target(model, Policy()).verdict is Verdict.QUARANTINED
        else:
            assert not outside and not missing, result.findings
            assert result.complete, result.findings
            assert scan_target(model, Policy()).verdict is Verdict.APPROVED
        return
    if _shipped_on_windows(model, value):
        assert not outside and not missing and result.complete, result.findings
        return
    assert scan_target(model, Policy()).verdict is Verdict.QUARANTINED
    if _outside_on_windows(value):
        assert len(outside) == 1 and "Windows" in outside[0].message, result.findings
        return
    assert not result.complete
    if case["error"] == "FileNotFoundError":
        assert not outside and len(missing) == 1 and repr(value) in missing[0].message, result.findings
    else:  # the name is the folder itself (IsADirectoryError)
        assert not outside and not missing
        assert any(f.rule == "MLG-CORE-003" for f in result.findings), result.findings


@pytest.mark.parametrize(
    "index_name",
    [
        "tf_model.h5.index.json",
        "flax_model.msgpack.index.json",
        "diffusion_pytorch_model.safetensors.index.json",
        "model.safetensors.index.fp16.json",
        "diffusion_pytorch_model.safetensors.index.fp16.json",
    ],
)
def test_every_index_name_the_loaders_read_is_checked(tmp_path: Path, index_name: str) -> None:
    """transformers' TF/Flax indexes, diffusers' and the variant names (``_add_variant`` puts the variant before
    ``.json``) carry the same ``weight_map``: a missing shard and a climbing one are found, and a malformed map
    makes the scan incomplete."""
    model = tmp_path / "m"
    shutil.copytree(SHARDS / "clean-safetensors", model)
    index = json.loads((model / ST_INDEX).read_text())
    (model / ST_INDEX).unlink()
    shards = sorted(set(index["weight_map"].values()))
    (model / shards[0]).unlink()
    index["weight_map"] = {k: ("../x.safetensors" if v == shards[1] else v) for k, v in index["weight_map"].items()}
    (model / index_name).write_text(json.dumps(index))
    result = scan(model)
    assert [f.location.split("#")[0] for f in findings_of(result, "MLG-DEP-012")] == [index_name]
    assert shards[0] in findings_of(result, "MLG-DEP-012")[0].message
    assert len(findings_of(result, "MLG-DEP-013")) == 1
    (model / index_name).write_text(json.dumps({"metadata": {}, "weight_map": shards}))
    broken = scan(model)
    assert not broken.complete
    assert any(f.rule == "MLG-CORE-003" and f.location.startswith(index_name) for f in broken.findings)


def test_flat_index_is_read_only_under_an_index_name(tmp_path: Path) -> None:
    """accelerate takes a folder's ``*.index.json`` without ``weight_map`` as the map itself; another JSON file
    that happens to map strings to strings is not an index."""
    (tmp_path / "labels.json").write_text(json.dumps({"0": "cat.safetensors", "1": "dog"}))
    assert not scan(tmp_path).findings
    (tmp_path / "checkpoint.index.json").write_text(json.dumps({"w": "model-00001.safetensors"}))
    found = findings_of(scan(tmp_path), "MLG-DEP-012")
    assert len(found) == 1 and "model-00001.safetensors" in found[0].message


def test_index_inside_a_subfolder_resolves_shards_beside_it(tmp_path: Path) -> None:
    model = tmp_path / "pipeline"
    shutil.copytree(SHARDS / "nested", model)
    unet = model / "unet"
    (unet / shard_names(unet, ST_INDEX)[0]).rename(model / shard_names(unet, ST_INDEX)[0])  # now beside, not in unet/
    found = findings_of(scan(model), "MLG-DEP-012")
    assert len(found) == 1 and found[0].location.startswith(f"unet/{ST_INDEX}")


@pytest.mark.parametrize(
    "weight_map",
    [
        {"a": "x.safetensors", "b": ["model-00001-of-00006.safetensors"]},
        ["model-00001-of-00006.safetensors"],
    ],
)
def test_malformed_index_is_incomplete(tmp_path: Path, weight_map: object) -> None:
    model = tmp_path / "m"
    shutil.copytree(SHARDS / "clean-safetensors", model)
    (model / ST_INDEX).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    result = scan(model)
    assert not result.complete
    assert any(f.rule == "MLG-CORE-003" and f.location.startswith(ST_INDEX) for f in result.findings), result.findings


def test_weight_map_field_of_another_config_is_not_an_index(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"weight_map": "balanced", "model_type": "x"}))
    result = scan(tmp_path)
    assert result.complete and not result.findings


@pytest.mark.parametrize(("folder", "index"), [("clean-safetensors", ST_INDEX), ("clean-bin", BIN_INDEX)])
def test_every_shard_present_is_scanned(tmp_path: Path, folder: str, index: str) -> None:
    """Break each shard in turn (cut it in half): the scan reports that shard, so each one is read."""
    for shard in shard_names(SHARDS / folder, index):
        model = tmp_path / shard
        shutil.copytree(SHARDS / folder, model)
        with open(model / shard, "r+b") as fh:
            fh.truncate((model / shard).stat().st_size // 2)
        result = scan(model)
        assert not result.complete, shard
        assert any(f.location.startswith(shard) for f in result.findings if f.incomplete), (shard, result.findings)


@pytest.mark.parametrize("kind", ["safetensors", "bin"])
def test_large_sharded_checkpoint_costs_its_headers(tmp_path: Path, kind: str) -> None:
    """Four 256 MiB shards (sparse) behind an index: approved reading well under 0.1% of the bytes."""
    size, count = 256 << 20, 4
    index_name = ST_INDEX if kind == "safetensors" else BIN_INDEX
    weight_map = {}
    for i in range(1, count + 1):
        shard = f"model-{i:05d}-of-{count:05d}.safetensors" if kind == "safetensors" else f"pytorch_model-{i:05d}.bin"
        sparse_weights(tmp_path / shard, "safetensors" if kind == "safetensors" else "torch", size)
        weight_map[f"layer.{i}.weight"] = shard
    (tmp_path / index_name).write_text(json.dumps({"metadata": {"total_size": size * count}, "weight_map": weight_map}))
    result = scan(tmp_path, ScanOptions(compute_digest=False))
    assert result.complete and not [f for f in result.findings if f.severity >= Severity.MEDIUM], result.findings
    assert result.members >= count
    assert 0 < result.bytes_read < size * count // 1000, result.bytes_read
