"""The scan policy: verdict thresholds, budgets and suppressions, loaded from TOML.

Default policy: quarantine on any high or critical finding, on an incomplete
scan, and on a quarantined or unresolvable dependency. A policy file can move
the threshold, relax the incomplete/unresolved rules, set budgets, and suppress
one rule for matching locations, always with a written reason::

    [verdict]
    quarantine_at = "high"            # info | low | medium | high | critical
    incomplete = "quarantine"         # or "approve"
    unresolved_dependencies = "quarantine"

    [budgets]
    max_seconds = 120

    [[suppress]]
    rule = "MLG-PKL-010"
    path = "legacy/*.pkl*"            # glob over finding locations
    reason = "reviewed by security, ticket SEC-123"

    [scan]
    digest = true                     # mlgate scan: fill the report's content digest (default: null)

    [signatures]                      # OpenSSF model signatures (docs/signatures.md)
    require = false
    signature_file = "model.sig"
    trusted_public_keys = ["keys/ml-team.pub.pem"]   # relative to the policy file
"""

from __future__ import annotations

import enum
import fnmatch
from dataclasses import dataclass, field, replace

from .budget import Budgets
from .findings import Finding, Severity
from .records import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from pathlib import Path  # loaded only to read a policy file (start-up of a scan, issue 19)
    from typing import Any


class Verdict(enum.Enum):
    APPROVED = "approved"
    QUARANTINED = "quarantined"


class PolicyError(Exception):
    """A policy file that cannot be used; the message is one line for a person."""


class Suppression(NamedTuple):
    """A reviewed finding: ``rule`` at locations matching the glob ``path``, kept with ``reason``."""

    rule: str
    path: str
    reason: str

    def matches(self, finding: Finding) -> bool:
        return finding.rule == self.rule and fnmatch.fnmatchcase(finding.location, self.path)


class SigstoreIdentity(NamedTuple):
    """A keyless signer the policy trusts: the certificate's identity and its OIDC issuer."""

    identity: str
    issuer: str


@dataclass(frozen=True)
class SignaturePolicy:
    """The ``[signatures]`` section: who may sign models, and whether a signature is required.

    Paths are absolute (a policy file's relative paths are resolved against its folder)."""

    require: bool = False
    signature_file: str = "model.sig"
    trusted_public_keys: tuple[Path, ...] = ()
    trusted_certificates: tuple[Path, ...] = ()
    sigstore_identities: tuple[SigstoreIdentity, ...] = ()
    sigstore_trust_config: Path | None = None  # a Sigstore trust root (ClientTrustConfig JSON), offline

    @property
    def has_trust(self) -> bool:
        """True when at least one signer is trusted (otherwise signatures are only checked for integrity)."""
        return bool(self.trusted_public_keys or self.trusted_certificates or self.sigstore_identities)


@dataclass(frozen=True)
class SecretsPolicy:
    """The ``[secrets]`` section: how found credentials count (docs/secrets.md)."""

    quarantine: bool = True  # false: secrets are reported but never decide the verdict
    severities: tuple[tuple[str, Severity], ...] = ()  # (rule id, severity) overrides
    allow: frozenset[str] = frozenset()  # fingerprints (sha256:...) of known, harmless values

    def apply(self, finding: Finding) -> Finding:
        if not finding.rule.startswith(("MLG-SEC-", "MLG-NET-")):
            return finding
        override = dict(self.severities).get(finding.rule)
        if override is not None:
            finding = replace(finding, severity=override)
        if finding.fingerprint is not None and finding.fingerprint in self.allow:
            return replace(finding, suppressed="value allowlisted in [secrets] allow")
        if not self.quarantine and finding.rule.startswith("MLG-SEC-"):
            return replace(finding, suppressed="[secrets] quarantine = false: reported, never decides the verdict")
        return finding


