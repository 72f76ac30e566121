"""Secrets and network indicators in the strings analyzers extract (configs, pickle constants,
metadata, shipped code, templates, text members): what a model would leak or phone home to.

Patterns come from detect-secrets (its plugins, instantiated here so scans in parallel threads
share no global settings) plus the ML kinds in ``plugins``; a string with none of their shapes
(``shapes``) is settled without loading detect-secrets. Generic high-entropy strings count only
in a field whose name says it holds a secret (``token``, ``password``, ``api_key``...), so hashes,
commit ids and vocabularies stay quiet. A secret is never repeated: findings carry its kind, its
first four characters and a sha256 fingerprint (``fingerprint``), and ``redact`` scrubs the value
from every other message of the scan.

Network indicators are reported only for strings a loader reads (``reachable``): a URL or host is
info (where the model would phone home); a raw IP address or a scheme loaders should never fetch
from (``file``, ``ftp``, ``gopher``, ``smb``, ``ldap``, ``dict``, ``telnet``) is medium.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from ..core.findings import Finding, Rule, Severity
from .shapes import has_secret_shape

AREA = "secrets"
AWS = Rule("MLG-SEC-001", Severity.HIGH, "AWS access key in the model", AREA)
HUGGING_FACE = Rule("MLG-SEC-002", Severity.HIGH, "Hugging Face access token in the model", AREA)
WANDB = Rule("MLG-SEC-003", Severity.HIGH, "Weights & Biases API key in the model", AREA)
DATABRICKS = Rule("MLG-SEC-004", Severity.HIGH, "Databricks or MLflow tracking credential in the model", AREA)
LLM_API = Rule("MLG-SEC-005", Severity.HIGH, "OpenAI-style LLM API key in the model", AREA)
PRIVATE_KEY = Rule("MLG-SEC-006", Severity.HIGH, "Private key in the model", AREA)
URL_PASSWORD = Rule("MLG-SEC-007", Severity.HIGH, "Password inside a URL in the model", AREA)
CODE_HOST = Rule("MLG-SEC-008", Severity.HIGH, "Source-hosting or package-registry token in the model", AREA)
SERVICE = Rule("MLG-SEC-009", Severity.HIGH, "Cloud or SaaS service credential in the model", AREA)
GENERIC = Rule("MLG-SEC-010", Severity.MEDIUM, "High-entropy value in a secret-named field", AREA)
NET_URL = Rule("MLG-NET-001", Severity.INFO, "A loader-read field names a network location", "network")
NET_RISKY = Rule(
    "MLG-NET-002", Severity.MEDIUM, "A loader-read field names a raw IP address or risky scheme", "network"
)

# detect-secrets plugin class -> rule (built-ins first, then the ML plugins of this package)
_PLUGIN_RULES = {
    "AWSKeyDetector": AWS,
    "HuggingFaceTokenDetector": HUGGING_FACE,
    "WandbKeyDetector": WANDB,
    "DatabricksTokenDetector": DATABRICKS,
    "MlflowCredentialDetector": DATABRICKS,
    "OpenAIDetector": LLM_API,
    "OpenAIStyleKeyDetector": LLM_API,
    "PrivateKeyDetector": PRIVATE_KEY,
    "BasicAuthDetector": URL_PASSWORD,
    "GitHubTokenDetector": CODE_HOST,
    "GitLabTokenDetector": CODE_HOST,
    "NpmDetector": CODE_HOST,
    "PypiTokenDetector": CODE_HOST,
    "ArtifactoryDetector": CODE_HOST,
    "AzureStorageKeyDetector": SERVICE,
    "SlackDetector": SERVICE,
    "StripeDetector": SERVICE,
    "SendGridDetector": SERVICE,
    "TwilioKeyDetector": SERVICE,
    "MailchimpDetector": SERVICE,
    "DiscordBotTokenDetector": SERVICE,
    "TelegramBotTokenDetector": SERVICE,
    "JwtTokenDetector": SERVICE,
}
RULES = tuple(dict.fromkeys([*_PLUGIN_RULES.values(), GENERIC, NET_URL, NET_RISKY]))
SECRET_FIELD = re.compile(
    r"(?i)(pass(word|wd)?|secret|token|api[_-]?key|access[_-]?key|auth|credential|private[_-]?key)"
)
_URL = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]{0,31})://([^\s\"'<>{}|\\^`\x00-\x1f\x7f-\xff]+)")
# Binary streams put length bytes right before a string ("\x8c2postgresql://"): the scheme is the
# longest known one the letters before "://" end with, else all of them.
_KNOWN_SCHEMES = sorted(
    {"http", "https", "s3", "s3a", "gs", "hf", "wss", "ws", "postgresql", "postgres", "mysql", "redis", "mongodb",
     "sqlite", "file", "ftp", "ftps", "gopher", "smb", "ldap", "ldaps", "dict", "telnet", "tftp"},
    key=len,
    reverse=True,
)  # fmt: skip
_RISKY_SCHEMES = {"file", "ftp", "ftps", "gopher", "smb", "ldap", "ldaps", "dict", "telnet", "tftp"}
_MAX_TEXT = 1 << 20  # one string longer than this is scanned in its first MiB only
_ENTROPY_MIN_LENGTH = 16


@dataclass(frozen=True)
class Secret:
    rule: Rule
    kind: str
    value: str

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.value)

    @property
    def redacted(self) -> str:
        return redacted(self.value)


def fingerprint(value: str) -> str:
    """``sha256:`` + 16 hex digits of ``value``: enough to recognise it, useless to recover it."""
    import hashlib  # only a scan that found a secret needs it

    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:16]


def redacted(value: str) -> str:
    """The form a secret takes in every output: its first four characters, length and fingerprint."""
    return f"{value[:4]}… ({len(value)} chars, {fingerprint(value)})"


@lru_cache(maxsize=1)
def _detectors() -> tuple:
    """One instance of each pattern plugin (stateless; shared by every scan thread)."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    from .plugins import ML_PLUGINS

    builtin = {cls.__name__: cls for cls in get_mapping_from_secret_type_to_class().values()}
    chosen = [builtin[name]() for name in _PLUGIN_RULES if name in builtin]
    return (*chosen, *(cls() for cls in ML_PLUGINS))


