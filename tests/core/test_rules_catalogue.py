"""docs/rules.md lists exactly the rules the code declares, with the same severities."""

from __future__ import annotations

import re
from pathlib import Path

from mlgate.analyzers.core.findings import CATALOGUE
from mlgate.analyzers.core.registry import load_all

DOC = Path(__file__).resolve().parents[2] / "docs" / "rules.md"
ROW = re.compile(r"^\|\s*(MLG-[A-Z0-9]+-\d{3})\s*\|\s*(\w+)\s*\|", re.MULTILINE)


def _documented() -> dict[str, str]:
    return {rule_id: severity.lower() for rule_id, severity in ROW.findall(DOC.read_text())}


def _declared() -> dict[str, str]:
    load_all()
    import mlgate.analyzers.core.walker
    import mlgate.analyzers.secrets
    import mlgate.analyzers.signatures  # noqa: F401 - declares the signature rules (not a registered analyzer)

    return {rule.id: rule.severity.label for rule in CATALOGUE.values() if not rule.id.startswith("MLG-TEST-")}


def test_every_declared_rule_is_documented_with_its_severity():
    documented = _documented()
    missing = sorted(set(_declared()) - set(documented))
    assert not missing, f"rules missing from docs/rules.md: {missing}"
    wrong = {r: (s, documented[r]) for r, s in _declared().items() if documented[r] != s}
    assert not wrong, f"severity differs (code, doc): {wrong}"


def test_every_documented_rule_exists_in_code():
    stale = sorted(set(_documented()) - set(_declared()))
    assert not stale, f"docs/rules.md lists rules the code does not declare: {stale}"
