"""Sign a model folder in the OpenSSF model-signing format with an elliptic-curve private key.

The output verifies with the stock tool: ``model_signing verify key MODEL --public_key PUB
--signature SIG``. The signature file is written outside the model folder by the controller
(beside it), so signing never changes the model's own digest.
"""

from __future__ import annotations

from pathlib import Path


def sign_model(model: Path, private_key: Path, signature: Path) -> None:
    """Write ``signature`` over every file of ``model`` (a folder or one file); git metadata is ignored
    as the stock signer ignores it. Raises ``ValueError``/``OSError`` for an unusable key."""
    from model_signing import hashing, signing

    ignored = []
    if model.is_dir() and signature.resolve().is_relative_to(model.resolve()):
        ignored.append(signature.resolve().relative_to(model.resolve()))
    config = signing.Config().use_elliptic_key_signer(private_key=private_key)
    config.set_hashing_config(hashing.Config().set_ignored_paths(paths=ignored, ignore_git_paths=True))
    config.sign(model, signature)
