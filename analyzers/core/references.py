"""References: what a model says it needs from elsewhere (another model, remote code).

Analyzers record references; they never resolve them (no network, no I/O
outside the artifact). The controller's resolver turns each into an artifact,
scans it with the same rules, and reports it in the target's ``dependencies``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class RefKind(enum.Enum):
    """Where a reference points."""

    HF = "hf"  # Hugging Face hub repo id, optionally with a revision
    MLFLOW = "mlflow"  # models:/name/version, models:/name@alias, runs:/id/path
    S3 = "s3"  # s3://bucket/key
    LOCAL = "local"  # a path on the loading machine (relative to the model, or absolute)
    URL = "url"  # http(s) or other URL fetched at load or install time
    CODE = "code"  # Python code the loader imports (auto_map, loader_module, custom pipelines)


@dataclass(frozen=True)
class Reference:
    """One dependency named inside a model."""

    kind: RefKind
    ref: str  # the reference as written, normalised (``acme/base-model``, ``models:/fraud/3``)
    location: str  # where in the target it was found (artifact location and field)
    field: str = ""  # the config key that named it (``base_model_name_or_path``)
    revision: str | None = None  # pinned revision/commit when the model names one

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"ref": self.ref, "kind": self.kind.value, "location": self.location}
        if self.field:
            out["field"] = self.field
        if self.revision:
            out["revision"] = self.revision
        return out
