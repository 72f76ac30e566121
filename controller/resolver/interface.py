"""The resolver contract: ``Origin`` in, ``Resolution`` out, one ``Resolver`` per reference kind.

A ``Resolver`` answers one question, ``resolve(reference, origin)``: where are
the bytes this reference names, as a local folder or file to scan (or a part of
the model itself), or why can they not be had. Implementations (``hf``,
``local``, ``mlflow``, ``s3``) import this module only; ``registry`` wires them
together. A resolver may raise: the registry turns any exception into an
unresolved ``Resolution`` (and the default policy quarantines).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from mlgate.analyzers.core.references import Reference


@dataclass(frozen=True)
class Origin:
    """The model that names a reference: where its files are, to resolve relative paths against.

    ``root`` is the folder relative paths start from (the target folder, or the folder holding a
    single-file target); ``target`` is what was scanned. Models that are not on local disk (an S3
    model read in place) give ``members`` instead: the relative paths of their files.
    """

    root: Path | None = None
    target: Path | None = None
    members: frozenset[str] = frozenset()

    @classmethod
    def for_path(cls, path: str | os.PathLike[str]) -> Origin:
        target = Path(path)
        return cls(root=target if target.is_dir() else target.parent, target=target)


@dataclass
class Resolution:
    """What a resolver found. Exactly one of: unresolved (``reason``), part of the model, or a path to scan."""

    resolved: bool
    path: Path | None = None  # local copy to scan (folder or file)
    resolved_to: str = ""  # where it resolved, for people (cache folder, URI with version, object prefix)
    identity: str = ""  # stable id of the content source, for cycle detection and reuse within one scan
    reason: str = ""  # why unresolved; or a note for operators (unpinned, alias -> version)
    revision: str | None = None  # the immutable revision actually resolved (commit, model version)
    inside_target: str | None = None  # relative path, when the reference names a part of the model itself
    cleanup: Callable[[], None] | None = field(default=None, repr=False)  # removes a temporary copy

    def release(self) -> None:
        """Remove any temporary copy (safe to call twice)."""
        if self.cleanup is not None:
            done, self.cleanup = self.cleanup, None
            done()


def unresolved(reason: str) -> Resolution:
    return Resolution(resolved=False, reason=reason)


class Resolver(Protocol):
    """Resolves references of the kinds it is registered for."""

    def resolve(self, reference: Reference, origin: Origin) -> Resolution: ...
