"""The shapes of the tokens every secret detector looks for, as plain regular expressions.

A detector (detect-secrets' and ours in ``plugins``) reports only what one of its patterns matches,
so a string that matches none of these shapes holds no secret of a known kind. ``detect`` checks
this first and loads detect-secrets (and ``requests``, which it imports) only for a string that
has one of the shapes: most models never pay for it. ``DETECT_SECRETS_SHAPES`` is a copy of the
detect-secrets 1.5.0 patterns of the plugins ``detect`` uses; ``tests/secrets/test_shapes.py``
fails when the installed library's patterns differ from it.
"""

from __future__ import annotations

import re
from functools import cache

Shape = tuple[str, int]  # (pattern, re flags)

DETECT_SECRETS_SHAPES: dict[str, tuple[Shape, ...]] = {
    "AWSKeyDetector": (
        ("(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}", 0),
        ("aws.{0,20}?(?:key|pwd|pw|password|pass|token).{0,20}?[\\'\\\"]([0-9a-zA-Z/+]{40})[\\'\\\"]", re.IGNORECASE),
    ),
    "OpenAIDetector": (("sk-[A-Za-z0-9-_]*[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}", 0),),
    "PrivateKeyDetector": (
        ("BEGIN DSA PRIVATE KEY", 0),
        ("BEGIN EC PRIVATE KEY", 0),
        ("BEGIN OPENSSH PRIVATE KEY", 0),
        ("BEGIN PGP PRIVATE KEY BLOCK", 0),
        ("BEGIN PRIVATE KEY", 0),
        ("BEGIN RSA PRIVATE KEY", 0),
        ("BEGIN SSH2 ENCRYPTED PRIVATE KEY", 0),
        ("PuTTY-User-Key-File-2", 0),
    ),
    "BasicAuthDetector": (
        ("://[^:/\\?\\#\\[\\]@!\\$\\&'\\(\\)\\*\\+,;=\\s]+:([^:/\\?\\#\\[\\]@!\\$\\&'\\(\\)\\*\\+,;=\\s]+)@", 0),
    ),
    "GitHubTokenDetector": (("(ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9_]{36}", 0),),
    "GitLabTokenDetector": (
        ("(glpat|gldt|glft|glsoat|glrt)-[A-Za-z0-9_\\-]{20,50}(?!\\w)", 0),
        ("GR1348941[A-Za-z0-9_\\-]{20,50}(?!\\w)", 0),
        ("glcbt-([0-9a-fA-F]{2}_)?[A-Za-z0-9_\\-]{20,50}(?!\\w)", 0),
        ("glimt-[A-Za-z0-9_\\-]{25}(?!\\w)", 0),
        ("glptt-[A-Za-z0-9_\\-]{40}(?!\\w)", 0),
        ("glagent-[A-Za-z0-9_\\-]{50,1024}(?!\\w)", 0),
        ("gloas-[A-Za-z0-9_\\-]{64}(?!\\w)", 0),
    ),
    "NpmDetector": (("\\/\\/.+\\/:_authToken=\\s*((npm_.+)|([A-Fa-f0-9-]{36})).*", 0),),
    "PypiTokenDetector": (
        ("pypi-AgEIcHlwaS5vcmc[A-Za-z0-9-_]{70,}", 0),
        ("pypi-AgENdGVzdC5weXBpLm9yZw[A-Za-z0-9-_]{70,}", 0),
    ),
    "ArtifactoryDetector": (
        ('(?:\\s|=|:|"|^)AKC[a-zA-Z0-9]{10,}(?:\\s|"|$)', 0),
        ('(?:\\s|=|:|"|^)AP[\\dABCDEF][a-zA-Z0-9]{8,}(?:\\s|"|$)', 0),
    ),
    "AzureStorageKeyDetector": (("AccountKey=[a-zA-Z0-9+\\/=]{88}", 0),),
    "SlackDetector": (
        ("xox(?:a|b|p|o|s|r)-(?:\\d+-)+[a-z0-9]+", re.IGNORECASE),
        (
            "https://hooks\\.slack\\.com/services/T[a-zA-Z0-9_]+/B[a-zA-Z0-9_]+/[a-zA-Z0-9_]+",
            re.IGNORECASE | re.VERBOSE,
        ),
    ),
    "StripeDetector": (("(?:r|s)k_live_[0-9a-zA-Z]{24}", 0),),
    "SendGridDetector": (("SG\\.[a-zA-Z0-9_-]{22}\\.[a-zA-Z0-9_-]{43}", 0),),
    "TwilioKeyDetector": (
        ("AC[a-z0-9]{32}", 0),
        ("SK[a-z0-9]{32}", 0),
    ),
    "MailchimpDetector": (("[0-9a-z]{32}-us[0-9]{1,2}", 0),),
    "DiscordBotTokenDetector": (("[MNO][a-zA-Z\\d_-]{23,25}\\.[a-zA-Z\\d_-]{6}\\.[a-zA-Z\\d_-]{27}", 0),),
    "TelegramBotTokenDetector": (("\\d{8,10}:[0-9A-Za-z_-]{35}", 0),),
    "JwtTokenDetector": (("eyJ[A-Za-z0-9-_=]+\\.[A-Za-z0-9-_=]+\\.?[A-Za-z0-9-_.+/=]*?", 0),),
}

