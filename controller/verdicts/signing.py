"""Verdict signatures (docs/contracts.md §2): HMAC-SHA256 over name, version, digest and verdict.

A verdict tag without a valid signature counts as no verdict, so anyone who can
write tags still cannot approve a model.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path


def sign_verdict(key: bytes, name: str, version: str, digest: str, verdict: str) -> str:
    """Hex HMAC-SHA256 of the canonical verdict message."""
    message = "\n".join(("mlgate.v1", name, str(version), digest, verdict)).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def verify_verdict(key: bytes, name: str, version: str, digest: str, verdict: str, signature: str | None) -> bool:
    """True when ``signature`` is the valid signature of this verdict (constant-time compare)."""
    if not signature:
        return False
    return hmac.compare_digest(sign_verdict(key, name, version, digest, verdict), signature)


MIN_KEY_BYTES = 16


class SigningKeyError(ValueError):
    """The verdict key cannot be loaded (unreadable file, too short); one line for a person."""


def load_signing_key(inline: str | None = None, key_file: str | os.PathLike[str] | None = None) -> bytes | None:
    """The verdict key, the same way everywhere (controller, MLflow plugin, ``mlgate check``, admission server).

    ``inline`` (``MLGATE_SIGNING_KEY``) wins over ``key_file`` (``MLGATE_SIGNING_KEY_FILE``); surrounding
    whitespace is stripped; a key shorter than ``MIN_KEY_BYTES`` bytes is refused. None when neither is set.
    """
    if inline:
        key, where = inline.strip().encode(), "MLGATE_SIGNING_KEY"
    elif key_file:
        where = f"signing key file {key_file}"
        try:
            key = Path(key_file).read_bytes().strip()
        except OSError as exc:
            raise SigningKeyError(f"cannot read {where}: {exc.strerror or exc}") from None
    else:
        return None
    if len(key) < MIN_KEY_BYTES:
        raise SigningKeyError(f"{where}: key too short (at least {MIN_KEY_BYTES} bytes)")
    return key


def derive_controller_token(key: bytes) -> str:
    """Default controller token: HMAC of a fixed label under the signing key (the key itself never travels)."""
    return hmac.new(key, b"mlgate.controller-token.v1", hashlib.sha256).hexdigest()
