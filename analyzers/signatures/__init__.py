"""OpenSSF model signatures (the ``model-signing`` format): verify before approval, sign what is approved.

``verify`` checks a model folder against its signature under the policy's ``[signatures]`` section
(docs/signatures.md); ``sign`` writes a signature in the same format with an elliptic-curve key.
Both read bytes only; the ``model_signing`` library is imported on first use.
"""

from .sign import sign_digests, sign_model
from .verify import RULES, SignatureCheck, in_place_supported, unsigned, verify_signature, verify_signature_digests

__all__ = [
    "RULES",
    "SignatureCheck",
    "in_place_supported",
    "sign_digests",
    "sign_model",
    "unsigned",
    "verify_signature",
    "verify_signature_digests",
]