ML_SHAPES: dict[str, tuple[Shape, ...]] = {
    "HuggingFaceTokenDetector": ((r"\b(hf_[A-Za-z0-9]{34,40})\b", 0), (r"\b(api_org_[A-Za-z0-9]{34})\b", 0)),
    "WandbKeyDetector": (
        (r"(?i)(?:wandb|WANDB_API_KEY|wandb_api_key)[\"'\s:=\]]{1,8}((?:local-)?[0-9a-f]{40})\b", 0),
        (r"(?i)api\.wandb\.ai[^\n]{0,40}?\b([0-9a-f]{40})\b", 0),
    ),
    "DatabricksTokenDetector": ((r"\b(dapi[0-9a-f]{32}(?:-\d)?)\b", 0),),
    "MlflowCredentialDetector": (
        (r"(?:MLFLOW_TRACKING_TOKEN|MLFLOW_TRACKING_PASSWORD)[\"'\s:=]{1,8}([^\s\"']{8,})", 0),
        (r"(?:DATABRICKS_TOKEN)[\"'\s:=]{1,8}([^\s\"']{8,})", 0),
    ),
    "OpenAIStyleKeyDetector": (
        (r"\b(sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,})", 0),
        (r"\b(sk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_-]{40,})", 0),
    ),
}
"""Our ML plugins' patterns (``plugins`` compiles its denylists from these)."""


# Shapes the regular-expression engine searches slowly (no literal to scan for: a leading ``\b``,
# character class or ``.``), each with a simpler pattern every match of the shape contains. The
# simple one is searched first (fast) and the shape only where it matched; a shape is compiled on
# first use. tests/secrets/test_shapes.py checks each ``NEEDS`` entry against generated matches.
NEEDS: dict[str, str] = {
    r"\b(hf_[A-Za-z0-9]{34,40})\b": "hf_",
    r"\b(api_org_[A-Za-z0-9]{34})\b": "api_org_",
    r"\b(dapi[0-9a-f]{32}(?:-\d)?)\b": "dapi",
    r"\b(sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,})": "sk-",
    r"\b(sk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_-]{40,})": "sk-ant-",
    "(?:r|s)k_live_[0-9a-zA-Z]{24}": "k_live_",
    r"[MNO][a-zA-Z\d_-]{23,25}\.[a-zA-Z\d_-]{6}\.[a-zA-Z\d_-]{27}": r"\.[a-zA-Z\d_-]{6}\.",
    r"\d{8,10}:[0-9A-Za-z_-]{35}": r":[0-9A-Za-z_-]{35}",
    r"[0-9a-z]{32}-us[0-9]{1,2}": "-us",
    r'(?:\s|=|:|"|^)AKC[a-zA-Z0-9]{10,}(?:\s|"|$)': "AKC",
    r'(?:\s|=|:|"|^)AP[\dABCDEF][a-zA-Z0-9]{8,}(?:\s|"|$)': "AP",
    r"\/\/.+\/:_authToken=\s*((npm_.+)|([A-Fa-f0-9-]{36})).*": ":_authToken=",
}


