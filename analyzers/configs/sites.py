"""Recording what a config names elsewhere: other models, code files, paths, URLs.

Config analyzers call ``Site.dependency`` for every field that makes a loader
fetch another model, and ``Site.code_file`` for every Python module a loader
imports from the model's own files. Both classify the value (Hugging Face id,
MLflow URI, ``s3://``, other URL, local path), record a ``Reference`` for the
resolver, and return the findings the value earns by itself: unpinned
revisions, absolute or escaping paths, URLs fetched at load. Other analyzers
(Keras ``TFSMLayer`` paths, ONNX external data) can use the same ``Site``.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from ..core.artifact import Artifact
from ..core.findings import Finding, Rule, Severity
from ..core.references import Reference, RefKind
from ..core.walker import ScanContext

UNPINNED = Rule("MLG-DEP-001", Severity.LOW, "Dependency is not pinned to an immutable revision", "configs")
HOST_PATH = Rule("MLG-DEP-002", Severity.MEDIUM, "Dependency on an absolute path of the loading machine", "configs")
ESCAPES = Rule("MLG-DEP-003", Severity.HIGH, "Path reference escapes the model folder", "configs")
URL_FETCH = Rule("MLG-DEP-004", Severity.MEDIUM, "Dependency fetched from a URL at load time", "configs")
REMOTE_CODE = Rule(
    "MLG-CODE-010", Severity.MEDIUM, "Config makes the loader import Python code shipped with a model", "configs"
)

HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}(/[\w.-]{1,96})?$")
COMMIT = re.compile(r"^[0-9a-f]{40}$")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_MLFLOW_SCHEMES = ("models", "runs", "mlflow-artifacts")
_MLFLOW_STAGES = frozenset({"latest", "production", "staging", "none", "archived"})
_PLAIN_SCHEMES = frozenset({"http", "ftp"})
_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")


@dataclass(frozen=True)
class Classified:
    """A reference value, classified."""

    kind: RefKind
    ref: str
    revision: str | None


def classify(value: str, revision: str | None = None, hub_ids: bool = True) -> Classified:
    """What kind of thing ``value`` (a config field naming another model) points at.

    ``hub_ids=False`` for fields a loader opens as a path or URL only (Keras ``TFSMLayer.filepath``):
    a bare ``org/name`` there is a local path, never a Hugging Face repo.
    """
    text = value.strip()
    match = _SCHEME.match(text)
    if match and not _DRIVE.match(text):
        scheme = match.group(1).lower()
        if scheme in _MLFLOW_SCHEMES:
            return Classified(RefKind.MLFLOW, text, revision)
        if scheme in ("s3", "s3a"):
            return Classified(RefKind.S3, "s3://" + text.split("://", 1)[-1], revision)
        if scheme == "hf":
            repo = text.split("://", 1)[-1] if "://" in text else text[3:]
            return _hub(repo, revision)
        if scheme == "file":
            return Classified(RefKind.LOCAL, text.split("://", 1)[-1] if "://" in text else text[5:], revision)
        return Classified(RefKind.URL, text, revision)
    if not hub_ids or _is_host_path(text) or text.startswith(("./", "../", ".\\", "..\\")) or text in (".", ".."):
        return Classified(RefKind.LOCAL, text, revision)
    hub = _hub(text, revision)
    if HF_ID.match(hub.ref):
        return hub
    return Classified(RefKind.LOCAL, text, revision)


def _hub(text: str, revision: str | None) -> Classified:
    repo, sep, rev = text.partition("@")
    return Classified(RefKind.HF, repo, (rev if sep else None) or revision)


def _is_host_path(text: str) -> bool:
    return text.startswith(("/", "~", "\\\\")) or bool(_DRIVE.match(text))


def relative_inside(base_name: str, value: str) -> str | None:
    """``value`` (relative to the folder of ``base_name``) as a normalised path, or None if it escapes."""
    folder = PurePosixPath(base_name.replace("\\", "/")).parent.as_posix()
    joined = posixpath.normpath(posixpath.join(folder, value.replace("\\", "/")))
    if joined == ".." or joined.startswith("../"):
        return None
    return joined


class Site:
    """One config artifact being read: builds locations, records references and their findings."""

    def __init__(self, artifact: Artifact, ctx: ScanContext) -> None:
        self.artifact = artifact
        self.ctx = ctx

    @property
    def file_name(self) -> str:
        """The config's own file name (``adapter_config.json``)."""
        return PurePosixPath(self.artifact.name).name

    def at(self, path: str) -> str:
        """Location of a field: ``sub/config.json#auto_map.AutoModel``."""
        return f"{self.artifact.location}#{path}" if path else self.artifact.location

    def dependency(
        self,
        value: str,
        path: str,
        revision: str | None = None,
        what: str = "loads",
        path_severity: Severity | None = None,
    ) -> list[Finding]:
        """Record the model (or file) a loader fetches because of field ``path``; findings it earns."""
        item = classify(value, revision)
        where = self.at(path)
        field = path.rsplit(".", 1)[-1]
        self.ctx.add_reference(Reference(item.kind, item.ref, where, field=field, revision=item.revision))
        if item.kind is RefKind.HF:
            return self._hub_findings(item, where, what)
        if item.kind is RefKind.MLFLOW:
            return self._mlflow_findings(item, where)
        if item.kind is RefKind.S3:
            return [
                UNPINNED.finding(
                    where, f"{what} {item.ref}: an S3 object can change after it is scanned (no version pinned)"
                )
            ]
        if item.kind is RefKind.URL:
            scheme = item.ref.split(":", 1)[0].lower()
            severity = Severity.HIGH if scheme in _PLAIN_SCHEMES else None
            note = " over an unencrypted connection" if severity else ""
            return [URL_FETCH.finding(where, f"{what} {item.ref} from the network{note}", severity=severity)]
        return self.path_findings(item.ref, where, what, path_severity)

    def code_file(self, relative: str, path: str, detail: str) -> list[Finding]:
        """Record a Python file or folder of this model that a loader imports; findings it earns."""
        where = self.at(path)
        field = path.rsplit(".", 1)[-1]
        self.ctx.add_reference(Reference(RefKind.CODE, relative, where, field=field))
        inside = self.shipped(relative)
        if inside is not None:
            # The code is part of this model and scanned with it: inventory, its own findings tell the rest.
            detail = f"{detail}; {inside} ships with the model and was scanned (see its own findings)"
            findings = [REMOTE_CODE.finding(where, detail, severity=Severity.LOW)]
        else:
            findings = [self.remote_code(path, detail)]
        findings.extend(self.path_findings(relative, where, "imports code from", Severity.HIGH))
        return findings

    def shipped(self, relative: str) -> str | None:
        """``relative`` (from this config's folder) as a path of the model, when the model holds it."""
        if self.artifact.parent is not None:
            return None  # inside an archive: the top-level file list says nothing about its members
        path = relative_inside(self.artifact.name, relative)
        return path if path is not None and self.ctx.ships(path) else None

    def remote_code(self, path: str, detail: str) -> Finding:
        """The inventory finding for code a loader imports because of field ``path``."""
        return REMOTE_CODE.finding(self.at(path), detail)

    def path_findings(self, value: str, where: str, what: str, severity: Severity | None = None) -> list[Finding]:
        """Findings for a local path: absolute (host file) or escaping the model folder."""
        if _is_host_path(value):
            return [
                HOST_PATH.finding(
                    where,
                    f"{what} {value}: an absolute path names whatever is on the loading machine, not this model",
                    severity=severity,
                )
            ]
        if relative_inside(self.artifact.name, value) is None:
            return [ESCAPES.finding(where, f"{what} {value}, which is outside the model folder")]
        return []

    def _hub_findings(self, item: Classified, where: str, what: str) -> list[Finding]:
        if item.revision and COMMIT.match(item.revision):
            return []
        pinned = f"revision {item.revision!r} is a branch or tag" if item.revision else "no revision is pinned"
        return [
            UNPINNED.finding(
                where,
                f"{what} Hugging Face repo {item.ref}; {pinned}, so it resolves to whatever it points at "
                "when the model is loaded (pin a 40-character commit)",
            )
        ]

    def _mlflow_findings(self, item: Classified, where: str) -> list[Finding]:
        name_part = item.ref.split(":/", 1)[-1].strip("/")
        if item.ref.startswith("models:") and (
            "@" in name_part or name_part.rsplit("/", 1)[-1].lower() in _MLFLOW_STAGES
        ):
            return [
                UNPINNED.finding(
                    where, f"loads {item.ref}: an alias or stage can be moved to another version after the scan"
                )
            ]
        return []
