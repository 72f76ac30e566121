"""Reviewed exceptions: a signed, per-version acceptance of one rule at a location glob (docs/exceptions.md).

An exception lives in a model-version tag ``mlgate.exception.<id>`` whose value is
JSON: the rule, the location glob, the reviewer, the reason, when, the digest of
the content it was granted for, and an HMAC under the controller's verdict key
(``signing.sign_verdict`` in its own domain, so an exception signature can never
pass as a verdict signature) over all of that plus the model name and version.
It only ever applies to that name, version and digest: copied to another
version, or left on content that changed, it does not verify or does not match,
and it is ignored. Revoking keeps the tag (for the audit trail) with
``revoked_at``/``revoked_by`` added and the whole re-signed.

A verdict decided with exceptions records the ids it considered in the
``mlgate.exceptions`` tag, and the verdict signature covers that list
(``tags.build_tags``), so every layer that trusts an approval (the gate plugin,
``mlgate check``, the admission webhook) can re-check that each exception it
rests on is still there, valid and unrevoked (``exceptions_problem``), and the
controller can see that the set changed and decide again (``stale``).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import logging
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace

from mlgate.analyzers.core.findings import Finding
from mlgate.analyzers.core.policy import Policy
from mlgate.analyzers.core.report import TargetReport

from ..runtime.logging_json import fields
from ..runtime.metrics import EXCEPTIONS_APPLIED
from .signing import sign_verdict, verify_verdict

log = logging.getLogger("mlgate.exceptions")

EXCEPTION_PREFIX = "mlgate.exception."
EXCEPTIONS = "mlgate.exceptions"  # ids of the exceptions a verdict was decided with (covered by its signature)
_DOMAIN = "mlgate.exception.v1"
MAX_REASON = 2000


@dataclass(frozen=True)
class ReviewedException:
    """One exception as stored (``signature`` over every other field, the model name and version)."""

    id: str
    rule: str
    location: str
    digest: str
    reason: str
    reviewer: str
    created_at: str
    revoked_at: str = ""
    revoked_by: str = ""
    signature: str = ""

    @property
    def tag(self) -> str:
        return f"{EXCEPTION_PREFIX}{self.id}"

    @property
    def revoked(self) -> bool:
        return bool(self.revoked_at)

    def matches(self, finding: Finding) -> bool:
        return finding.rule == self.rule and fnmatch.fnmatchcase(finding.location, self.location)

    def encode(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    def to_dict(self) -> dict[str, str]:
        out = asdict(self)
        out.pop("signature")
        return {k: v for k, v in out.items() if v}


@dataclass(frozen=True)
class ExceptionState:
    """An exception tag read back: the exception (when it parsed) and its status for a digest."""

    tag: str
    exception: ReviewedException | None
    status: str  # valid | revoked | other-digest | bad-signature | malformed

    @property
    def valid(self) -> bool:
        return self.status == "valid"

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"tag": self.tag, "status": self.status}
        if self.exception is not None:
            out.update(self.exception.to_dict())
        return out


def _message(name: str, version: str, exc: ReviewedException) -> str:
    payload = [exc.id, exc.rule, exc.location, exc.reason, exc.reviewer, exc.created_at, exc.revoked_at, exc.revoked_by]
    return json.dumps(payload, separators=(",", ":"))


def sign_exception(key: bytes, name: str, version: str, exc: ReviewedException) -> ReviewedException:
    """``exc`` with its signature for model ``name`` version ``version``."""
    signature = sign_verdict(key, name, str(version), exc.digest, _DOMAIN + "\n" + _message(name, version, exc))
    return replace(exc, signature=signature)


def new_exception(
    key: bytes,
    name: str,
    version: str,
    digest: str,
    rule: str,
    location: str,
    reason: str,
    reviewer: str,
    now: dt.datetime | None = None,
) -> ReviewedException:
    """A freshly signed exception for one version's digest."""
    stamp = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    exc = ReviewedException(
        id=secrets.token_hex(4),
        rule=rule,
        location=location or "*",
        digest=digest,
        reason=reason,
        reviewer=reviewer,
        created_at=stamp,
    )
    return sign_exception(key, name, version, exc)


def revoke(
    key: bytes, name: str, version: str, exc: ReviewedException, by: str, now: dt.datetime | None = None
) -> ReviewedException:
    stamp = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return sign_exception(key, name, version, replace(exc, revoked_at=stamp, revoked_by=by))


