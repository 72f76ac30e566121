"""Model signatures on S3 models (moto server): a signed model is verified from the bucket and its
signer tagged; an object changed after signing quarantines the model; a bucket's own [signatures]
override applies to it."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from s3_helpers import hf_config, make_source, reconcile, safetensors_file, tags

from mlgate.analyzers.core.policy import SignaturePolicy
from mlgate.controller.config.buckets import BucketConfig

pytestmark = pytest.mark.integration


def _signed_model(tmp_path):
    from model_signing import hashing, signing

    key = ec.generate_private_key(ec.SECP256R1())
    private, public = tmp_path / "k.pem", tmp_path / "k.pub.pem"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_bytes(hf_config())
    (model / "model.safetensors").write_bytes(safetensors_file())
    ignore = hashing.Config().set_ignored_paths(paths=["model.sig"])
    signing.Config().use_elliptic_key_signer(private_key=private).set_hashing_config(ignore).sign(
        model, model / "model.sig"
    )
    return model, public


def _upload(s3, bucket, model, prefix):
    for path in sorted(model.iterdir()):
        s3.put_object(Bucket=bucket, Key=f"{prefix}{path.name}", Body=path.read_bytes())


def test_a_signed_s3_model_is_verified_and_its_signer_tagged(s3, moto_endpoint, bucket, tmp_path):
    model, public = _signed_model(tmp_path)
    _upload(s3, bucket, model, "signed/bert/")
    cfg = BucketConfig(bucket=bucket, signatures=SignaturePolicy(require=True, trusted_public_keys=(public,)))
    reconcile(make_source(cfg, moto_endpoint))
    got = tags(s3, bucket, "signed/bert/model.safetensors")
    assert got["mlgate.verdict"] == "approved"
    assert public.name in got["mlgate.signer"]


def test_an_object_changed_after_signing_quarantines_the_model(s3, moto_endpoint, bucket, tmp_path):
    model, public = _signed_model(tmp_path)
    (model / "config.json").write_text('{"model_type": "bert", "changed": true}')
    _upload(s3, bucket, model, "tampered/bert/")
    cfg = BucketConfig(bucket=bucket, signatures=SignaturePolicy(trusted_public_keys=(public,)))
    reconcile(make_source(cfg, moto_endpoint))
    got = tags(s3, bucket, "tampered/bert/config.json")
    assert got["mlgate.verdict"] == "quarantined"
    assert "MLG-SIG-001" in got["mlgate.findings"]