# The case-insensitive shapes, with a lower-case word each match holds. On text within Latin-1 (every
# binary stream, decoded as Latin-1, and most configs) re's case-insensitive match of ASCII equals a
# substring test on the lower-cased text (the other letters it folds, such as the Kelvin sign, the long
# s and the dotless i, lie beyond Latin-1), which is far cheaper than the case-insensitive search.
FOLDED_NEEDS: dict[str, str] = {
    DETECT_SECRETS_SHAPES["AWSKeyDetector"][1][0]: "aws",
    DETECT_SECRETS_SHAPES["SlackDetector"][0][0]: "xox",
    DETECT_SECRETS_SHAPES["SlackDetector"][1][0]: "hooks.slack.com",
    ML_SHAPES["WandbKeyDetector"][0][0]: "wandb",
    ML_SHAPES["WandbKeyDetector"][1][0]: "api.wandb.ai",
}


def compiled(shapes: tuple[Shape, ...]) -> list[re.Pattern[str]]:
    return [re.compile(pattern, flags) for pattern, flags in shapes]


_ALL: tuple[Shape, ...] = tuple(
    shape for table in (DETECT_SECRETS_SHAPES, ML_SHAPES) for v in table.values() for shape in v
)


_METACHARACTERS = frozenset(".^$*+?{}[]\\|()")


def literal_prefix(pattern: str, flags: int) -> str:
    """The text every match of ``pattern`` starts with: its leading ordinary characters, less one a
    quantifier follows. Empty when it cannot be relied on: with flags (case folding, verbose) or an
    alternation (``|`` may split the whole pattern)."""
    if flags or "|" in pattern:
        return ""
    end = 0
    while end < len(pattern) and pattern[end] not in _METACHARACTERS:
        end += 1
    if end < len(pattern) and pattern[end] in "*+?{":
        end -= 1
    return pattern[:end]


# A plain substring test skips a shape (or searches its ``NEEDS``) without compiling a regex: most
# shapes start with a literal, and compiling the forty of them would cost a small scan milliseconds.
LITERAL_PREFIXES: dict[str, str] = {p: lit for p, flags in _ALL if (lit := literal_prefix(p, flags))}
_LITERAL_NEEDS = frozenset(need for p, need in NEEDS.items() if literal_prefix(need, dict(_ALL)[p]) == need)


def has_secret_shape(text: str) -> bool:
    """Whether some detector's pattern matches ``text`` (if not, no detector would report anything)."""
    folded = _lower_latin1(text)
    for pattern, flags in _ALL:
        word = FOLDED_NEEDS.get(pattern)
        if word is not None and folded is not None and word not in folded:
            continue
        prefix = LITERAL_PREFIXES.get(pattern)
        if prefix is not None and prefix not in text:
            continue
        need = NEEDS.get(pattern)
        if need is not None and (
            need not in text if need in _LITERAL_NEEDS else _regex(need, flags).search(text) is None
        ):
            continue
        if _regex(pattern, flags).search(text):
            return True
    return False


@cache
def _regex(pattern: str, flags: int) -> re.Pattern[str]:
    return re.compile(pattern, flags)


def _lower_latin1(text: str) -> str | None:
    """``text`` lower-cased when it lies within Latin-1 (where that equals re's case folding), else None."""
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return None
    return text.lower()
