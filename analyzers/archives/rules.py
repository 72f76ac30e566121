"""The archive rule catalogue (``MLG-ARC-0NN``): every hazard a zip, tar or 7z container can carry.

Declared in one place so the zip, tar and 7z analyzers and the shared member
policy report the same ids; ``docs/rules.md`` documents each one.
"""

from __future__ import annotations

from ..core.findings import Rule, Severity

ANALYZER = "archives"

TRAVERSAL = Rule(
    "MLG-ARC-001",
    Severity.HIGH,
    "Member path climbs out of the extraction directory ('..')",
    ANALYZER,
    cve=("CVE-2007-4559",),
)
ABSOLUTE = Rule("MLG-ARC-002", Severity.HIGH, "Absolute member path (leading '/', drive letter or UNC share)", ANALYZER)
LINK_ESCAPES = Rule("MLG-ARC-003", Severity.HIGH, "Link member points outside the archive root", ANALYZER)
LINK_INSIDE = Rule("MLG-ARC-004", Severity.MEDIUM, "Link member inside a model archive", ANALYZER)
WRITE_THROUGH_LINK = Rule(
    "MLG-ARC-005", Severity.CRITICAL, "Member is extracted through a link that leaves the archive root", ANALYZER
)
ZIP_SYMLINK = Rule("MLG-ARC-006", Severity.HIGH, "Zip member is a Unix symbolic link", ANALYZER)
SPECIAL_FILE = Rule("MLG-ARC-007", Severity.HIGH, "Device, FIFO or socket member", ANALYZER)
ODD_MODE = Rule("MLG-ARC-008", Severity.LOW, "Member with setuid/setgid/sticky bits or world-writable", ANALYZER)
DUPLICATE = Rule(
    "MLG-ARC-009", Severity.HIGH, "Duplicate member names: loaders disagree on which copy they read", ANALYZER
)
NAME_MISMATCH = Rule(
    "MLG-ARC-010",
    Severity.HIGH,
    "Zip local header names a different file than the central directory",
    ANALYZER,
    cve=("CVE-2025-1944",),
)
ZIP_STRUCTURE = Rule(
    "MLG-ARC-011",
    Severity.HIGH,
    "Zip structure that readers disagree on (prefix data, extra end records, overlapping members)",
    ANALYZER,
)
ENCRYPTED = Rule(
    "MLG-ARC-012",
    Severity.MEDIUM,
    "Encrypted member: its content cannot be analyzed",
    ANALYZER,
    incomplete=True,
    cve=("CVE-2025-1945",),
)
UNSUPPORTED = Rule(
    "MLG-ARC-013",
    Severity.MEDIUM,
    "Member stored in a way mlgate cannot read (compression method, sparse file, size)",
    ANALYZER,
    incomplete=True,
)
ODD_NAME = Rule(
    "MLG-ARC-014", Severity.LOW, "Member name with shell expansions, control characters or excessive length", ANALYZER
)
EXPANSION = Rule(
    "MLG-ARC-015",
    Severity.HIGH,
    "Member name that shells expand: '~' (home directory), $VAR, ${VAR}, $(...) or %VAR%",
    ANALYZER,
)
