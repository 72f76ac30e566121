"""The gate's pieces without a server: reserved keys, listing tags, the plugin's decisions, start-up metrics."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from mlgate.controller.mlflow.artifact_listing import take_fingerprint
from mlgate.controller.mlflow.server_plugin import PromotionGate, location_key, overlaps, search_needles
from mlgate.controller.verdicts.gate import promotion_decision
from mlgate.controller.verdicts.listing import ListingEntry, decode_listing, encode_listing, fingerprint
from mlgate.controller.verdicts.signing import derive_controller_token, sign_verdict
from mlgate.controller.verdicts.tags import is_reserved

KEY = b"unit-test-signing-key-0123456789"


@pytest.mark.parametrize(
    "key",
    ["mlgate.verdict", "MLGATE.verdict", "Mlgate.Signature", "ＭＬＧＡＴＥ.x", "mlgatè.verdict", "mlgate.verdict "],
)
def test_reserved_keys_any_case_accent_or_width(key: str) -> None:
    assert is_reserved(key)


@pytest.mark.parametrize("key", ["team", "mlgate", "xmlgate.verdict", " mlgate.verdict", "mlgate_verdict"])
def test_ordinary_keys_are_not_reserved(key: str) -> None:
    assert not is_reserved(key)


def _approved_tags(name: str, version: str, listing: str | None) -> dict[str, str]:
    tags = {
        "mlgate.verdict": "approved",
        "mlgate.digest": "sha256:abc",
        "mlgate.signature": sign_verdict(KEY, name, version, "sha256:abc", "approved"),
    }
    if listing is not None:
        tags["mlgate.listing"] = encode_listing(KEY, name, version, "sha256:abc", listing)
    return tags


def test_listing_tag_is_bound_to_version_digest_and_key() -> None:
    fp = fingerprint("s3", [ListingEntry("model.pkl", 10, '"etag"@2026')])
    tag = encode_listing(KEY, "m", "1", "sha256:abc", fp)
    assert decode_listing(KEY, "m", "1", "sha256:abc", tag) == fp
    assert decode_listing(KEY, "m", "2", "sha256:abc", tag) is None
    assert decode_listing(KEY, "m", "1", "sha256:other", tag) is None
    assert decode_listing(b"another-key-0123456789", "m", "1", "sha256:abc", tag) is None
    other = fingerprint("s3", [ListingEntry("model.pkl", 10, '"etag2"@2026')])
    assert decode_listing(KEY, "m", "1", "sha256:abc", tag.replace(fp, other)) is None
    # A listing signature never verifies as a verdict signature.
    assert tag.rsplit(";", 1)[1] != sign_verdict(KEY, "m", "1", "sha256:abc", "approved")


def test_promotion_needs_an_unchanged_listing_when_one_can_be_taken(tmp_path) -> None:
    (tmp_path / "w.bin").write_bytes(b"1234")
    now = take_fingerprint(str(tmp_path))
    assert now.startswith("v1:file:")
    tags = _approved_tags("m", "1", now)
    assert promotion_decision(KEY, "m", "1", tags).allowed
    assert promotion_decision(
        KEY, "m", "1", tags, current_listing=lambda mode: take_fingerprint(str(tmp_path), mode)
    ).allowed
    (tmp_path / "w.bin").write_bytes(b"5678")  # same size, new content
    decision = promotion_decision(
        KEY, "m", "1", tags, current_listing=lambda mode: take_fingerprint(str(tmp_path), mode)
    )
    assert not decision.allowed and "artifacts changed since the scan" in decision.message
    legacy = promotion_decision(KEY, "m", "1", _approved_tags("m", "1", None), current_listing=lambda mode: now)
    assert not legacy.allowed and "no signed artifact listing" in legacy.message

    def broken(mode: str) -> str:
        raise OSError("store unreachable")

    failed = promotion_decision(KEY, "m", "1", tags, current_listing=broken)
    assert not failed.allowed and "store unreachable" in failed.message


def _msg(**fields) -> SimpleNamespace:
    fields.setdefault("tags", [])
    return SimpleNamespace(**fields)


def test_without_a_key_only_gated_actions_are_refused() -> None:
    gate = PromotionGate(None, None, lambda name, version: {})
    assert gate.check("createRegisteredModel", _msg(name="m"), None) is None
    assert gate.check("createModelVersion", _msg(name="m", source="/x"), None) is None
    assert gate.check("setModelVersionTag", _msg(name="m", version="1", key="team"), None) is None
    assert gate.check("transitionModelVersionStage", _msg(name="m", version="1", stage="archived"), None) is None
    assert "no verdict key" in gate.check("setRegisteredModelAlias", _msg(name="m", version="1", alias="a"), None)
    assert "no verdict key" in gate.check(
        "transitionModelVersionStage", _msg(name="m", version="1", stage="staging"), None
    )
    assert "reserved" in gate.check("setModelVersionTag", _msg(name="m", version="1", key="MLGATE.verdict"), None)
    # An explicit controller token still lets the controller write its tags.
    with_token = PromotionGate(None, "explicit-token", lambda name, version: {})
    assert (
        with_token.check("setModelVersionTag", _msg(name="m", version="1", key="mlgate.verdict"), "explicit-token")
        is None
    )


def test_stage_names_are_canonicalised_like_mlflow() -> None:
    gate = PromotionGate(KEY, None, lambda name, version: {"mlgate.verdict": "quarantined"})
    for stage in ("production", "PRODUCTION", "Staging", "sTaGiNg", "bogus"):
        assert gate.check("transitionModelVersionStage", _msg(name="m", version="1", stage=stage), None), stage
    for stage in ("none", "ARCHIVED", "Archived"):
        assert gate.check("transitionModelVersionStage", _msg(name="m", version="1", stage=stage), None) is None
    token = derive_controller_token(KEY)
    assert gate.check("deleteModelVersionTag", _msg(name="m", version="1", key="Mlgate.signature"), token) is None


def test_artifact_locations_overlap_above_at_and_below() -> None:
    version = location_key("mlflow-artifacts:/1/0123456789abcdef0123456789abcdef/artifacts/model")
    assert version == ("proxy", "1/0123456789abcdef0123456789abcdef/artifacts/model")
    same_via_http = location_key(
        "http://h:5000/api/2.0/mlflow-artifacts/artifacts/1/0123456789abcdef0123456789abcdef/artifacts/model/x"
    )
    assert overlaps(version, same_via_http)
    assert overlaps(version, ("proxy", "1/0123456789abcdef0123456789abcdef"))  # deleting the run's folder
    assert not overlaps(version, ("proxy", "1/0123456789abcdef0123456789abcdef/artifacts/model2/x"))
    assert not overlaps(version, ("s3://b", "1/0123456789abcdef0123456789abcdef/artifacts/model"))
    assert location_key("mlflow-artifacts:/1/../2/x") == ("proxy", "2/x")
    assert search_needles("1/0123456789abcdef0123456789abcdef/artifacts/model/x") == [
        "0123456789abcdef0123456789abcdef"
    ]
    assert search_needles("1/models/m-abc/artifacts") == ["m-abc"]


def test_metrics_exist_at_zero_from_start_up_and_created_series_are_off() -> None:
    from prometheus_client import generate_latest

    from mlgate.controller.runtime.metrics import REGISTRY, configure_metrics

    configure_metrics(["unit-src"], {"unit-events": ("malformed",)}, ["UnitKind"])
    text = generate_latest(REGISTRY).decode()
    for verdict in ("approved", "quarantined", "error"):
        assert f'mlgate_scans_total{{source="unit-src",verdict="{verdict}"}} 0.0' in text
    assert 'mlgate_promotions_blocked_total{source="unit-src"} 0.0' in text
    assert 'mlgate_events_rejected_total{reason="malformed",source="unit-events"} 0.0' in text
    assert 'mlgate_admission_requests_total{allowed="false",kind="UnitKind"} 0.0' in text
    assert "_created" not in text
    configure_metrics(created_series=True)
    try:
        assert "mlgate_scans_created" in generate_latest(REGISTRY).decode()
    finally:
        configure_metrics()
