"""Report formats for ``mlgate scan``: text for people, JSON (the contract), SARIF 2.1.0.

Each format is a function ``(reports, colour) -> str``; ``FORMATS`` maps the
``--format`` name to it.
"""

from __future__ import annotations

from collections.abc import Callable

from mlgate.analyzers.core.report import TargetReport

from .json_report import render_json
from .sarif import render_sarif
from .text import render_text

Formatter = Callable[[list[TargetReport], bool], str]

FORMATS: dict[str, Formatter] = {
    "text": render_text,
    "json": render_json,
    "sarif": render_sarif,
}


def render(name: str, reports: list[TargetReport], colour: bool = False) -> str:
    """Render ``reports`` in the named format."""
    return FORMATS[name](reports, colour)
