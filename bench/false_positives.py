"""False positives on the benign suite: models approved / total, and every finding at medium or above.

Command: ``python3 bench/false_positives.py`` (add ``--json`` for the raw reports). Scans every model of
``tests/fixtures/benign/`` (clean models written by the real libraries; see ``tests/benign/``) with
``mlgate scan --format json`` and prints one line per model that is not approved cleanly.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from benign.suite import SERIOUS, scan


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print every model's report entry as JSON")
    parser.add_argument("--jobs", type=int, default=2, help="targets scanned in parallel (default 2)")
    args = parser.parse_args()
    start = time.monotonic()
    outcomes = scan(jobs=args.jobs)
    elapsed = time.monotonic() - start
    if args.json:
        print(json.dumps({o.name: o.report for o in outcomes}, indent=1))
        return 0
    approved = sum(o.approved for o in outcomes)
    clean = sum(not o.false_positive for o in outcomes)
    serious = [(o, f) for o in outcomes for f in o.serious]
    for outcome in outcomes:
        if outcome.approved and not outcome.serious and outcome.report["scan_complete"]:
            continue
        state = "complete" if outcome.report["scan_complete"] else "INCOMPLETE"
        print(f"{outcome.report['verdict'].upper():11} {outcome.name} ({state} scan)")
        for finding in outcome.report["findings"]:
            if finding["severity"] in SERIOUS:
                print(
                    f"    {finding['severity']:8} {finding['rule']}  {finding['location']}  {finding['message'][:160]}"
                )
        for dep in outcome.report.get("dependencies", []):
            if dep.get("verdict") != "approved":
                print(f"    dependency {dep.get('ref')}: {dep.get('verdict')} {dep.get('reason', '')[:120]}")
    print()
    print(f"approved: {approved}/{len(outcomes)}")
    print(f"approved with no finding at medium or above, complete scan: {clean}/{len(outcomes)}")
    print(f"findings at medium or above: {len(serious)}")
    print(f"wall time: {elapsed:.1f} s")
    return 0 if clean == len(outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
