"""Findings, severities and the rule catalogue.

Every analyzer declares its rules here-style (``Rule(...)`` at module level) and
creates findings from them, so each finding carries a stable rule id
(``MLG-<AREA>-<NNN>``) and the catalogue in ``docs/rules.md`` can be checked
against the code.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

_RULE_ID = re.compile(r"^MLG-[A-Z0-9]{2,8}-\d{3}$")


class Severity(enum.IntEnum):
    """Finding severity; ordering is by gravity (``CRITICAL > HIGH``)."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        """Parse a lower- or upper-case severity name; raise ValueError otherwise."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(s.label for s in cls)
            raise ValueError(f"unknown severity {text!r} (expected one of: {names})") from None


@dataclass(frozen=True)
class Finding:
    """One thing a security engineer should know about one place in a model."""

    rule: str
    severity: Severity
    analyzer: str
    location: str
    message: str
    incomplete: bool = False  # True when this finding means part of the target was not read
    suppressed: str | None = None  # reason from the policy, when a suppression matched
    fingerprint: str | None = None  # a value's sha256 prefix, when the finding is about a value (secrets)
    # The Python module whose unknown code this finding is about (an unknown pickle global). When the
    # model ships that module where its loader imports from, the walker lowers the finding: the
    # module itself is scanned and its findings say what it does. Not part of the report.
    code_module: str = field(default="", compare=False)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "rule": self.rule,
            "severity": self.severity.label,
            "analyzer": self.analyzer,
            "location": self.location,
            "message": self.message,
        }
        if self.incomplete:
            out["incomplete"] = True
        if self.suppressed is not None:
            out["suppressed"] = self.suppressed
        if self.fingerprint is not None:
            out["fingerprint"] = self.fingerprint
        return out


@dataclass(frozen=True)
class Rule:
    """A stable, documented detection rule.

    ``incomplete`` rules describe content that could not be read; a finding from
    one marks the scan incomplete (fail closed).
    """

    id: str
    severity: Severity
    title: str
    analyzer: str
    incomplete: bool = False
    cve: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not _RULE_ID.match(self.id):
            raise ValueError(f"rule id {self.id!r} does not match MLG-<AREA>-<NNN>")
        existing = CATALOGUE.get(self.id)
        if existing is not None and existing != self:
            raise ValueError(f"rule id {self.id} declared twice with different definitions")
        CATALOGUE[self.id] = self

    def finding(self, location: str, message: str, severity: Severity | None = None, code_module: str = "") -> Finding:
        """A finding of this rule; ``severity`` overrides the default when evidence warrants."""
        return Finding(
            rule=self.id,
            severity=self.severity if severity is None else severity,
            analyzer=self.analyzer,
            location=location,
            message=message,
            incomplete=self.incomplete,
            code_module=code_module,
        )


CATALOGUE: dict[str, Rule] = {}
"""Every rule declared by an imported analyzer, by id."""
