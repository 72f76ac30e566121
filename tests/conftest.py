"""Suite-wide fixtures: the canary check that proves no malicious payload ever ran.

Every malicious fixture's payload, if executed, creates a file in ``CANARY_DIR``
(``touch /tmp/mlgate-canary/<fixture>``). The suite fails at the end if any exists.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CANARY_DIR = Path(os.environ.get("MLGATE_CANARY_DIR", "/tmp/mlgate-canary"))


@pytest.fixture(scope="session", autouse=True)
def no_payload_ever_runs():
    """Fail the session if any malicious fixture's payload created its canary file."""
    if CANARY_DIR.exists():
        for stale in CANARY_DIR.iterdir():
            stale.unlink()
    yield
    fired = sorted(p.name for p in CANARY_DIR.iterdir()) if CANARY_DIR.exists() else []
    assert not fired, f"malicious payloads executed during the test session: {fired}"
