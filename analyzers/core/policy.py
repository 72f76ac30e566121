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
"""

from __future__ import annotations

import enum
import fnmatch
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .budget import Budgets
from .compat import tomllib
from .findings import Finding, Severity


class Verdict(enum.Enum):
    APPROVED = "approved"
    QUARANTINED = "quarantined"


class PolicyError(Exception):
    """A policy file that cannot be used; the message is one line for a person."""


@dataclass(frozen=True)
class Suppression:
    rule: str
    path: str
    reason: str

    def matches(self, finding: Finding) -> bool:
        return finding.rule == self.rule and fnmatch.fnmatchcase(finding.location, self.path)


@dataclass(frozen=True)
class Policy:
    quarantine_at: Severity = Severity.HIGH
    quarantine_incomplete: bool = True
    quarantine_unresolved: bool = True
    budgets: Budgets = field(default_factory=Budgets)
    suppressions: tuple[Suppression, ...] = ()

    def apply_suppressions(self, findings: list[Finding]) -> list[Finding]:
        """Findings with ``suppressed`` set where a suppression matches (they stay in the report)."""
        out = []
        for finding in findings:
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
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise PolicyError(f"cannot read policy file {path}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError(f"policy file {path} is not valid TOML: {exc}") from None
    return _parse(data, str(path))


def _parse(data: dict[str, Any], where: str) -> Policy:
    _only_keys(data, {"verdict", "budgets", "suppress"}, where)
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
    return replace(policy, suppressions=tuple(items))


def _table(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise PolicyError(f"{where}: [{key}] must be a table")
    return value


def _only_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise PolicyError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")
