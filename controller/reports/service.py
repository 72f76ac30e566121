"""The controller's report keeper: stores each verdict's report, remembers recent ones, serves them over HTTP.

Sources call ``keep_mlflow`` / ``keep_s3`` when they record a verdict; the returned value goes in the
``mlgate.report`` tag. ``install`` adds the routes to the controller's HTTP server:

* ``GET /reports`` (and ``/reports/``): recent verdicts, filters ``?verdict=`` and ``?source=``;
  ``/reports/index.json`` the same as JSON;
* ``GET /reports/mlflow/<name>/<version>``: the report page of a model version;
* ``GET /reports/s3/<bucket>/<model root>``: the report page of an S3 model;

each page as JSON with ``?format=json`` (or ``Accept: application/json``). A page reads the subject's
``mlgate.report`` tag now, loads the document (hash checked) and adds what the registry says now:
whether the verdict tags still verify, and the current state of every reviewed exception.
"""

from __future__ import annotations

import collections
import json
import logging
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

from mlgate.analyzers.core.policy import Policy
from mlgate.analyzers.core.report import TargetReport

from ..runtime.http_server import HttpRequest, HttpServer, Response
from ..runtime.logging_json import fields
from ..verdicts.exceptions import ExceptionState, read_exceptions
from ..verdicts.tags import REPORT, check_verdict, summarize_findings
from .document import build_document
from .html import page_path, render_index, render_report
from .store import (
    LocalReportStore,
    MlflowRunStore,
    ReportStore,
    ReportUnavailable,
    S3ReportStore,
    encode_document,
    load,
    run_store_usable,
    safe_name,
    tag_value,
)

log = logging.getLogger("mlgate.reports")

BASE = "/reports"
RECENT = 500
JSON_TYPE = "application/json"
HTML_TYPE = "text/html; charset=utf-8"


@dataclass
class _S3Bucket:
    client: Any
    prefix: str


