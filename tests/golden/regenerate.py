"""Write ``scan_reports.json`` from the code as it is: ``python tests/golden/regenerate.py``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden_targets import GOLDEN, default_command, scan_reports

if __name__ == "__main__":
    command = sys.argv[1:] or default_command()
    GOLDEN.write_text(json.dumps(scan_reports(command), indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")
