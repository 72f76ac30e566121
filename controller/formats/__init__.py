"""Report formats for ``mlgate scan``: text for people, JSON (the contract), SARIF 2.1.0.

Each format is a function ``(reports, colour) -> str``; ``FORMATS`` maps the
``--format`` name to it, and only the format asked for is imported.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up, issue 19)
if TYPE_CHECKING:
    from mlgate.analyzers.core.report import TargetReport

Formatter = Callable[["list[TargetReport]", bool], str]

FORMATS: dict[str, str] = {  # --format name -> "module:function", imported only when chosen
    "text": "text:render_text",
    "json": "json_report:render_json",
    "sarif": "sarif:render_sarif",
}


def formatter(name: str) -> Formatter:
    """The function rendering the named format."""
    module, _, function = FORMATS[name].partition(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), function)


def render(name: str, reports: list[TargetReport], colour: bool = False) -> str:
    """Render ``reports`` in the named format."""
    return formatter(name)(reports, colour)