def decode(value: str) -> ReviewedException | None:
    """The exception in a tag value, or None when it is not one."""
    try:
        data = json.loads(value)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    try:
        exc = ReviewedException(**{k: str(data.get(k, "")) for k in ReviewedException.__dataclass_fields__})
    except TypeError:
        return None
    return exc if exc.id and exc.rule and exc.digest else None


def read_exceptions(key: bytes, name: str, version: str, digest: str, tags: Mapping[str, str]) -> list[ExceptionState]:
    """Every ``mlgate.exception.*`` tag of a version, checked against ``digest`` (sorted by tag)."""
    out = []
    for tag in sorted(t for t in tags if t.startswith(EXCEPTION_PREFIX)):
        exc = decode(tags[tag])
        if exc is None or exc.tag != tag:
            out.append(ExceptionState(tag, exc, "malformed"))
            continue
        message = _DOMAIN + "\n" + _message(name, version, exc)
        if not verify_verdict(key, name, str(version), exc.digest, message, exc.signature):
            out.append(ExceptionState(tag, exc, "bad-signature"))
        elif exc.revoked:
            out.append(ExceptionState(tag, exc, "revoked"))
        elif exc.digest != digest:
            out.append(ExceptionState(tag, exc, "other-digest"))
        else:
            out.append(ExceptionState(tag, exc, "valid"))
    return out


def valid_exceptions(
    key: bytes, name: str, version: str, digest: str, tags: Mapping[str, str]
) -> list[ReviewedException]:
    return [s.exception for s in read_exceptions(key, name, version, digest, tags) if s.valid and s.exception]


def ids(exceptions: Iterable[ReviewedException]) -> tuple[str, ...]:
    return tuple(sorted(e.id for e in exceptions))


def stale(key: bytes, name: str, version: str, digest: str, recorded: Iterable[str], tags: Mapping[str, str]) -> bool:
    """True when the valid exceptions for ``digest`` differ from those the verdict was decided with."""
    return ids(valid_exceptions(key, name, version, digest, tags)) != tuple(sorted(recorded))


def apply_exceptions(
    report: TargetReport, exceptions: Iterable[ReviewedException], policy: Policy, source: str, subject: str = ""
) -> TargetReport:
    """``report`` with findings accepted by ``exceptions`` suppressed, and its verdict decided again.

    Only exceptions for the report's own digest apply; each one that accepts a finding is counted in
    ``mlgate_exceptions_applied_total{source}`` and logged. An incomplete scan stays incomplete.
    """
    usable = [e for e in exceptions if e.digest == report.digest and not e.revoked]
    if not usable:
        return report
    used: dict[str, int] = {}
    findings = []
    for finding in report.findings:
        match = next((e for e in usable if finding.suppressed is None and e.matches(finding)), None)
        if match is None:
            findings.append(finding)
            continue
        used[match.id] = used.get(match.id, 0) + 1
        findings.append(replace(finding, suppressed=f"exception {match.id} ({match.reviewer}): {match.reason}"))
    deps = [d.verdict if d.resolved else None for d in report.dependencies]
    verdict = policy.decide(findings, report.scan_complete, deps)
    for exc in usable:
        if exc.id in used:
            note_use(source, subject or report.target, exc, f"accepted {used[exc.id]} finding(s) in the verdict")
    return replace(report, findings=findings, verdict=verdict)


def note_use(source: str, subject: str, exc: ReviewedException, what: str) -> None:
    """Count and log one use of an exception (``source``: mlflow, s3, plugin, check, admission)."""
    EXCEPTIONS_APPLIED.labels(source=source).inc()
    log.info(
        "exception used: %s %s at %s, %s",
        exc.id,
        exc.rule,
        exc.location,
        what,
        extra=fields(source=source, target=subject, rule=exc.rule, reason=f"{exc.reviewer}: {exc.reason}"[:300]),
    )


def exceptions_problem(
    key: bytes, name: str, version: str, digest: str, recorded: Iterable[str], tags: Mapping[str, str]
) -> str:
    """Why an approval resting on exceptions ``recorded`` no longer stands ("" when every one is still valid)."""
    states = {s.exception.id: s for s in read_exceptions(key, name, version, digest, tags) if s.exception}
    for exc_id in recorded:
        state = states.get(exc_id)
        if state is None:
            return f"its approval rests on exception {exc_id}, which is gone"
        if not state.valid:
            return f"its approval rests on exception {exc_id}, which is {state.status}"
    return ""


def parse_recorded(value: str | None) -> tuple[str, ...]:
    """The ids in an ``mlgate.exceptions`` tag value."""
    return tuple(sorted(i for i in (value or "").replace(" ", "").split(",") if i))
