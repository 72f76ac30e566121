"""Hugging Face hub ids, resolved from the local hub cache only (never the network).

The cache is ``HF_HUB_CACHE``, else ``HF_HOME/hub``, else
``~/.cache/huggingface/hub`` (huggingface_hub's own rule). A reference resolves
to ``models--<org>--<name>/snapshots/<commit>``: a 40-character revision names
the snapshot directly, a branch or tag (``main`` when the model pins nothing)
goes through ``refs/<name>``. ``huggingface_hub.snapshot_download`` does the
lookup with ``local_files_only=True`` (and ``HF_HUB_OFFLINE=1`` is set before
huggingface_hub is imported), so a missing or incomplete snapshot is an
unresolved dependency with the reason, not a download.
"""

from __future__ import annotations

from pathlib import Path

from mlgate.analyzers.configs.sites import COMMIT
from mlgate.analyzers.core.references import Reference

from ..config.environment import force
from .interface import Origin, Resolution, unresolved


class HubCacheResolver:
    """Resolves ``hf`` references to snapshot folders of one local hub cache."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir

    def resolve(self, reference: Reference, origin: Origin) -> Resolution:
        force("HF_HUB_OFFLINE", "1")  # before the first import of huggingface_hub: no network, ever
        from huggingface_hub import errors as hf_errors
        from huggingface_hub import snapshot_download

        revision = reference.revision or "main"
        expected = tuple(
            getattr(hf_errors, name)
            for name in ("LocalEntryNotFoundError", "HFValidationError", "IncompleteSnapshotError")
            if hasattr(hf_errors, name)
        )
        try:
            folder = snapshot_download(
                reference.ref, revision=revision, cache_dir=str(self.cache_dir), local_files_only=True
            )
        except expected as exc:
            return unresolved(self._why(reference.ref, revision, exc))
        snapshot = Path(str(folder))
        commit = snapshot.name
        note = ""
        if not COMMIT.match(revision):
            note = f"not pinned: {revision!r} resolved to commit {commit} in the local cache (the hub may have moved)"
        return Resolution(
            resolved=True,
            path=snapshot,
            resolved_to=str(snapshot),
            identity=f"hf:{reference.ref}@{commit}",
            reason=note,
            revision=commit,
        )

    def _why(self, repo: str, revision: str, exc: Exception) -> str:
        name = type(exc).__name__
        if name == "HFValidationError":
            return f"{repo!r} is not a valid Hugging Face repo id"
        if name == "IncompleteSnapshotError":
            return f"the cached snapshot of {repo}@{revision} in {self.cache_dir} is incomplete (files missing)"
        return (
            f"{repo}@{revision} is not in the Hugging Face cache {self.cache_dir}; mlgate resolves hub ids offline "
            "only (download it on a trusted machine and point HF_HUB_CACHE at that cache)"
        )
