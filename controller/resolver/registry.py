"""Dispatch on ``RefKind`` to one resolver per source, and the default set for this environment.

* ``hf``     Hugging Face hub ids, from the local hub cache only (``hf``)
* ``mlflow`` ``models:/``, ``runs:/``, ``mlflow-artifacts:/`` through MLflow (``mlflow``)
* ``s3``     ``s3://`` objects and prefixes through boto3 (``s3``)
* ``local``/``code`` paths relative to the model that names them (``local``)

URLs have no resolver: mlgate never downloads from the web during a scan, so
they stay unresolved (and the default policy quarantines). ``default_resolver``
builds the registry from the environment (``HF_HUB_CACHE``/``HF_HOME``,
``MLFLOW_TRACKING_URI``, ``AWS_ENDPOINT_URL``); the CLI and the controllers use
it, and callers can pass their own registry with other sources.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from mlgate.analyzers.core.references import Reference, RefKind

from ..config.environment import hub_cache_dir, mlflow_uris
from ..config.environment import s3_endpoint_url as environment_s3_endpoint
from .hf import HubCacheResolver
from .interface import Origin, Resolution, Resolver, unresolved
from .local import LocalResolver
from .mlflow import MlflowResolver
from .s3 import S3Resolver

log = logging.getLogger(__name__)

_NO_SOURCE = {
    RefKind.URL: "mlgate never downloads from URLs during a scan; the loader fetches this at load time, unscanned",
}


class ResolverRegistry:
    """Dispatches each reference to the resolver registered for its kind; failures become unresolved."""

    def __init__(self, sources: Mapping[RefKind, Resolver]) -> None:
        self.sources = dict(sources)

    def prepare(self, kinds: set[RefKind]) -> None:
        """Let the resolvers of ``kinds`` load what they need (boto3, MLflow) before the first reference
        comes (``scanning`` calls it on a thread while a target's files are still being walked)."""
        for kind in kinds:
            prepare = getattr(self.sources.get(kind), "prepare", None)
            if prepare is not None:
                try:
                    prepare()
                except Exception:  # the reference's own resolution reports what is wrong
                    log.debug("preparing the %s resolver failed", kind.value, exc_info=True)

    def resolve(self, reference: Reference, origin: Origin) -> Resolution:
        source = self.sources.get(reference.kind)
        if source is None:
            return unresolved(
                _NO_SOURCE.get(reference.kind, f"no resolver configured for {reference.kind.value} references")
            )
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
    local = LocalResolver()
    return ResolverRegistry(
        {
            RefKind.HF: HubCacheResolver(Path(hf_cache) if hf_cache else hub_cache_dir(environ)),
            RefKind.MLFLOW: MlflowResolver(
                tracking_uri or mlflow_uris(environ)[0] or None,
                registry_uri or mlflow_uris(environ)[1] or None,
            ),
            RefKind.S3: S3Resolver(s3_endpoint_url or environment_s3_endpoint(environ)),
            RefKind.LOCAL: local,
            RefKind.CODE: local,
        }
    )