@dataclass(frozen=True)
class Policy:
    quarantine_at: Severity = Severity.HIGH
    quarantine_incomplete: bool = True
    quarantine_unresolved: bool = True
    budgets: Budgets = field(default_factory=Budgets)
    suppressions: tuple[Suppression, ...] = ()
    signatures: SignaturePolicy = field(default_factory=SignaturePolicy)
    secrets: SecretsPolicy = field(default_factory=SecretsPolicy)
    scan_digest: bool = False  # [scan] digest: `mlgate scan` hashes content for the report's digest

    def apply_suppressions(self, findings: list[Finding]) -> list[Finding]:
        """Findings with ``suppressed`` set where a suppression matches (they stay in the report)."""
        out = []
        for finding in map(self.secrets.apply, findings):
            if finding.suppressed is not None:
                out.append(finding)
                continue
            match = next((s for s in self.suppressions if s.matches(finding)), None)
            out.append(finding if match is None else replace(finding, suppressed=match.reason))
        return out

    def decide(self, findings: list[Finding], complete: bool, dependency_verdicts: list[Verdict | None]) -> Verdict:
        """The verdict for a target. ``None`` in ``dependency_verdicts`` means unresolved."""
        active = [f for f in findings if f.suppressed is None]
        if any(f.severity >= self.quarantine_at for f in active):
            return Verdict.QUARANTINED
        if self.quarantine_incomplete and (not complete or any(f.incomplete for f in active)):
            return Verdict.QUARANTINED
        if any(v is Verdict.QUARANTINED for v in dependency_verdicts):
            return Verdict.QUARANTINED
        if self.quarantine_unresolved and any(v is None for v in dependency_verdicts):
            return Verdict.QUARANTINED
        return Verdict.APPROVED


_CHOICES = {"quarantine": True, "approve": False}


