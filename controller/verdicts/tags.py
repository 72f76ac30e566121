"""Verdict tags (docs/contracts.md §2, §3): the tag names, writing them from a report, reading and verifying them.

``mlgate.verdict``, ``mlgate.digest``, ``mlgate.scanned_at``, ``mlgate.scanner``,
``mlgate.findings`` and ``mlgate.signature`` (HMAC over name, version, digest and
verdict, ``controller/verdicts/signing.py``), plus ``mlgate.listing``: the fingerprint of the
artifact listing at scan time with its own HMAC (``controller/verdicts/listing.py``). A verdict
whose signature does not verify counts as no verdict at all. ``check_verdict`` is the one check of a model
version's tags (S3 objects: ``s3_actions.object_verdict``, the same check with
the object's URI and ETag as name and version); every layer decides from it.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from mlgate.analyzers.core.findings import Severity
from mlgate.analyzers.core.policy import Verdict
from mlgate.analyzers.core.report import TargetReport, version

from .listing import encode_listing
from .signing import sign_verdict, verify_verdict

PREFIX = "mlgate."
VERDICT = "mlgate.verdict"
DIGEST = "mlgate.digest"
SCANNED_AT = "mlgate.scanned_at"
SCANNER = "mlgate.scanner"
FINDINGS = "mlgate.findings"
SIGNATURE = "mlgate.signature"
SIGNER = "mlgate.signer"  # the trusted signer whose model signature verified (docs/signatures.md)
MODEL_SIGNATURE = "mlgate.model_signature"  # where mlgate's own OpenSSF signature of an approved model is
EXCEPTIONS = "mlgate.exceptions"  # ids of the reviewed exceptions the verdict was decided with (verdicts/exceptions.py)
REPORT = "mlgate.report"  # where the full JSON report of the verdict is kept (controller/reports/)
LISTING = "mlgate.listing"  # the artifact-listing fingerprint at scan time, with its own HMAC (listing.py)

UNKNOWN_DIGEST = "unknown"  # content that was never downloaded (size budget): only ever quarantined
_TOP_RULES = 3


def normalize_tag_key(key: str) -> str:
    """``key`` as a case- and accent-insensitive database collation compares it (MySQL ``*_ci``/``*_ai_ci``).

    Compatibility decomposition (fullwidth letters), combining marks dropped, case folded, trailing
    spaces dropped (PAD SPACE collations): ``MLGATE.Verdict``, ``mlgatè.verdict`` and ``mlgate.verdict `` all
    collide with ``mlgate.verdict`` on such a backend, so all of them are reserved.
    """
    decomposed = unicodedata.normalize("NFKD", key)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().rstrip(" ")


def is_reserved(key: str) -> bool:
    """Tag keys only the controller may write: every key that could compare equal to an ``mlgate.*`` key."""
    return normalize_tag_key(key).startswith(PREFIX)


@dataclass(frozen=True)
class SignedVerdict:
    """A verdict read back from tags whose signature verified."""

    verdict: Verdict
    digest: str
    scanned_at: str
    scanner: str
    findings: str
    exceptions: tuple[str, ...] = ()  # ids of the exceptions this verdict was decided with

    @property
    def approved(self) -> bool:
        return self.verdict is Verdict.APPROVED


class VerdictState(Enum):
    """What a subject's tags say, once checked."""

    APPROVED = "approved"
    QUARANTINED = "quarantined"
    UNSCANNED = "unscanned"  # no verdict tag at all
    UNSIGNED = "unsigned"  # a verdict tag without a valid signature: forged, copied, or for other content


@dataclass(frozen=True)
class VerdictCheck:
    """The answer of ``check_verdict``: the state, and the signed verdict when there is a valid one."""

    state: VerdictState
    signed: SignedVerdict | None = None

    @property
    def approved(self) -> bool:
        return self.state is VerdictState.APPROVED


