"""Plain text files: the secrets they hold, and the few a loader acts on by name.

``requirements*.txt`` / ``constraints.txt`` (pip), ``pickle_module_info.txt`` (MLflow PyTorch) and
``*.jinja`` chat templates are checked by the modules that know them, imported for those names only:
a model's other text files (a torch zip's ``version``, a model card) need neither the YAML parser
nor the config handlers.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

from ..core.artifact import Artifact, read_exact
from ..core.budget import BudgetExceeded
from ..core.findings import Finding
from ..core.kinds import Kind, posix_name
from ..core.registry import register
from ..core.walker import ScanContext

MAX_TEXT_BYTES = 1 << 20
"""Requirements files, pickle module names and chat templates larger than this are not read (incomplete)."""

REQUIREMENT_FILES = ("requirements*.txt", "*-requirements.txt", "*_requirements.txt", "constraints.txt")
"""pip requirement files, by the names MLflow and model repos give them."""


@register(Kind.TEXT, "configs")
def analyze_text(artifact: Artifact, ctx: ScanContext) -> Iterable[Finding]:
    name = posix_name(artifact.name)
    lower = name.lower()
    text = _text(artifact, ctx)  # read once: the secrets pass and the checks below share it
    ctx.observe_document(artifact.location, text, reachable=False)  # cards, notes, lists
    if lower.endswith(".txt") and any(fnmatch.fnmatchcase(lower, pattern) for pattern in REQUIREMENT_FILES):
        from .mlflow_model import requirement_findings

        lines = [(f"{artifact.location}:{n}", line) for n, line in enumerate(text.splitlines(), 1)]
        yield from requirement_findings(lines, artifact.location)
    elif name == "pickle_module_info.txt":
        from .mlflow_model import pickle_module_findings

        yield from pickle_module_findings(text, artifact.location)
    elif lower.endswith(".jinja"):
        from ..embedded_code.templates import lint_template  # jinja2 loads with the first template

        yield from lint_template(text, artifact.location)


def read_bounded(artifact: Artifact, ctx: ScanContext, limit: int, budget: str) -> bytes:
    """The whole artifact, or ``BudgetExceeded(budget)`` when it is larger than ``limit`` bytes."""
    with ctx.open(artifact) as stream:
        data = read_exact(stream, limit + 1)
    if len(data) > limit:
        raise BudgetExceeded(budget, f"{artifact.name} is larger than {limit} bytes and was not parsed")
    return data


def _text(artifact: Artifact, ctx: ScanContext) -> str:
    return read_bounded(artifact, ctx, MAX_TEXT_BYTES, "text_bytes").decode("utf-8", "replace")
