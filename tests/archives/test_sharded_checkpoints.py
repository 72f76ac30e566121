"""Sharded checkpoints (docs/rules.md MLG-DEP-012/013): the index is checked against the model's files,
every shard is scanned, and no tensor bytes are read.

Fixtures: ``tests/fixtures/shards/`` (tiny GPT-2 saved by transformers with ``max_shard_size``, both
safetensors and ``.bin`` shards, plus copies with an edited index; ``build_fixtures.py`` made them).
"""

from __future__ import annotations

import json
import shutil
import struct
import sys
from pathlib import Path

import pytest

from archives.builders import findings_of, scan
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
    assert not result.complete
    assert scan_target(folder, Policy()).verdict is Verdict.QUARANTINED


@pytest.mark.parametrize(
    ("name", "index", "needle"),
    [
        ("escape-shard", BIN_INDEX, "climbs out of the model folder"),
        ("absolute-shard", ST_INDEX, "absolute path"),
        ("url-shard", ST_INDEX, "URL"),
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


def sparse_safetensors(path: Path, size: int) -> None:
    """A valid safetensors file of ``size`` bytes whose tensor data is a hole (sparse on disk)."""
    meta = {"__metadata__": {"format": "pt"}, "w": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}}
    head_len = -(-(len(json.dumps(meta)) + 32) // 8) * 8
    data = size - 8 - head_len
    data -= data % 4
    meta["w"] = {"dtype": "F32", "shape": [data // 4], "data_offsets": [0, data]}
    raw = json.dumps(meta).encode()
    raw += b" " * (head_len - len(raw))
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(raw)) + raw)
        out.truncate(8 + len(raw) + data)


def sparse_torch_zip(path: Path, size: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    try:
        from s3_ranged_reads import torch_zip
    finally:
        sys.path.pop(0)
    with open(path, "wb") as out:
        for segment in torch_zip(size, 16):
            if isinstance(segment, int):
                out.seek(segment, 1)
            else:
                out.write(segment)
        out.truncate(out.tell())


@pytest.mark.parametrize("kind", ["safetensors", "bin"])
def test_large_sharded_checkpoint_costs_its_headers(tmp_path: Path, kind: str) -> None:
    """Four 256 MiB shards (sparse) behind an index: approved reading well under 0.1% of the bytes."""
    size, count = 256 << 20, 4
    index_name = ST_INDEX if kind == "safetensors" else BIN_INDEX
    weight_map = {}
    for i in range(1, count + 1):
        shard = f"model-{i:05d}-of-{count:05d}.safetensors" if kind == "safetensors" else f"pytorch_model-{i:05d}.bin"
        (sparse_safetensors if kind == "safetensors" else sparse_torch_zip)(tmp_path / shard, size)
        weight_map[f"layer.{i}.weight"] = shard
    (tmp_path / index_name).write_text(json.dumps({"metadata": {"total_size": size * count}, "weight_map": weight_map}))
    result = scan(tmp_path, ScanOptions(compute_digest=False))
    assert result.complete and not [f for f in result.findings if f.severity >= Severity.MEDIUM], result.findings
    assert result.members >= count
    assert 0 < result.bytes_read < size * count // 1000, result.bytes_read
