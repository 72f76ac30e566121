"""Model grouping: which objects make one model, by listing and by single-key lookup (they must agree)."""

from __future__ import annotations

import pytest
from s3_helpers import client

from mlgate.controller.config.buckets import BucketConfig, QuarantineMode
from mlgate.controller.s3 import grouping as s3_models
from mlgate.controller.s3.grouping import discover, list_objects, resolve

pytestmark = pytest.mark.integration  # a real moto server on loopback

LAYOUT = {
    # Hugging Face repo with a nested sentence-transformers module: one model (outermost marker wins)
    "hf/bert/config.json": b"{}",
    "hf/bert/model.safetensors": b"w",
    "hf/bert/1_Pooling/config.json": b"{}",
    # MLflow model bundling a Hugging Face folder: one model
    "mlflow/m1/MLmodel": b"flavors: {}\n",
    "mlflow/m1/model.pkl": b"p",
    "mlflow/m1/artifacts/hf/config.json": b"{}",
    # SavedModel: variables belong to it
    "tf/sm/saved_model.pb": b"pb",
    "tf/sm/variables/variables.index": b"i",
    # no marker: each object is a model of its own
    "loose/a.pkl": b"a",
    "loose/deep/b.bin": b"b",
    # a folder placeholder (console "create folder") and the controller's own claims: never models
    "empty/": b"",
    ".mlgate/claims/abc": b"{}",
}

EXPECTED = {
    "hf/bert/": {"hf/bert/config.json", "hf/bert/model.safetensors", "hf/bert/1_Pooling/config.json"},
    "mlflow/m1/": {"mlflow/m1/MLmodel", "mlflow/m1/model.pkl", "mlflow/m1/artifacts/hf/config.json"},
    "tf/sm/": {"tf/sm/saved_model.pb", "tf/sm/variables/variables.index"},
    "loose/a.pkl": {"loose/a.pkl"},
    "loose/deep/b.bin": {"loose/deep/b.bin"},
}


def _upload(s3, bucket: str, layout: dict[str, bytes]) -> None:
    for key, body in layout.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)


def _as_sets(models) -> dict[str, set[str]]:
    return {m.root: {o.key for o in m.objects} for m in models}


def test_listing_groups_by_outermost_marker(s3, bucket):
    _upload(s3, bucket, LAYOUT)
    models = list(discover(s3, BucketConfig(bucket=bucket)))
    assert _as_sets(models) == EXPECTED
    bert = next(m for m in models if m.root == "hf/bert/")
    assert sorted(bert.name_of(o) for o in bert.objects) == [
        "1_Pooling/config.json",
        "config.json",
        "model.safetensors",
    ]
    single = next(m for m in models if m.root == "loose/deep/b.bin")
    assert [single.name_of(o) for o in single.objects] == ["b.bin"]


def test_a_key_resolves_to_the_model_the_listing_gives(s3, bucket):
    _upload(s3, bucket, LAYOUT)
    cfg = BucketConfig(bucket=bucket)
    listed = {m.root: m for m in discover(s3, cfg)}
    for root, keys in EXPECTED.items():
        for key in keys:
            model = resolve(s3, cfg, key)
            assert model is not None and model.root == root, key
            assert model == listed[root]
            assert model.digest() == listed[root].digest()
    assert resolve(s3, cfg, "empty/") is None
    assert resolve(s3, cfg, ".mlgate/claims/abc") is None
    assert resolve(s3, cfg, "loose/never-uploaded.bin") is None


def test_markers_above_the_watched_prefix_do_not_count(s3, bucket):
    _upload(s3, bucket, {"config.json": b"{}", "team/a.bin": b"a", "team/b.bin": b"b"})
    cfg = BucketConfig(bucket=bucket, prefixes=("team/",))
    assert _as_sets(discover(s3, cfg)) == {"team/a.bin": {"team/a.bin"}, "team/b.bin": {"team/b.bin"}}
    assert resolve(s3, cfg, "team/a.bin").root == "team/a.bin"
    assert resolve(s3, cfg, "config.json") is None  # outside the watched prefix


def test_marker_names_are_configurable(s3, bucket):
    _upload(s3, bucket, {"m/MODEL_CARD.md": b"# m", "m/w.bin": b"w", "n/config.json": b"{}", "n/w.bin": b"w"})
    cfg = BucketConfig(bucket=bucket, model_markers=("MODEL_CARD.md",))
    assert _as_sets(discover(s3, cfg)) == {
        "m/": {"m/MODEL_CARD.md", "m/w.bin"},
        "n/config.json": {"n/config.json"},
        "n/w.bin": {"n/w.bin"},
    }


def test_in_bucket_quarantine_prefix_is_not_scanned(s3, bucket):
    _upload(s3, bucket, {"quarantine/models/x.pkl": b"x", "models/y.pkl": b"y"})
    cfg = BucketConfig(bucket=bucket, quarantine=QuarantineMode.MOVE, quarantine_prefix="quarantine/")
    assert set(_as_sets(discover(s3, cfg))) == {"models/y.pkl"}


def test_listing_follows_pages(s3, moto_endpoint, bucket):
    keys = [f"many/{i:03d}.bin" for i in range(25)]
    _upload(s3, bucket, {k: b"x" for k in keys})
    listed = [o.key for o in list_objects(client("s3", moto_endpoint), bucket, "many/", page_size=4)]
    assert listed == keys


def test_a_folder_larger_than_a_page_is_probed_by_marker_name(s3, bucket, monkeypatch):
    monkeypatch.setattr(s3_models, "FOLDER_PAGE", 3)
    _upload(
        s3,
        bucket,
        {
            **{f"flat/{i}.bin": b"x" for i in range(6)},
            "flat/saved_model.pb": b"pb",
            "other/a.bin": b"a",
            "other/b.bin": b"b",
            "other/c.bin": b"c",
            "other/d.bin": b"d",
        },
    )
    cfg = BucketConfig(bucket=bucket)
    assert resolve(s3, cfg, "flat/3.bin").root == "flat/"
    assert resolve(s3, cfg, "other/d.bin").root == "other/d.bin"
