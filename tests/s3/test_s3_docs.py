"""docs/s3.md documents every bucket setting; the example bucket policy enforces the verdict tag mlgate writes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from mlgate.analyzers.core.policy import Verdict
from mlgate.controller.config.buckets import BucketConfig
from mlgate.controller.verdicts.tags import VERDICT

ROOT = Path(__file__).resolve().parents[2]


def test_every_bucket_setting_is_documented():
    doc = (ROOT / "docs" / "s3.md").read_text()
    missing = [f.name for f in dataclasses.fields(BucketConfig) if f"`{f.name}`" not in doc]
    assert not missing, f"docs/s3.md does not describe: {missing}"


def test_the_example_bucket_policy_denies_reads_of_anything_not_approved():
    policy = json.loads((ROOT / "examples" / "s3-bucket-policy.json").read_text())
    statements = policy["Statement"]
    assert all(s["Effect"] == "Deny" for s in statements)
    reads = next(s for s in statements if "s3:GetObject" in s["Action"])
    assert reads["Condition"]["StringNotEquals"] == {f"s3:ExistingObjectTag/{VERDICT}": Verdict.APPROVED.value}
    tagging = next(s for s in statements if "s3:PutObjectTagging" in s["Action"])
    assert {"s3:PutObjectVersionTagging", "s3:DeleteObjectTagging"} <= set(tagging["Action"])
    uploads = next(s for s in statements if s["Action"] == ["s3:PutObject"])
    assert uploads["Condition"]["ForAnyValue:StringLike"] == {"s3:RequestObjectTagKeys": "mlgate.*"}
    for statement in statements:  # the controller itself is exempt (it must read unscanned objects)
        assert statement["Condition"]["ArnNotEquals"]["aws:PrincipalArn"].endswith(":role/mlgate-controller")
