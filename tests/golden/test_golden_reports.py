"""Scan reports of a fixed set of fixtures stay as recorded in ``scan_reports.json``.

The file was first written by the code before the package restructure (issue 11), so this test
shows the restructure changed no verdict, finding, location or message. Later changes that are
meant to change a report regenerate it (``python tests/golden/regenerate.py``) in the same commit.
"""

from __future__ import annotations

import json

from .golden_targets import GOLDEN, default_command, scan_reports


def test_reports_match_the_recorded_ones() -> None:
    expected = json.loads(GOLDEN.read_text())
    actual = scan_reports(default_command())
    assert sorted(actual) == sorted(expected)
    changed = [name for name in expected if actual[name] != expected[name]]
    assert not changed, f"{len(changed)} report(s) changed, first: {changed[0]}\n{actual[changed[0]]}"
