"""The committed pack audit report covers every allow entry of the packs and has no unjustified one.

``analyzers/pickles/pack_audit.md`` is written by ``tools/pack_audit.py`` in an environment that has
the libraries (tools/README.md). Editing the packs without re-running the audit fails here, because
the new or changed entry has no row.
"""

from __future__ import annotations

import re
from pathlib import Path

from mlgate.analyzers.pickles.packs import PACKS, PURE_DECODERS, Allow, Pattern

REPORT = Path(__file__).resolve().parents[2] / "analyzers" / "pickles" / "pack_audit.md"


def _label(entry: Allow | Pattern) -> str:
    if isinstance(entry, Pattern):
        text = f"{entry.modules} / {entry.names}" + (f" (except {entry.exclude})" if entry.exclude else "")
    else:
        text = f"{entry.module}: {' '.join(entry.names)}"
    text = text.replace("|", "\\|")
    return text if len(text) <= 160 else text[:157] + "..."


def _rows() -> dict[str, str]:
    rows = {}
    for line in REPORT.read_text().splitlines():
        match = re.match(r"^\| [^|]+ \| `(.+?)` \| (\w[\w ]*) \|", line)
        if match:
            rows[match.group(1)] = match.group(2)
    return rows


def test_report_has_a_row_for_every_entry():
    rows = _rows()
    entries = [e for pack in PACKS for e in pack.entries] + list(PURE_DECODERS)
    missing = [_label(e) for e in entries if _label(e) not in rows]
    assert not missing, missing


def test_report_has_no_unjustified_entry():
    text = REPORT.read_text()
    assert "unjustified: 0." in text
    bad = {label: status for label, status in _rows().items() if status in ("fail", "missing")}
    assert not bad, bad
