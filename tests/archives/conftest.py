"""Fixtures for the archive tests."""

from __future__ import annotations

import pytest

from mlgate.analyzers.core.walker import ScanContext


@pytest.fixture()
def walked(monkeypatch) -> dict[str, bytes]:
    """Location -> first 64 bytes of every artifact the walker visits (a spy: the real walk still runs)."""
    seen: dict[str, bytes] = {}
    real_walk = ScanContext.walk

    def spy(self: ScanContext, artifact) -> None:
        try:
            with artifact.open() as stream:
                seen[artifact.location] = stream.read(64)
        except OSError:
            seen[artifact.location] = b""
        real_walk(self, artifact)

    monkeypatch.setattr(ScanContext, "walk", spy)
    return seen