@lru_cache(maxsize=1)
def _entropy_plugins() -> tuple:
    from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString, HexHighEntropyString

    return (Base64HighEntropyString(), HexHighEntropyString())


def find_secrets(text: str, field: str = "") -> list[Secret]:
    """The secrets in ``text`` (one extracted string); ``field`` is its key or attribute name, if any."""
    text = text[:_MAX_TEXT]
    found: dict[str, Secret] = {}
    for plugin in _detectors() if has_secret_shape(text) else ():
        rule = _PLUGIN_RULES.get(type(plugin).__name__, SERVICE)
        for value in plugin.analyze_string(text):
            value = value if isinstance(value, str) else str(value)
            if value and value not in found:
                found[value] = Secret(rule, plugin.secret_type, value)
    if not found and field and SECRET_FIELD.search(field):
        candidate = text.strip()
        if len(candidate) >= _ENTROPY_MIN_LENGTH and " " not in candidate and "://" not in candidate:
            for plugin in _entropy_plugins():
                charset_ok = all(c in plugin.charset for c in candidate)
                if charset_ok and plugin.calculate_shannon_entropy(candidate) >= plugin.entropy_limit:
                    found[candidate] = Secret(GENERIC, "High-entropy secret-named value", candidate)
                    break
    return list(found.values())


def inspect_document(location: str, text: str, reachable: bool) -> tuple[list[Finding], set[str]]:
    """Findings for a whole document (secrets at ``location@offset``; network indicators when
    ``reachable``), and the secret values found (for scrubbing)."""
    text = text[:_MAX_TEXT]
    findings, values = [], set()
    for secret in find_secrets(text):
        values.add(secret.value)
        findings.append(_secret_finding(f"{location}@{max(text.find(secret.value), 0)}", secret, ""))
    if reachable:
        findings.extend(network_findings(location, text))
    return findings, values


def inspect_value(location: str, value: str, field: str, known: set[str]) -> tuple[list[Finding], set[str]]:
    """Findings for one secret-named field's value (generic high entropy; known values skipped)."""
    if value in known or not SECRET_FIELD.search(field):
        return [], set()
    secrets = [s for s in find_secrets(value, field) if s.value not in known]
    return [_secret_finding(location, s, field) for s in secrets], {s.value for s in secrets}


def _secret_finding(location: str, secret: Secret, field: str) -> Finding:
    where = f" in field {field!r}" if field else ""
    return Finding(
        rule=secret.rule.id,
        severity=secret.rule.severity,
        analyzer=secret.rule.analyzer,
        location=location,
        message=f"{secret.kind}{where}: {secret.redacted}. Anyone who can read the model can use it; "
        "revoke it and remove it from the model",
        fingerprint=secret.fingerprint,
    )


def network_findings(location: str, text: str, field: str = "") -> Iterator[Finding]:
    """Info for each URL a loader-read string names; medium for raw IPs and risky schemes."""
    if "://" not in text:  # every match holds it; the pattern itself starts with a character class (slow)
        return
    from urllib.parse import urlsplit

    seen: set[str] = set()
    for match in _URL.finditer(text[:_MAX_TEXT]):
        run, rest = match.group(1).lower(), match.group(2)
        scheme = next((s for s in _KNOWN_SCHEMES if run.endswith(s)), run)
        host = urlsplit(f"{scheme}://{rest}").hostname or ""
        key = f"{scheme}://{host}"
        if key in seen:
            continue
        seen.add(key)
        where = f" (field {field!r})" if field else ""
        shown = f"{scheme}://{host}" if host else f"{scheme}://"
        at = f"{location}@{match.end(1) - len(scheme)}"
        if scheme in _RISKY_SCHEMES or _is_ip(host):
            reason = "a raw IP address" if _is_ip(host) else f"the {scheme}:// scheme"
            yield NET_RISKY.finding(at, f"names {shown}{where}: {reason}, which model loaders should never fetch")
        else:
            yield NET_URL.finding(at, f"names {shown}{where}: the loader or its user may contact it")


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def redact(text: str, secrets: set[str]) -> str:
    """``text`` with every known secret value replaced by its redacted form."""
    for value in sorted(secrets, key=len, reverse=True):
        if value in text:
            text = text.replace(value, redacted(value))
    return text
