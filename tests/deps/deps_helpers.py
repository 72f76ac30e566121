"""Shared helpers for the dependency tests: fixture paths and a Hugging Face hub cache builder.

The cache follows huggingface_hub's layout exactly (``models--org--name/{blobs,refs,snapshots}``,
snapshot files as relative symlinks into ``blobs/``, ``refs/<branch>`` holding the commit), and
``test_hub_cache_layout_is_real`` checks huggingface_hub's own ``scan_cache_dir`` reads it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "deps"
HUB = FIXTURES / "hub"
MODELS = FIXTURES / "models"
GGUF = FIXTURES / "gguf"
CLEAN_BASE_COMMIT = "0123456789abcdef0123456789abcdef01234567"


def commit_for(repo_id: str) -> str:
    """A stable fake commit id per repo."""
    return hashlib.sha1(repo_id.encode()).hexdigest()


def install_repo(
    cache: Path, repo_id: str, source: Path, commit: str | None = None, branch: str | None = "main"
) -> Path:
    """Put the files of ``source`` into ``cache`` as huggingface_hub would after a download; return the snapshot."""
    commit = commit or commit_for(repo_id)
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    for file in sorted(p for p in source.rglob("*") if p.is_file()):
        data = file.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / file.relative_to(source)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    if branch:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / branch).write_text(commit)  # huggingface_hub writes no trailing newline
    return snapshot
