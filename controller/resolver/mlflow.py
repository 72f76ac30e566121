"""MLflow references (``models:/name/version``, ``models:/name@alias``, ``runs:/id/path``, ``mlflow-artifacts:/``).

Resolved through the MLflow client against ``MLFLOW_TRACKING_URI`` (and
``MLFLOW_REGISTRY_URI`` when set): an alias is first looked up to the version it
points at now (reported, since the alias can move), then
``mlflow.artifacts.download_artifacts`` copies the artifacts into a private
temporary folder, which is scanned and deleted. Without a tracking URI nothing
is contacted and the reference stays unresolved.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from mlgate.analyzers.core.references import Reference

from ..config.environment import MLFLOW_CLIENT_DEFAULTS, set_library_defaults
from .interface import Origin, Resolution, unresolved


class MlflowResolver:
    """Downloads MLflow artifacts a reference names into a temporary folder."""

    def __init__(self, tracking_uri: str | None, registry_uri: str | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri

    def prepare(self) -> None:
        """Import MLflow ahead of the first reference (a scan still walking)."""
        if self.tracking_uri:
            import mlflow.exceptions  # noqa: F401

    def resolve(self, reference: Reference, origin: Origin) -> Resolution:
        uri = reference.ref.strip()
        if not self.tracking_uri:
            return unresolved(f"MLFLOW_TRACKING_URI is not set, so {uri} cannot be looked up")
        set_library_defaults(MLFLOW_CLIENT_DEFAULTS)
        from mlflow.exceptions import MlflowException

        try:
            pinned, source, note = self._locate(uri)
        except MlflowException as exc:
            return unresolved(f"MLflow could not resolve {uri}: {_first_line(exc)}")
        workdir = tempfile.mkdtemp(prefix="mlgate-dep-")
        try:
            local = self._download(source, workdir)
        except MlflowException as exc:
            shutil.rmtree(workdir, ignore_errors=True)
            return unresolved(f"MLflow could not provide {pinned}: {_first_line(exc)}")
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        return Resolution(
            resolved=True,
            path=Path(local),
            resolved_to=pinned,
            identity=pinned,
            reason=note,
            revision=_version(pinned),
            cleanup=lambda: shutil.rmtree(workdir, ignore_errors=True),
        )

    def _locate(self, uri: str) -> tuple[str, str, str]:
        """(pinned URI for people, artifact URI to download, note) for a reference.

        ``models:/`` is looked up here with this resolver's registry (MLflow's own models:/ download
        reads only the process-wide registry URI): an alias or stage becomes the version it points at.
        """
        if not uri.startswith("models:"):
            return uri, uri, ""
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri or self.tracking_uri)
        head, _, rest = uri[len("models:") :].lstrip("/").partition("/")
        note = ""
        if "@" in head:
            name, alias = head.split("@", 1)
            version = str(client.get_model_version_by_alias(name, alias).version)
            note = f"alias @{alias} pointed at version {version} when scanned (an alias can move)"
            path = rest
        elif head.startswith("m-") and not rest:
            return uri, client.get_logged_model(head).artifact_location, ""
        else:
            name, (selector, _, path) = head, rest.partition("/")
            if selector.isdigit():
                version = selector
            else:
                (latest,) = client.get_latest_versions(name, [selector])
                version = str(latest.version)
                note = f"stage {selector} pointed at version {version} when scanned (a stage can move)"
        source = client.get_model_version_download_uri(name, version).rstrip("/")
        suffix = f"/{path}" if path else ""
        return f"models:/{name}/{version}{suffix}", source + suffix, note

    def _download(self, uri: str, workdir: str) -> str:
        from mlflow.artifacts import download_artifacts

        return download_artifacts(
            artifact_uri=uri,
            dst_path=workdir,
            tracking_uri=self.tracking_uri,
            registry_uri=self.registry_uri or self.tracking_uri,
        )


def _version(uri: str) -> str | None:
    parts = uri.split("/")
    return parts[2] if uri.startswith("models:/") and len(parts) > 2 and parts[2].isdigit() else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
