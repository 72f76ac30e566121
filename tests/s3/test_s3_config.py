"""Bucket settings: typed, validated, one clear line per mistake; read through the controller configuration."""

from __future__ import annotations

import pytest

from mlgate.controller.config.buckets import DEFAULT_MARKERS, BucketConfig, QuarantineMode
from mlgate.controller.config.settings import ConfigError, load_config

QUEUE = "https://sqs.eu-west-1.amazonaws.com/123456789012/mlgate-events"


def test_a_full_bucket_section_from_yaml(tmp_path):
    path = tmp_path / "controller.yaml"
    path.write_text(f"""
buckets:
  - bucket: ml-models
    prefixes: [teams/, shared/]
    queue_url: {QUEUE}
    quarantine: move
    quarantine_bucket: ml-quarantine
    model_markers: [MLmodel, config.json]
  - bucket: ml-archive
""")
    config = load_config(path, environ={})
    first, second = config.buckets
    assert first == BucketConfig(
        bucket="ml-models",
        prefixes=("teams/", "shared/"),
        queue_url=QUEUE,
        quarantine=QuarantineMode.MOVE,
        quarantine_bucket="ml-quarantine",
        model_markers=("MLmodel", "config.json"),
    )
    assert second.prefixes == ("",) and second.quarantine is QuarantineMode.TAG
    assert second.model_markers == DEFAULT_MARKERS


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"prefixes": ["a/"]}, "buckets[0].bucket: required"),
        ({"bucket": "Models_1"}, "buckets[0].bucket: not a valid S3 bucket name: 'Models_1'"),
        (
            {"bucket": "ml-models", "quarantine": "delete"},
            "buckets[0].quarantine: expected one of tag, move, legal-hold, got 'delete'",
        ),
        (
            {"bucket": "ml-models", "prefixes": ["teams/", "teams/a/"]},
            "buckets[0].prefixes: 'teams/a/' is inside 'teams/'; list only the outer one",
        ),
        ({"bucket": "ml-models", "prefixes": ["/teams/"]}, "buckets[0].prefixes: S3 keys do not start with '/'"),
        ({"bucket": "ml-models", "prefixes": 3}, "buckets[0].prefixes: expected a list of text, got 3"),
        ({"bucket": "ml-models", "queue_url": "mlgate-events"}, "buckets[0].queue_url: expected an SQS queue URL"),
        (
            {"bucket": "ml-models", "quarantine_bucket": "ml-q"},
            "buckets[0].quarantine_bucket: only used with quarantine: move (mode is tag)",
        ),
        (
            {"bucket": "ml-models", "quarantine": "move", "quarantine_prefix": ""},
            "buckets[0].quarantine_prefix: required when quarantined objects stay in the watched bucket",
        ),
        (
            {"bucket": "ml-models", "quarantine": "move", "prefixes": ["quarantine/x/"]},
            "buckets[0].prefixes: 'quarantine/x/' is inside the controller's own prefix 'quarantine/'",
        ),
        (
            {"bucket": "ml-models", "model_markers": ["sub/config.json"]},
            "buckets[0].model_markers: expected file names without '/'",
        ),
        ({"bucket": "ml-models", "max_messages": 20}, "buckets[0].max_messages: expected 1..10 (SQS maximum), got 20"),
        ({"bucket": "ml-models", "wait_time_seconds": 30}, "buckets[0].wait_time_seconds: expected 0..20"),
        (
            {"bucket": "ml-models", "visibility_timeout_seconds": 0},
            "buckets[0].visibility_timeout_seconds: must be greater than 0, got 0",
        ),
        ({"bucket": "ml-models", "claim_ttl_seconds": "soon"}, "buckets[0].claim_ttl_seconds: expected a number"),
        ({"bucket": "ml-models", "polling": True}, "buckets[0].polling: unknown setting (allowed: bucket, "),
    ],
)
def test_each_mistake_is_one_clear_line(tmp_path, entry, message):
    import yaml

    path = tmp_path / "controller.yaml"
    path.write_text(yaml.safe_dump({"buckets": [entry]}))
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith(f"{path}: {message}"), text


def test_constructed_in_code_it_validates_too():
    with pytest.raises(ConfigError, match="max_messages: expected 1..10"):
        BucketConfig(bucket="ml-models", max_messages=0 + 11)
    cfg = BucketConfig(bucket="ml-models", quarantine=QuarantineMode.MOVE)
    assert cfg.watches("quarantine/ml-models/x.pkl") is None  # in-bucket quarantine is never watched
    assert cfg.watches(".mlgate/claims/abc") is None
    assert cfg.watches("teams/a.pkl") == ""
    elsewhere = BucketConfig(bucket="ml-models", claims_bucket="ml-claims")
    assert elsewhere.watches(".mlgate/claims/abc") == ""  # claims live in another bucket