@dataclass
class ReportKeeper:
    """See the module docstring. ``store``: the configured report store (None: per-source default)."""

    policy: Policy
    key: bytes
    fallback: ReportStore
    store: ReportStore | None = None
    mlflow_client: Any = None
    recent: collections.deque[dict[str, str]] = field(default_factory=lambda: collections.deque(maxlen=RECENT))
    s3: dict[str, _S3Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _run_roots: dict[str, str] = field(default_factory=dict)  # run id -> artifact root

    # -- writing --------------------------------------------------------------------------------

    def keep_mlflow(
        self,
        client: Any,
        name: str,
        version: str,
        report: TargetReport,
        exceptions: list[ExceptionState],
        run_id: str | None = None,
        source: str = "",
    ) -> str:
        """Store the report of a model version's verdict; the ``mlgate.report`` tag value."""
        subject = {"source": "mlflow", "ref": f"models:/{name}/{version}", "name": name, "version": str(version)}
        document = build_document(report, subject, self.policy, [s.to_dict() for s in exceptions])
        data = encode_document(document)
        filename = f"report-v{version}-{_stamp(document, report)}.json"
        if self.store is not None:
            location = self.store.put(f"mlflow/{safe_name(name)}/{version}/{filename}", data)
        elif run_store_usable(client, run_id, source, self._run_roots):
            location = MlflowRunStore(client).put_for_run(str(run_id), filename, data)
        else:
            location = self.fallback.put(f"mlflow/{safe_name(name)}/{version}/{filename}", data)
        self._remember(document, report)
        return tag_value(location, data)

    def keep_s3(self, client: Any, bucket: str, prefix: str, root: str, report: TargetReport) -> str:
        """Store the report of an S3 model's verdict next to it under ``prefix``; the tag value."""
        self.s3.setdefault(bucket, _S3Bucket(client, prefix))
        subject = {"source": "s3", "ref": f"s3://{bucket}/{root}", "bucket": bucket, "root": root}
        document = build_document(report, subject, self.policy)
        data = encode_document(document)
        short = _stamp(document, report)
        relative = f"{root}report-{short}.json" if root.endswith("/") or not root else f"{root}.report-{short}.json"
        store = self.store or S3ReportStore(client, bucket, prefix)
        location = store.put(relative if self.store is None else f"s3/{bucket}/{relative}", data)
        self._remember(document, report)
        return tag_value(location, data)

    def register_bucket(self, bucket: str, client: Any, prefix: str) -> None:
        self.s3[bucket] = _S3Bucket(client, prefix)

    def _remember(self, document: Mapping[str, Any], report: TargetReport) -> None:
        subject = document["subject"]
        row = {
            "recorded_at": document["recorded_at"],
            "verdict": document["verdict"],
            "source": subject["source"],
            "ref": subject["ref"],
            "digest": report.digest,
            "summary": summarize_findings(report),
            "url": page_path(subject, BASE),
        }
        with self._lock:
            self.recent.appendleft(row)

    # -- reading --------------------------------------------------------------------------------

    def stores(self, client: Any = None) -> list[ReportStore]:
        out: list[ReportStore] = [self.store] if self.store is not None else []
        if client is not None:
            out.append(MlflowRunStore(client))
        out.append(self.fallback)
        out.extend(S3ReportStore(b.client, name, b.prefix) for name, b in self.s3.items())
        return out

    def mlflow_document(self, name: str, version: str, client: Any = None) -> dict[str, Any]:
        """The report of a model version's current verdict, with the registry's live state. Raises LookupError."""
        client = client or self.mlflow_client
        if client is None:
            raise LookupError("no MLflow registry is configured")
        try:
            mv = client.get_model_version(name, version)
        except Exception as exc:  # noqa: BLE001 - MLflow raises many types; one line for a person
            raise LookupError(f"models:/{name}/{version}: {str(exc).splitlines()[0] if str(exc) else exc}") from None
        tags = dict(mv.tags or {})
        return self._document(tags, f"models:/{name}/{version}", name, str(mv.version), client)

    def _document(self, tags: Mapping[str, str], ref: str, name: str, version: str, client: Any) -> dict[str, Any]:
        value = tags.get(REPORT)
        if not value:
            raise LookupError(f"{ref} has no mlgate.report tag (not scanned by a controller that keeps reports)")
        try:
            document = load(self.stores(client), value)
        except ReportUnavailable as exc:
            raise LookupError(str(exc)) from None
        check = check_verdict(self.key, name, version, tags)
        digest = check.signed.digest if check.signed else str(document.get("report", {}).get("digest", ""))
        live = {"state": check.state.value, "note": "(verdict tags verified with the controller's key)"}
        if check.signed is None:
            live["note"] = "(no valid signed verdict on the version now: it counts as not scanned)"
        elif check.signed.verdict.value != document.get("verdict") or check.signed.digest != digest:
            live["note"] = "(the registry's verdict differs from this report: a newer scan is pending)"
        document["live"] = live
        document["exceptions"] = [s.to_dict() for s in read_exceptions(self.key, name, version, digest, tags)]
        return document

    def s3_document(self, bucket: str, root: str) -> dict[str, Any]:
        from ..s3.grouping import list_objects
        from ..s3.object_tags import object_name, read_tags

        known = self.s3.get(bucket)
        if known is None:
            raise LookupError(f"s3://{bucket}/{root}: bucket not watched by this controller")
        objects = [o for o in list_objects(known.client, bucket, root) if root.endswith("/") or o.key == root]
        if not objects:
            raise LookupError(f"s3://{bucket}/{root}: no such model")
        first = objects[0]
        tags = read_tags(known.client, bucket, first.key)
        document = self._document(tags, f"s3://{bucket}/{root}", object_name(bucket, first.key), first.etag, None)
        document.pop("exceptions", None)
        return document

    # -- HTTP -----------------------------------------------------------------------------------

    def install(self, http: HttpServer) -> None:
        http.add_route("GET", BASE, self.handle)
        http.add_prefix_route("GET", BASE + "/", self.handle)

    def handle(self, request: HttpRequest) -> Response:
        query = {k: v[-1] for k, v in parse_qs(request.query).items()}
        want_json = query.get("format") == "json" or JSON_TYPE in (request.headers.get("Accept") or "")
        rest = request.path[len(BASE) :].strip("/")
        if rest in ("", "index.json"):
            return self._index(query, want_json or rest == "index.json")
        kind, _, tail = rest.partition("/")
        try:
            if kind == "mlflow":
                name, _, version = tail.rpartition("/")
                document = self.mlflow_document(unquote(name), unquote(version))
            elif kind == "s3":
                bucket, _, root = tail.partition("/")
                if request.path.endswith("/") and root:
                    root += "/"
                document = self.s3_document(unquote(bucket), unquote(root))
            else:
                return 404, "text/plain", b"not found\n"
        except LookupError as exc:
            log.info("report not available: %s", exc, extra=fields(event="report"))
            return 404, "text/plain; charset=utf-8", f"{exc}\n".encode()
        if want_json:
            return 200, JSON_TYPE, encode_document(document)
        html = render_report(document, BASE, f"{request.path}?format=json", document.get("live"))
        return 200, HTML_TYPE, html.encode("utf-8")

    def _index(self, query: Mapping[str, str], want_json: bool) -> Response:
        verdict, source = query.get("verdict", ""), query.get("source", "")
        with self._lock:
            rows = [
                r
                for r in self.recent
                if (not verdict or r["verdict"] == verdict) and (not source or r["source"] == source)
            ]
        if want_json:
            return 200, JSON_TYPE, json.dumps({"verdicts": rows}, indent=2).encode()
        return 200, HTML_TYPE, render_index(rows, BASE, verdict, source).encode("utf-8")


def _stamp(document: Mapping[str, Any], report: TargetReport) -> str:
    """A unique file stem per recorded verdict: digest prefix, time, and a nonce (every verdict keeps its report)."""
    short = (report.digest.partition(":")[2] or "unknown")[:12]
    when = str(document["recorded_at"]).replace("-", "").replace(":", "")
    return f"{short}-{when}-{secrets.token_hex(3)}"


def local_fallback(state_dir: Path) -> LocalReportStore:
    return LocalReportStore(state_dir / "reports")