def build_tags(
    key: bytes,
    name: str,
    model_version: str,
    report: TargetReport,
    now: dt.datetime | None = None,
    exceptions: tuple[str, ...] = (),
    listing: str | None = None,
) -> dict[str, str]:
    """The tags recording ``report`` for model ``name`` version ``model_version``, in write order.

    With ``exceptions`` (ids of reviewed exceptions the verdict was decided with) the ``mlgate.exceptions``
    tag lists them and the signature covers the list (``signed_verdict_text``). ``listing`` is the
    artifact-listing fingerprint taken before the content was read; it is written as ``mlgate.listing``
    with its own signature (the verdict signature message is unchanged).
    """
    digest = report.digest or UNKNOWN_DIGEST
    verdict = report.verdict.value
    scanned = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    tags = {
        VERDICT: verdict,
        DIGEST: digest,
        SCANNED_AT: scanned.strftime("%Y-%m-%dT%H:%M:%SZ"),
        SCANNER: f"mlgate {version()}",
        FINDINGS: summarize_findings(report),
    }
    if report.signer:
        tags[SIGNER] = report.signer
    if exceptions:
        tags[EXCEPTIONS] = ",".join(sorted(exceptions))
    if listing:
        tags[LISTING] = encode_listing(key, name, model_version, digest, listing)
    tags[SIGNATURE] = sign_verdict(key, name, model_version, digest, signed_verdict_text(verdict, exceptions))
    return tags


def signed_verdict_text(verdict: str, exceptions: tuple[str, ...] | list[str] = ()) -> str:
    """The verdict field the signature covers: the verdict, plus the exception ids it rests on, if any."""
    return f"{verdict};exceptions={','.join(sorted(exceptions))}" if exceptions else verdict


def check_verdict(key: bytes, name: str, model_version: str, tags: Mapping[str, str] | None) -> VerdictCheck:
    """Do ``tags`` carry a valid verdict signed for model ``name`` version ``model_version``, and which?

    A verdict that is missing its digest, is no known verdict, or whose signature does not verify
    is ``UNSIGNED``: it counts as no verdict at all.
    """
    tags = tags or {}
    raw, digest = tags.get(VERDICT), tags.get(DIGEST)
    if raw is None:
        return VerdictCheck(VerdictState.UNSCANNED)
    try:
        verdict = Verdict(raw)
    except ValueError:
        return VerdictCheck(VerdictState.UNSIGNED)
    excepted = tuple(sorted(i for i in (tags.get(EXCEPTIONS) or "").replace(" ", "").split(",") if i))
    signed_text = signed_verdict_text(raw, excepted)
    if not digest or not verify_verdict(key, name, str(model_version), digest, signed_text, tags.get(SIGNATURE)):
        return VerdictCheck(VerdictState.UNSIGNED)
    signed = SignedVerdict(
        verdict=verdict,
        digest=digest,
        scanned_at=tags.get(SCANNED_AT, ""),
        scanner=tags.get(SCANNER, ""),
        findings=tags.get(FINDINGS, ""),
        exceptions=excepted,
    )
    state = VerdictState.APPROVED if signed.approved else VerdictState.QUARANTINED
    return VerdictCheck(state, signed)


def summarize_findings(report: TargetReport) -> str:
    """``critical=1 high=0 medium=2 low=0 info=0; top: MLG-PKL-001, MLG-CORE-001; dependencies: models:/base/1
    quarantined`` (active findings; dependencies only when one is quarantined or unresolved)."""
    counts = report.counts()
    parts = [" ".join(f"{s.label}={counts[s]}" for s in sorted(Severity, reverse=True))]
    top = top_rules(report)
    if top:
        parts.append(f"top: {', '.join(top)}")
    bad = [
        f"{d.ref} {d.verdict.value if d.resolved and d.verdict else 'unresolved'}"
        for d in report.dependencies
        if not d.resolved or d.verdict is not Verdict.APPROVED
    ]
    if bad:
        parts.append(f"dependencies: {', '.join(bad[:_TOP_RULES])}" + (" ..." if len(bad) > _TOP_RULES else ""))
    return "; ".join(parts)


def summary_details(summary: str) -> str:
    """What follows the severity counts in a ``mlgate.findings`` tag (top rules, bad dependencies)."""
    return summary.partition("; ")[2]


def top_rules(report: TargetReport, limit: int = _TOP_RULES) -> list[str]:
    """The most severe rule ids among active findings (ties: most frequent first, then id)."""
    active = [f for f in report.findings if f.suppressed is None]
    worst: dict[str, Severity] = {}
    for f in active:
        worst[f.rule] = max(worst.get(f.rule, Severity.INFO), f.severity)
    freq = Counter(f.rule for f in active)
    return sorted(worst, key=lambda r: (-worst[r], -freq[r], r))[:limit]
