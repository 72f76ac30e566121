"""Sign a model folder in the OpenSSF model-signing format with an elliptic-curve private key.

The output verifies with the stock tool: ``model_signing verify key MODEL --public_key PUB
--signature SIG``. The signature file is written outside the model folder by the controller
(beside it), so signing never changes the model's own digest. ``sign_digests`` signs a model given
as its files' sha256 (read in place, never copied) with the same manifest.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePosixPath

_GIT_PATHS = (".git", ".gitattributes", ".github", ".gitignore")  # what the stock signer ignores by default


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


def sign_digests(sha256_of: Mapping[str, str], model_name: str, private_key: Path, signature: Path) -> None:
    """Write ``signature`` over a model given as each file's sha256 (relative path -> hex), for models
    that are not a local folder (MLflow artifacts read in place). The manifest is the one
    ``sign_model`` writes for the same files (by files, sha256, git metadata ignored), so the stock
    verifier checks it against a downloaded copy of the model."""
    from model_signing import manifest
    from model_signing._hashing import hashing
    from model_signing._signing import sign_ec_key, signing

    ignored = [PurePosixPath(p) for p in _GIT_PATHS]
    items = [
        manifest.FileManifestItem(path=PurePosixPath(rel), digest=hashing.Digest("sha256", bytes.fromhex(hex_)))
        for rel, hex_ in sorted(sha256_of.items())
        if not any(PurePosixPath(rel).is_relative_to(i) for i in ignored)
    ]
    serialization = manifest._FileSerialization("sha256", False, [Path(p) for p in _GIT_PATHS])
    payload = signing.Payload(manifest.Manifest(model_name, items, serialization))
    sign_ec_key.Signer(private_key).sign(payload).write(signature)
