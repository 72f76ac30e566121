"""Where verdict report documents are kept, and the ``mlgate.report`` tag that points at one.

* ``MlflowRunStore``: an artifact of the model version's run, ``mlgate/report-v<version>-<digest>.json``
  (location ``runs:/<run_id>/mlgate/...``). Used only when that folder lies outside the version's
  own artifacts (a model logged at the run's artifact root would otherwise change its own digest).
* ``S3ReportStore``: an object under a prefix (``s3://bucket/prefix/...``): the configured report
  store, and the S3 source's ``<reports_prefix><model root>`` next to each model.
* ``LocalReportStore``: a folder (the embedded demo registry keeps reports in its state dir).

The tag value is ``<location> sha256:<hex>``; ``load`` refuses a document whose bytes no longer hash
to it (someone with write access to the run or bucket edited the report).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Protocol

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_RUN_ROOTS = 4096  # run artifact roots remembered by a ReportKeeper


class ReportUnavailable(Exception):
    """A report cannot be stored or read back (one line for a person)."""


class ReportStore(Protocol):
    """Keeps report documents; ``put`` returns the location, ``get`` reads it back."""

    def put(self, relative: str, data: bytes) -> str: ...
    def get(self, location: str) -> bytes: ...


def encode_document(document: dict[str, Any]) -> bytes:
    return json.dumps(document, indent=2, sort_keys=False).encode("utf-8") + b"\n"


def tag_value(location: str, data: bytes) -> str:
    return f"{location} sha256:{hashlib.sha256(data).hexdigest()}"


def parse_tag(value: str) -> tuple[str, str]:
    """(location, sha256 hex or "") of an ``mlgate.report`` tag value."""
    location, _, digest = value.strip().partition(" sha256:")
    return location.strip(), digest.strip()


def safe_name(text: str) -> str:
    return _SAFE.sub("_", text).strip("_")[:120] or "model"


def load(stores: list[ReportStore], value: str) -> dict[str, Any]:
    """The document an ``mlgate.report`` tag points at, its hash checked. Raises ``ReportUnavailable``."""
    location, digest = parse_tag(value)
    errors = []
    for store in stores:
        try:
            data = store.get(location)
        except ReportUnavailable as exc:
            errors.append(str(exc))
            continue
        if digest and hashlib.sha256(data).hexdigest() != digest:
            raise ReportUnavailable(f"{location}: the stored report does not match the hash in its tag (edited?)")
        try:
            return json.loads(data)
        except ValueError:
            raise ReportUnavailable(f"{location}: not a JSON report") from None
    raise ReportUnavailable(errors[0] if errors else f"{location}: no report store can read it")


class LocalReportStore:
    """Reports as files under one folder; locations are ``file:`` paths."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def put(self, relative: str, data: bytes) -> str:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        return f"file:{path.resolve()}"

    def get(self, location: str) -> bytes:
        if not location.startswith("file:"):
            raise ReportUnavailable(f"{location}: not a local report")
        path = Path(location[len("file:") :]).resolve()
        if self.root.resolve() not in path.parents:
            raise ReportUnavailable(f"{location}: outside the report folder")
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ReportUnavailable(f"{location}: {exc.strerror or exc}") from None


class S3ReportStore:
    """Reports as objects under ``s3://bucket/prefix``."""

    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"

    def put(self, relative: str, data: bytes) -> str:
        key = self.prefix + relative
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType="application/json")
        return f"s3://{self.bucket}/{key}"

    def get(self, location: str) -> bytes:
        bucket, _, key = location.removeprefix("s3://").partition("/")
        if not location.startswith("s3://") or bucket != self.bucket or not key.startswith(self.prefix):
            raise ReportUnavailable(f"{location}: not in this report store")
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            raise ReportUnavailable(f"{location}: {exc}") from None


class MlflowRunStore:
    """Reports as artifacts of the model version's run (``runs:/<run_id>/mlgate/<file>``)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def put_for_run(self, run_id: str, filename: str, data: bytes) -> str:
        workdir = Path(tempfile.mkdtemp(prefix="mlgate-report-"))
        try:
            (workdir / filename).write_bytes(data)
            self.client.log_artifact(run_id, str(workdir / filename), "mlgate")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return f"runs:/{run_id}/mlgate/{filename}"

    def put(self, relative: str, data: bytes) -> str:  # pragma: no cover - the run is chosen per version
        raise ReportUnavailable("MlflowRunStore needs a run: use put_for_run")

    def get(self, location: str) -> bytes:
        if not location.startswith("runs:/"):
            raise ReportUnavailable(f"{location}: not a run artifact")
        run_id, _, path = location[len("runs:/") :].partition("/")
        if not path.startswith("mlgate/") or ".." in path.split("/"):
            raise ReportUnavailable(f"{location}: not an mlgate report artifact")
        workdir = tempfile.mkdtemp(prefix="mlgate-report-")
        try:
            local = self.client.download_artifacts(run_id, path, workdir)
            return Path(local).read_bytes()
        except Exception as exc:  # noqa: BLE001 - MLflow raises many types; one line for a person
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ReportUnavailable(f"{location}: {first}") from None
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def run_store_usable(client: Any, run_id: str | None, source: str, roots: dict[str, str] | None = None) -> bool:
    """True when ``runs:/<run_id>/mlgate/`` lies outside the version's artifacts ``source``.

    ``roots`` keeps the artifact root of each run already asked about (a run's root never changes
    and its id is never reused): one ``get_run`` per run, not per version."""
    if not run_id:
        return False
    root = roots.get(run_id) if roots is not None else None
    if root is None:
        try:
            root = str(client.get_run(run_id).info.artifact_uri).rstrip("/")
        except Exception:  # noqa: BLE001 - no run, no run store
            return False
        if roots is not None:
            if len(roots) >= _RUN_ROOTS:
                roots.clear()
            roots[run_id] = root
    source = str(source or "").rstrip("/")
    inside = (root + "/mlgate").startswith(source + "/") or source == root
    by_run = source.startswith(f"runs:/{run_id}") and source.rstrip("/") in (f"runs:/{run_id}", f"runs:/{run_id}/")
    by_mlgate = source.startswith(f"runs:/{run_id}/mlgate")
    return not (inside or by_run or by_mlgate)