def load_policy(path: str | Path | None) -> Policy:
    """The default policy, or the one in ``path``; raises ``PolicyError`` with a one-line reason."""
    if path is None:
        return Policy()
    from pathlib import Path

    from .compat import tomllib  # only a policy file needs the TOML parser

    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise PolicyError(f"cannot read policy file {path}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError(f"policy file {path} is not valid TOML: {exc}") from None
    return _parse(data, str(path), Path(path).resolve().parent)


def _parse(data: dict[str, Any], where: str, base: Path | None = None) -> Policy:
    _only_keys(data, {"verdict", "budgets", "suppress", "signatures", "secrets", "scan"}, where)
    policy = Policy()
    verdict = _table(data, "verdict", where)
    _only_keys(verdict, {"quarantine_at", "incomplete", "unresolved_dependencies"}, f"{where} [verdict]")
    if "quarantine_at" in verdict:
        try:
            policy = replace(policy, quarantine_at=Severity.parse(str(verdict["quarantine_at"])))
        except ValueError as exc:
            raise PolicyError(f"{where} [verdict] quarantine_at: {exc}") from None
    for key, attr in (("incomplete", "quarantine_incomplete"), ("unresolved_dependencies", "quarantine_unresolved")):
        if key in verdict:
            choice = verdict[key]
            if choice not in _CHOICES:
                raise PolicyError(f'{where} [verdict] {key}: expected "quarantine" or "approve", got {choice!r}')
            policy = replace(policy, **{attr: _CHOICES[choice]})
    budgets = _table(data, "budgets", where)
    _only_keys(budgets, set(Budgets.field_names()), f"{where} [budgets]")
    values = {}
    for key, value in budgets.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise PolicyError(f"{where} [budgets] {key}: expected a positive number, got {value!r}")
        values[key] = value
    policy = replace(policy, budgets=replace(Budgets(), **values))
    scan = _table(data, "scan", where)
    _only_keys(scan, {"digest"}, f"{where} [scan]")
    if "digest" in scan:
        if not isinstance(scan["digest"], bool):
            raise PolicyError(f"{where} [scan] digest: expected true or false, got {scan['digest']!r}")
        policy = replace(policy, scan_digest=scan["digest"])
    suppress = data.get("suppress", [])
    if not isinstance(suppress, list):
        raise PolicyError(f"{where}: suppress must be an array of tables ([[suppress]])")
    items = []
    for i, entry in enumerate(suppress, 1):
        label = f"{where} [[suppress]] #{i}"
        if not isinstance(entry, dict):
            raise PolicyError(f"{label}: expected a table")
        _only_keys(entry, {"rule", "path", "reason"}, label)
        for key in ("rule", "reason"):
            if not isinstance(entry.get(key), str) or not entry[key].strip():
                raise PolicyError(f"{label}: {key} is required and must be a non-empty string")
        items.append(Suppression(rule=entry["rule"], path=str(entry.get("path", "*")), reason=entry["reason"]))
    policy = replace(policy, suppressions=tuple(items))
    policy = replace(policy, secrets=_secrets(_table(data, "secrets", where), f"{where} [secrets]"))
    if base is None:
        from pathlib import Path

        base = Path.cwd()
    return replace(policy, signatures=parse_signatures(_table(data, "signatures", where), where, base))


def _secrets(table: dict[str, Any], label: str) -> SecretsPolicy:
    _only_keys(table, {"quarantine", "severity", "allow"}, label)
    quarantine = table.get("quarantine", True)
    if not isinstance(quarantine, bool):
        raise PolicyError(f"{label} quarantine: expected true or false, got {quarantine!r}")
    raw_severity = table.get("severity", {})
    if not isinstance(raw_severity, dict):
        raise PolicyError(f'{label} severity: expected a table like {{ "MLG-SEC-010" = "low" }}')
    severities = []
    for rule, value in raw_severity.items():
        if not str(rule).startswith(("MLG-SEC-", "MLG-NET-")):
            raise PolicyError(f"{label} severity: {rule!r} is not a secret or network rule id")
        try:
            severities.append((str(rule), Severity.parse(str(value))))
        except ValueError as exc:
            raise PolicyError(f"{label} severity {rule}: {exc}") from None
    allow = table.get("allow", [])
    if not isinstance(allow, list) or not all(isinstance(v, str) and v.startswith("sha256:") for v in allow):
        raise PolicyError(f'{label} allow: expected a list of fingerprints like "sha256:0123abcd..."')
    return SecretsPolicy(quarantine=quarantine, severities=tuple(severities), allow=frozenset(allow))


def parse_signatures(table: dict[str, Any], where: str, base: Path) -> SignaturePolicy:
    """A ``[signatures]`` table (from the policy file, or a source's override in the controller configuration)."""
    label = f"{where} [signatures]"
    _only_keys(
        table,
        {"require", "signature_file", "trusted_public_keys", "trusted_certificates", "sigstore_identities",
         "sigstore_trust_config"},
        label,
    )  # fmt: skip
    require = table.get("require", False)
    if not isinstance(require, bool):
        raise PolicyError(f"{label} require: expected true or false, got {require!r}")
    name = table.get("signature_file", "model.sig")
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name in (".", ".."):
        raise PolicyError(f"{label} signature_file: expected a file name at the model root, got {name!r}")

    def paths(key: str) -> tuple[Path, ...]:
        raw = table.get(key, [])
        if not isinstance(raw, list) or not all(isinstance(v, str) and v for v in raw):
            raise PolicyError(f"{label} {key}: expected a list of file paths")
        out = tuple((base / v).resolve() for v in raw)
        missing = [str(p) for p in out if not p.is_file()]
        if missing:
            raise PolicyError(f"{label} {key}: no such file {missing[0]}")
        return out

    identities = []
    raw_ids = table.get("sigstore_identities", [])
    if not isinstance(raw_ids, list):
        raise PolicyError(f"{label} sigstore_identities: expected a list of {{identity, issuer}} tables")
    for i, entry in enumerate(raw_ids, 1):
        if not isinstance(entry, dict) or set(entry) != {"identity", "issuer"}:
            raise PolicyError(f"{label} sigstore_identities #{i}: expected exactly identity and issuer")
        identities.append(SigstoreIdentity(str(entry["identity"]), str(entry["issuer"])))
    trust = table.get("sigstore_trust_config")
    trust_path = None
    if trust is not None:
        trust_path = (base / str(trust)).resolve()
        if not trust_path.is_file():
            raise PolicyError(f"{label} sigstore_trust_config: no such file {trust_path}")
    if identities and trust_path is None:
        raise PolicyError(f"{label} sigstore_identities need sigstore_trust_config (verification stays offline)")
    return SignaturePolicy(
        require=require,
        signature_file=name,
        trusted_public_keys=paths("trusted_public_keys"),
        trusted_certificates=paths("trusted_certificates"),
        sigstore_identities=tuple(identities),
        sigstore_trust_config=trust_path,
    )


def _table(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise PolicyError(f"{where}: [{key}] must be a table")
    return value


def _only_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise PolicyError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")
