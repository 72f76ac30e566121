"""Verdict signatures (DESIGN 3.2): HMAC-SHA256 over name, version, digest and verdict.

A verdict tag without a valid signature counts as no verdict, so anyone who can
write tags still cannot approve a model.
"""

from __future__ import annotations

import hashlib
import hmac


def sign_verdict(key: bytes, name: str, version: str, digest: str, verdict: str) -> str:
    """Hex HMAC-SHA256 of the canonical verdict message."""
    message = "\n".join(("mlgate.v1", name, str(version), digest, verdict)).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def verify_verdict(key: bytes, name: str, version: str, digest: str, verdict: str, signature: str | None) -> bool:
    """True when ``signature`` is the valid signature of this verdict (constant-time compare)."""
    if not signature:
        return False
    return hmac.compare_digest(sign_verdict(key, name, version, digest, verdict), signature)
