"""Dependency resolution: turn a ``Reference`` a model makes into something mlgate can scan.

A ``Resolver`` answers one question, ``resolve(reference, origin)``: where are
the bytes this reference names, as a local folder or file to scan (or a part of
the model itself), or why can they not be had. ``ResolverRegistry`` dispatches
on ``RefKind`` to one resolver per source:

* ``hf``     Hugging Face hub ids, from the local hub cache only (``resolver_hf``)
* ``mlflow`` ``models:/``, ``runs:/``, ``mlflow-artifacts:/`` through MLflow (``resolver_mlflow``)
* ``s3``     ``s3://`` objects and prefixes through boto3 (``resolver_s3``)
* ``local``/``code`` paths relative to the model that names them (``resolver_local``)

URLs have no resolver: mlgate never downloads from the web during a scan, so
they stay unresolved (and the default policy quarantines). ``default_resolver``
builds the registry from the environment (``HF_HUB_CACHE``/``HF_HOME``,
``MLFLOW_TRACKING_URI``, ``AWS_ENDPOINT_URL``); the CLI and the controllers use
it, and callers can pass their own registry with other sources.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from mlgate.analyzers.core.references import Reference, RefKind

log = logging.getLogger(__name__)


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


_NO_SOURCE = {
    RefKind.URL: "mlgate never downloads from URLs during a scan; the loader fetches this at load time, unscanned",
}


class ResolverRegistry:
    """Dispatches each reference to the resolver registered for its kind; failures become unresolved."""

    def __init__(self, sources: Mapping[RefKind, Resolver]) -> None:
        self.sources = dict(sources)

    def resolve(self, reference: Reference, origin: Origin) -> Resolution:
        source = self.sources.get(reference.kind)
        if source is None:
            return unresolved(_NO_SOURCE.get(reference.kind, f"no resolver configured for {reference.kind.value} references"))
        try:
            return source.resolve(reference, origin)
        except Exception as exc:
            log.debug("resolver for %s failed on %s", reference.kind.value, reference.ref, exc_info=True)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return unresolved(f"{reference.kind.value} resolver failed: {type(exc).__name__}: {first}".rstrip(": "))


def default_resolver(
    tracking_uri: str | None = None,
    registry_uri: str | None = None,
    hf_cache: str | os.PathLike[str] | None = None,
    s3_endpoint_url: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> ResolverRegistry:
    """The resolver registry for this environment; arguments override the environment variables."""
    from mlgate.controller.resolver_hf import HubCacheResolver, hub_cache_dir
    from mlgate.controller.resolver_local import LocalResolver
    from mlgate.controller.resolver_mlflow import MlflowResolver
    from mlgate.controller.resolver_s3 import S3Resolver

    env = os.environ if environ is None else environ
    local = LocalResolver()
    return ResolverRegistry(
        {
            RefKind.HF: HubCacheResolver(Path(hf_cache) if hf_cache else hub_cache_dir(env)),
            RefKind.MLFLOW: MlflowResolver(
                tracking_uri or env.get("MLFLOW_TRACKING_URI") or None,
                registry_uri or env.get("MLFLOW_REGISTRY_URI") or None,
            ),
            RefKind.S3: S3Resolver(s3_endpoint_url or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")),
            RefKind.LOCAL: local,
            RefKind.CODE: local,
        }
    )
