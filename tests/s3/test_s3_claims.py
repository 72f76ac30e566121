"""Scan claims on real conditional writes: one holder at a time, abandoned claims taken over, no litter."""

from __future__ import annotations

import pytest

from mlgate.controller.s3.claims import Claims

pytestmark = pytest.mark.integration  # a real moto server on loopback

URI = "s3://models/team/bert/"


def test_one_holder_at_a_time(s3, bucket):
    first = Claims(s3, bucket, ".mlgate/claims/", ttl_seconds=600, owner="replica-1")
    second = Claims(s3, bucket, ".mlgate/claims/", ttl_seconds=600, owner="replica-2")
    claim = first.acquire(URI)
    assert claim is not None
    assert second.acquire(URI) is None
    assert second.acquire("s3://models/team/other/") is not None  # claims are per model
    first.release(claim)
    assert second.acquire(URI) is not None


def test_an_abandoned_claim_is_taken_over(s3, bucket):
    dead = Claims(s3, bucket, ".mlgate/claims/", ttl_seconds=600, owner="crashed")
    assert dead.acquire(URI) is not None
    survivor = Claims(s3, bucket, ".mlgate/claims/", ttl_seconds=0.0, owner="survivor")
    claim = survivor.acquire(URI)
    assert claim is not None
    body = s3.get_object(Bucket=bucket, Key=claim.key)["Body"].read()
    assert b'"survivor"' in body


def test_releasing_never_deletes_another_holders_claim(s3, bucket):
    old = Claims(s3, bucket, ".mlgate/claims/", ttl_seconds=600, owner="old")
    stale = old.acquire(URI)
    new = Claims(s3, bucket, ".mlgate/claims/", ttl_seconds=0.0, owner="new")
    current = new.acquire(URI)
    old.release(stale)  # the slow old holder finishing late
    assert s3.get_object(Bucket=bucket, Key=current.key)["Body"].read().count(b'"new"') == 1


def test_claims_leave_no_versions_behind(s3, versioned_bucket):
    claims = Claims(s3, versioned_bucket, ".mlgate/claims/", ttl_seconds=600)
    for _ in range(3):
        claims.release(claims.acquire(URI))
    listing = s3.list_object_versions(Bucket=versioned_bucket, Prefix=".mlgate/")
    assert listing.get("Versions", []) == [] and listing.get("DeleteMarkers", []) == []
