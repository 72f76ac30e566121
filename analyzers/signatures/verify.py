"""Verify a model folder against its OpenSSF signature (``model.sig``), offline.

Two questions, answered separately:

* **Integrity**: do the files present match the manifest inside the signature? The signed
  manifest is read from the bundle's DSSE payload and the folder is hashed the way
  ``model_signing`` hashes it (same serialization, same ignored paths, the signature file
  itself excluded). A changed, added or removed file is MLG-SIG-001 (critical), naming it.
  This is checked even when no signer is trusted, so tampering after signing is caught.
* **Trust**: does a trusted signer vouch for that manifest? Each configured public key,
  certificate chain and Sigstore identity (with an offline trust root) is tried. One that
  verifies records the signer; a bundle whose key hint names a trusted key but whose
  signature does not verify is MLG-SIG-002 (critical, tampered); a signature no trusted
  signer verifies is MLG-SIG-003 (high).

``verify_signature_digests`` answers the same questions for a model that is not a local folder
(MLflow artifacts read in place): the signature's bytes and each file's sha256, which the scan's
digest pass computed already, so verification reads nothing more (manifests by files with sha256,
the default of ``model_signing`` and what mlgate signs; ``in_place_supported`` says when).

Without a signature: MLG-SIG-004 (high) where the policy requires one, MLG-SIG-005 (info)
elsewhere. The cost is one full read of the model's bytes (hashing), which is why the check
runs only on models that carry a signature or where the policy asks for one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..core.findings import Finding, Rule, Severity
from ..core.policy import SignaturePolicy

MISMATCH = Rule("MLG-SIG-001", Severity.CRITICAL, "The model's files do not match its signature", "signatures")
INVALID = Rule("MLG-SIG-002", Severity.CRITICAL, "The model signature is malformed or forged", "signatures")
UNTRUSTED = Rule("MLG-SIG-003", Severity.HIGH, "The model is signed, but by no trusted signer", "signatures")
REQUIRED = Rule("MLG-SIG-004", Severity.HIGH, "The model is unsigned and the policy requires a signature", "signatures")
UNSIGNED = Rule("MLG-SIG-005", Severity.INFO, "The model carries no signature", "signatures")
VERIFIED = Rule("MLG-SIG-006", Severity.INFO, "The model signature verified", "signatures")
UNCHECKED = Rule("MLG-SIG-007", Severity.INFO, "Signed, but no trusted signer is configured", "signatures")
RULES = (MISMATCH, INVALID, UNTRUSTED, REQUIRED, UNSIGNED, VERIFIED, UNCHECKED)

GIT_PATHS = (".git", ".gitattributes", ".github", ".gitignore")  # model_signing ignores these by default


@dataclass
class SignatureCheck:
    """What the signature check found: findings, and the verified signer (None when nobody was verified)."""

    findings: list[Finding] = field(default_factory=list)
    signer: str | None = None
    signature_file: str | None = None


def verify_signature(target: Path, policy: SignaturePolicy) -> SignatureCheck:
    """Check ``target`` (a model folder) against ``<target>/<signature_file>`` under ``policy``."""
    name = policy.signature_file
    sig_path = target / name if target.is_dir() else target.with_name(name)
    if not sig_path.is_file():
        return unsigned(policy)
    check = SignatureCheck(signature_file=name)
    try:
        bundle, keyless = _read_bundle(sig_path)
        expected = _signed_manifest(bundle, keyless)
    except Exception as exc:  # noqa: BLE001 - any parse failure of an untrusted file is one finding
        check.findings.append(INVALID.finding(name, f"{name} cannot be read as a model-signing bundle: {_one(exc)}"))
        return check
    root = target if target.is_dir() else target.parent
    problems = _manifest_differences(root, sig_path, expected)
    return _judge(check, bundle, keyless, policy, problems)


def in_place_supported(signature: bytes) -> bool:
    """Whether ``verify_signature_digests`` can check this signature from per-file sha256 alone
    (a manifest by files hashed with sha256); False for anything else, including unreadable bundles
    that ``verify_signature`` reports itself."""
    try:
        args = dict(_signed_manifest(*_bundle_of(signature)).serialization_type)
    except Exception:  # noqa: BLE001 - unreadable: the caller's verification reports it
        return True
    return args.get("method") == "files" and args.get("hash_type") == "sha256"


def verify_signature_digests(
    signature: bytes, sha256_of: Mapping[str, Callable[[], str]], policy: SignaturePolicy
) -> SignatureCheck:
    """Check a model that is not a local folder: ``signature`` (the bytes of its signature file at the
    model root) against its files, ``sha256_of`` (relative path -> the file's sha256 hex, the signature
    file included), under ``policy``. Only manifests by files with sha256 (``in_place_supported``)."""
    name = policy.signature_file
    check = SignatureCheck(signature_file=name)
    try:
        bundle, keyless = _bundle_of(signature)
        expected = _signed_manifest(bundle, keyless)
    except Exception as exc:  # noqa: BLE001 - any parse failure of an untrusted file is one finding
        check.findings.append(INVALID.finding(name, f"{name} cannot be read as a model-signing bundle: {_one(exc)}"))
        return check
    args = dict(expected.serialization_type)
    if args.get("method") != "files" or args.get("hash_type") != "sha256":
        raise ValueError("only manifests by files with sha256 are checked in place")
    ignored = [PurePosixPath(p) for p in args.get("ignore_paths", ())]
    ignored += [PurePosixPath(p) for p in (name, *GIT_PATHS)]
    have = {
        rel: hasher()
        for rel, hasher in sorted(sha256_of.items())
        if not any(PurePosixPath(rel).is_relative_to(i) for i in ignored)
    }
    want = {str(rd.identifier): rd.digest.digest_hex for rd in expected.resource_descriptors()}
    return _judge(check, bundle, keyless, policy, _differences(have, want))


def _judge(
    check: SignatureCheck, bundle: Any, keyless: bool, policy: SignaturePolicy, problems: list[str]
) -> SignatureCheck:
    """Integrity problems found, then the trust question; the findings of both."""
    name = check.signature_file or policy.signature_file
    check.findings.extend(MISMATCH.finding(name, p) for p in problems)
    if not policy.has_trust:
        check.findings.append(
            UNCHECKED.finding(
                name,
                f"{name} is present but the policy trusts no signer ([signatures] trusted_public_keys, "
                "trusted_certificates or sigstore_identities), so only integrity was checked"
                + (" and it failed" if problems else " (the files match the signed manifest)"),
            )
        )
        if policy.require:
            check.findings.append(
                UNTRUSTED.finding(name, f"the policy requires a signature from a trusted signer; {name} is unverified")
            )
        return check
    signer, forged = _trusted_signer(bundle, keyless, policy)
    if signer is not None:
        check.signer = signer
        if not problems:
            check.findings.append(VERIFIED.finding(name, f"{name} verified: signed by {signer}, covering every file"))
    elif forged:
        check.findings.append(INVALID.finding(name, f"{name}: {forged}"))
    else:
        check.findings.append(
            UNTRUSTED.finding(
                name,
                f"{name} is signed by {_signer_hint(bundle, keyless)}, which no trusted signer in the policy verifies",
            )  # fmt: skip
        )
    return check


def unsigned(policy: SignaturePolicy) -> SignatureCheck:
    """The result for a model that carries no signature file: high where the policy requires a
    signature, info where the policy trusts signers but does not require one, and nothing at all
    under a policy that uses no signatures (the report's ``signature`` is null there)."""
    where = policy.signature_file
    if not policy.require and not policy.has_trust:
        return SignatureCheck()
    if policy.require:
        message = f"no {where} at the model root; the policy requires models signed by a trusted signer"
        return SignatureCheck([REQUIRED.finding(where, message)])
    return SignatureCheck([UNSIGNED.finding(where, f"no {where} at the model root: the model is not signed")])


def _read_bundle(path: Path) -> tuple[Any, bool]:
    """(bundle, keyless): a key/certificate bundle (protobuf form) or a Sigstore keyless bundle."""
    return _bundle_of(path.read_bytes())


class _Text:
    """What ``Signature.read`` needs of a path (``read_text``), over bytes already in memory."""

    def __init__(self, raw: bytes) -> None:
        self._raw = raw

    def read_text(self, encoding: str = "utf-8") -> str:
        return self._raw.decode(encoding)


def _bundle_of(raw: bytes) -> tuple[Any, bool]:
    import json

    from model_signing._signing import sign_sigstore, sign_sigstore_pb

    data = json.loads(raw)
    material = data.get("verificationMaterial", {}) if isinstance(data, dict) else {}
    if "publicKey" in material or "x509CertificateChain" in material:
        return sign_sigstore_pb.Signature.read(_Text(raw)), False  # type: ignore[arg-type]
    return sign_sigstore.Signature.read(_Text(raw)), True  # type: ignore[arg-type]


def _signed_manifest(signature: Any, keyless: bool) -> Any:
    """The manifest inside the bundle's DSSE payload, not yet trusted (integrity checks only)."""
    import json

    from model_signing._signing import signing

    envelope = signature.bundle._inner.dsse_envelope if keyless else signature.bundle.dsse_envelope
    payload = envelope.payload
    return signing.dsse_payload_to_manifest(json.loads(payload))


def _manifest_differences(root: Path, sig_path: Path, expected: Any) -> list[str]:
    """One line per file that differs between the folder and the signed manifest."""
    from model_signing import hashing

    args = dict(expected.serialization_type)
    ignored = [Path(p) for p in args.get("ignore_paths", ())]
    ignored.append(sig_path.relative_to(root) if sig_path.parent == root else Path(sig_path.name))
    config = hashing.Config()
    if args.get("method") == "shards":
        config.use_shard_serialization(
            hashing_algorithm=args["hash_type"], shard_size=args["shard_size"], allow_symlinks=args["allow_symlinks"]
        )
    else:
        config.use_file_serialization(hashing_algorithm=args["hash_type"], allow_symlinks=args["allow_symlinks"])
    config.set_ignored_paths(paths=ignored, ignore_git_paths=True)
    actual = config.hash(root)
    have = {str(rd.identifier): rd.digest.digest_hex for rd in actual.resource_descriptors()}
    want = {str(rd.identifier): rd.digest.digest_hex for rd in expected.resource_descriptors()}
    return _differences(have, want)


def _differences(have: Mapping[str, str], want: Mapping[str, str]) -> list[str]:
    """One line per file that differs between ``have`` and ``want`` (identifier -> digest hex)."""
    out = [
        f"{name}: present but not covered by the signature (added after signing)"
        for name in sorted(have.keys() - want.keys())
    ]
    out += [
        f"{name}: signed but missing from the model (removed after signing)"
        for name in sorted(want.keys() - have.keys())
    ]
    out += [
        f"{name}: content differs from the signed digest (changed after signing)"
        for name in sorted(have.keys() & want.keys())
        if have[name] != want[name]
    ]
    return out


def _trusted_signer(bundle: Any, keyless: bool, policy: SignaturePolicy) -> tuple[str | None, str]:
    """(who verified, why the signature is forged): a trusted signer's name, or the forgery reason, or neither."""
    from model_signing._signing import sign_certificate, sign_ec_key, sign_sigstore

    forged = ""
    if keyless:
        for ident in policy.sigstore_identities:
            verifier = sign_sigstore.Verifier(
                identity=ident.identity, oidc_issuer=ident.issuer, trust_config=policy.sigstore_trust_config
            )
            if _verifies(verifier, bundle):
                return f"sigstore identity {ident.identity} (issuer {ident.issuer})", ""
        return None, ""
    hint = bundle.bundle.verification_material.public_key.hint
    for key_path in policy.trusted_public_keys:
        if _verifies(sign_ec_key.Verifier(key_path), bundle):
            return f"public key {key_path.name} (sha256 {_key_hash(key_path)[:16]})", ""
        if hint and hint == _key_hash(key_path):
            forged = f"names the trusted key {key_path.name}, but its signature does not verify with it (forged)"
    if policy.trusted_certificates and bundle.bundle.verification_material.x509_certificate_chain.certificates:
        verifier = sign_certificate.Verifier(list(policy.trusted_certificates))
        if _verifies(verifier, bundle):
            return f"certificate chained to {', '.join(p.name for p in policy.trusted_certificates)}", ""
    return None, forged


def _verifies(verifier: Any, signature: Any) -> bool:
    try:
        verifier.verify(signature)
    except Exception:  # noqa: BLE001 - any verification failure means "not this signer"
        return False
    return True


def _key_hash(path: Path) -> str:
    """The key hint model_signing writes: sha256 of the PEM SubjectPublicKeyInfo."""
    import hashlib

    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_public_key(path.read_bytes())
    raw = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(raw).hexdigest()


def _signer_hint(bundle: Any, keyless: bool) -> str:
    if keyless:
        return "a Sigstore identity"
    material = bundle.bundle.verification_material
    if material.public_key.hint:
        return f"a key with hint sha256 {material.public_key.hint[:16]}"
    if material.x509_certificate_chain.certificates:
        return "a certificate chain"
    return "an unidentified key"


def _one(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
