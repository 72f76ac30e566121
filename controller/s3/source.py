"""S3 buckets as a ``Source``: listing reconcile, SQS event hints, scans with ranged reads, verdict tags.

One ``S3Source`` (metric label ``s3``) serves every configured bucket; a
request's key is ``(bucket, key)`` where ``key`` is a model directory or any
object key, resolved to its model when the request runs (``grouping``).

* ``reconcile_once`` (leader only, periodic, authoritative): lists every
  watched prefix, groups objects into models, and asks for every model whose
  objects do not all carry a valid verdict for the model's current digest
  (models already seen valid with the same listing are not re-read).
* ``scan``: resolves the model, skips it when its tags already hold a valid
  verdict (a quarantined one still gets its quarantine mode re-applied),
  claims it (``claims``: one replica scans a model at a time), and scans it
  through ranged reads. Any S3 failure during the scan means no verdict:
  ``SourceUnavailable`` (retried with backoff) for throttling, 5xx and objects
  that changed or vanished mid-scan, ``S3Denied`` (counted as an error) for
  access denied.
* Uploads in progress: a model folder is scanned only after ``settle_seconds`` without
  changes (and, when configured, once its ``complete_marker`` exists), so no object of a
  model still being uploaded is ever tagged (``unsettled``; docs/s3.md).
* ``record``: tags every object with the verdict and applies the quarantine
  mode, then re-lists the model; if it changed during the scan it is scanned
  again (``SourceUnavailable``), so the last content always gets a verdict.
* ``handle_event``: what SQS consumers call for each event: the same
  scan/record, run synchronously by the runtime's ``process`` so the message
  is deleted only once the model holds a verdict (``events``).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from mlgate.analyzers.core.policy import Policy, Verdict

from ..config.buckets import BucketConfig, QuarantineMode
from ..config.settings import ControllerConfig
from ..resolver import Resolver, default_resolver
from ..runtime.interface import (
    PRIORITY_EVENT,
    PRIORITY_RECONCILE,
    Scanned,
    ScanRequest,
    SourceUnavailable,
    with_bytes_read,
)
from ..runtime.logging_json import fields
from ..runtime.metrics import EVENTS_REJECTED
from .actions import COPY_CONFIG, ObjectChanged, VerdictWriter, preflight
from .claims import Claim, Claims
from .errors import describe
from .events import EVENT_SOURCE, ObjectEvent, SqsConsumer
from .grouping import S3Model, group_models, list_objects, resolve
from .object_tags import model_verdict, read_tags
from .reader import ReadSession, S3Object, classify
from .scan import scan_model

log = logging.getLogger("mlgate.s3")

SOURCE = "s3"


class S3Denied(Exception):
    """S3 refused access (credentials, bucket policy): reported per model, never a verdict."""


@dataclass
class _Bucket:
    cfg: BucketConfig
    s3: Any
    claims: Claims
    writer: VerdictWriter


@dataclass
class _Pending:
    """A scan waiting for ``record``: the objects as read (pinned versions) and the claim held."""

    bucket: _Bucket
    model: S3Model
    objects: list[S3Object]
    claim: Claim


def make_client(service: str, cfg: BucketConfig) -> Any:
    """A boto3 client for one bucket's S3 or SQS (standard retries: throttling and 5xx are retried)."""
    options: dict[str, Any] = {"retries": {"mode": "standard", "max_attempts": 5}}
    if service == "s3" and cfg.endpoint_url:
        options["s3"] = {"addressing_style": "path"}
    session = boto3.session.Session()
    return session.client(
        service, endpoint_url=cfg.endpoint_url or None, region_name=cfg.region or None, config=Config(**options)
    )


class S3Source:
    """Every configured bucket, as one ``Source``. See the module docstring."""

    name = SOURCE

    def __init__(
        self,
        buckets: Sequence[BucketConfig],
        policy: Policy,
        signing_key: bytes,
        client_factory: Callable[[str, BucketConfig], Any] = make_client,
        copy_config: TransferConfig = COPY_CONFIG,
        resolver: Resolver | None = None,
        owner: str | None = None,
        reports: Any = None,
    ) -> None:
        self.policy = policy
        self.reports = reports  # ReportKeeper: keeps each verdict's full report next to the model
        self._key = signing_key
        self._client_factory = client_factory
        self._resolver = resolver if resolver is not None else default_resolver()
        self._buckets: dict[str, _Bucket] = {}
        for cfg in buckets:
            s3 = client_factory("s3", cfg)
            self._buckets[cfg.bucket] = _Bucket(
                cfg=cfg,
                s3=s3,
                claims=Claims(s3, cfg.claims_location, cfg.claims_prefix, cfg.claim_ttl_seconds, owner),
                writer=VerdictWriter(s3, cfg, signing_key, copy_config),
            )
            if reports is not None:
                reports.register_bucket(cfg.bucket, s3, cfg.reports_prefix)
        self._verified: dict[tuple[str, str], tuple[tuple[str, str, str], ...]] = {}
        self._lock = threading.Lock()
        self._preflight_ok = False

    # -- Source protocol ------------------------------------------------------------------------

    def reconcile_once(self) -> list[ScanRequest]:
        self._preflight()
        requests: list[ScanRequest] = []
        listed = failed = 0
        for bucket in self._buckets.values():
            seen: set[tuple[str, str]] = set()
            for prefix in bucket.cfg.prefixes:
                try:
                    models = group_models(bucket.cfg, list_objects(bucket.s3, bucket.cfg.bucket, prefix))
                except (ClientError, BotoCoreError) as exc:
                    failed += 1
                    log.error(
                        "listing failed; its models wait for the next pass",
                        extra=fields(source=SOURCE, target=f"s3://{bucket.cfg.bucket}/{prefix}", error=describe(exc)),
                    )
                    continue
                listed += 1
                for model in models:
                    ident = (bucket.cfg.bucket, model.root)
                    seen.add(ident)
                    if not self._needs_work(bucket, model):
                        continue
                    requests.append(ScanRequest(SOURCE, ident, reason="reconcile", priority=PRIORITY_RECONCILE))
            with self._lock:
                for ident in [i for i in self._verified if i[0] == bucket.cfg.bucket and i not in seen]:
                    del self._verified[ident]
        if failed and not listed:
            raise SourceUnavailable(f"no watched prefix could be listed ({failed} failed)")
        return requests

    def scan(self, request: ScanRequest) -> Scanned | None:
        bucket = self._bucket(request)
        model = self._call(lambda: resolve(bucket.s3, bucket.cfg, request.key[1]), request)
        if model is None:
            return None
        waiting = unsettled(bucket.cfg, model)
        if waiting:
            raise SourceUnavailable(f"{model.uri}: {waiting}; it is scanned once the upload is complete")
        claim = self._call(lambda: bucket.claims.acquire(model.uri), request)
        if claim is None:
            log.info("another replica is scanning this model", extra=fields(source=SOURCE, target=model.uri))
            return None
        try:
            if not request.force and self._call(lambda: self._already_verdicted(bucket, model), request):
                self._release_quietly(bucket, claim)
                return None
            policy = (
                self.policy if bucket.cfg.signatures is None else replace(self.policy, signatures=bucket.cfg.signatures)
            )
            scanned = scan_model(bucket.s3, model, policy, self._resolver, ReadSession())
            if scanned.session.errors:
                self._raise_read_errors(model, scanned.session)
        except BaseException:
            self._release_quietly(bucket, claim)
            raise
        return Scanned(scanned.report, _Pending(bucket, model, scanned.objects, claim))

    def record(self, request: ScanRequest, scanned: Scanned) -> None:
        pending, report = scanned.state, scanned.report
        if not isinstance(pending, _Pending):
            raise TypeError(f"record() needs this source's own scan result for {request.subject}")
        bucket, model = pending.bucket, pending.model
        try:
            report_tag = self._keep_report(bucket, model, report)
            applied = self._call(lambda: bucket.writer.apply(model, pending.objects, report, report_tag), request)
            log.info(
                "verdict written",
                extra=fields(
                    source=SOURCE,
                    target=model.uri,
                    verdict=report.verdict.value,
                    digest=report.digest,
                    count=applied.tagged,
                    reason=bucket.cfg.quarantine.value if applied.moved or applied.held else None,
                ),
            )
            current = self._call(lambda: resolve(bucket.s3, bucket.cfg, model.root), request)
        finally:
            self._release_quietly(bucket, pending.claim)
        if current is not None and current.fingerprint() != model.fingerprint():
            raise SourceUnavailable(f"{model.uri} changed while it was scanned; scanning it again")
        if not self._enforced(bucket, report.verdict):
            self._remember(model)

    def _keep_report(self, bucket: _Bucket, model: S3Model, report: Any) -> str:
        """Store the full report next to the model; the ``mlgate.report`` tag value ("" when not kept)."""
        if self.reports is None:
            return ""
        try:
            return str(
                self.reports.keep_s3(bucket.s3, bucket.cfg.bucket, bucket.cfg.reports_prefix, model.root, report)
            )
        except Exception as exc:  # noqa: BLE001 - a report that cannot be stored never blocks the verdict
            log.error(
                "could not keep the verdict report",
                extra=fields(source=SOURCE, target=model.uri, error=describe(exc), event="report"),
            )
            return ""

    def inventory(self) -> list[S3InventoryRow]:
        """Every model in the watched prefixes with its verified verdict (``none``: no valid verdict).

        Raises ``SourceUnavailable`` when a prefix cannot be listed (its models' state is unknown).
        """
        rows = []
        for bucket in self._buckets.values():
            for prefix in bucket.cfg.prefixes:
                try:
                    models = group_models(bucket.cfg, list_objects(bucket.s3, bucket.cfg.bucket, prefix))
                except (ClientError, BotoCoreError) as exc:
                    raise SourceUnavailable(f"s3://{bucket.cfg.bucket}/{prefix}: {describe(exc)}") from None
                for model in models:
                    try:
                        verdict = model_verdict(bucket.s3, self._key, model)
                    except (ClientError, BotoCoreError):
                        verdict = None
                    rows.append(
                        S3InventoryRow(
                            bucket.cfg.bucket, model.root, len(model.objects), verdict.value if verdict else "none"
                        )
                    )
        return rows

    # -- events ---------------------------------------------------------------------------------

    def consumers(self, process: Callable[[ScanRequest], bool]) -> list[SqsConsumer]:
        """One SQS consumer per bucket with a queue; ``process`` is the runtime's ``process``."""
        out = []
        for bucket in self._buckets.values():
            if bucket.cfg.queue_url:
                sqs = self._client_factory("sqs", bucket.cfg)
                out.append(SqsConsumer(sqs, bucket.cfg, lambda event: self.handle_event(event, process)))
        return out

    def start_events(self, process: Callable[[ScanRequest], bool], stop: threading.Event) -> list[threading.Thread]:
        """Start one consumer thread per queue (on every replica, leader or not); they end when ``stop`` is set."""
        threads = []
        for consumer in self.consumers(process):
            thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True, name="mlgate-sqs")
            thread.start()
            threads.append(thread)
        return threads

    def handle_event(self, event: ObjectEvent, process: Callable[[ScanRequest], bool]) -> bool:
        """Bring the model ``event`` touches to a verdict now; True when done (the message may go)."""
        bucket = self._buckets.get(event.bucket)
        if bucket is None:
            EVENTS_REJECTED.labels(source=EVENT_SOURCE, reason="unknown_bucket").inc()
            return True
        if bucket.cfg.watches(event.key) is None:
            own = any(event.key.startswith(p) for p in bucket.cfg.reserved_prefixes())
            EVENTS_REJECTED.labels(source=EVENT_SOURCE, reason="own_write" if own else "outside_prefix").inc()
            return True
        request = ScanRequest(SOURCE, (event.bucket, event.key), reason="event", priority=PRIORITY_EVENT)
        return process(request)

    # -- internals ------------------------------------------------------------------------------

    def _bucket(self, request: ScanRequest) -> _Bucket:
        bucket = self._buckets.get(request.key[0])
        if bucket is None:
            raise RuntimeError(f"bucket {request.key[0]} is not configured")
        return bucket

    def _needs_work(self, bucket: _Bucket, model: S3Model) -> bool:
        """Reconcile: does ``model`` lack a valid verdict (or a quarantine still to carry out)?"""
        with self._lock:
            if self._verified.get((model.bucket, model.root)) == model.fingerprint():
                return False
        try:
            verdict = model_verdict(bucket.s3, self._key, model)
        except (ClientError, BotoCoreError):
            return True  # the scan will report what is wrong
        if verdict is None or self._enforced(bucket, verdict):
            return True  # no verdict; or quarantined, and the move / legal hold may not have happened
        self._remember(model)
        return False

    def _already_verdicted(self, bucket: _Bucket, model: S3Model) -> bool:
        """True when the tags hold a valid verdict for this content (re-applying the quarantine mode)."""
        verdict = model_verdict(bucket.s3, self._key, model)
        if verdict is None:
            return False
        if self._enforced(bucket, verdict):
            session = ReadSession()
            objects = [S3Object(bucket.s3, model.bucket, o.key, o.size, o.etag, session) for o in model.objects]
            tags = {o.key: read_tags(bucket.s3, model.bucket, o.key) for o in model.objects}
            bucket.writer.quarantine(objects, model.digest(), tags)
            log.info(
                "quarantine re-applied",
                extra=fields(source=SOURCE, target=model.uri, reason=bucket.cfg.quarantine.value),
            )
        self._remember(model)
        return True

    @staticmethod
    def _enforced(bucket: _Bucket, verdict: Verdict) -> bool:
        """Whether this verdict asks for more than tags (a quarantine by move or legal hold)."""
        return verdict is Verdict.QUARANTINED and bucket.cfg.quarantine is not QuarantineMode.TAG

    def _remember(self, model: S3Model) -> None:
        """This listing of ``model`` holds a valid verdict: later passes skip it until the listing changes."""
        with self._lock:
            self._verified[(model.bucket, model.root)] = model.fingerprint()

    def _preflight(self) -> None:
        """Until it passes once: every bucket reachable and its quarantine mode possible, else the pass
        fails and ``/readyz`` says why (nothing is scanned into a quarantine that cannot work)."""
        if self._preflight_ok:
            return
        problems = []
        for bucket in self._buckets.values():
            try:
                problems += preflight(bucket.s3, bucket.cfg)
            except (ClientError, BotoCoreError) as exc:
                problems.append(f"bucket {bucket.cfg.bucket}: {describe(exc)}")
        if problems:
            raise SourceUnavailable("; ".join(problems))
        self._preflight_ok = True

    def _raise_read_errors(self, model: S3Model, session: ReadSession) -> None:
        """Raise for a scan whose reads failed, carrying the bytes it did fetch (still counted)."""
        first = session.errors[0]
        denied = next((e for e in session.errors if e.kind == "denied"), None)
        if denied is not None:
            raise with_bytes_read(S3Denied(f"{model.uri}: {denied}"), session.bytes_fetched)
        raise with_bytes_read(
            SourceUnavailable(f"{model.uri}: S3 read failed, no verdict recorded: {first}"), session.bytes_fetched
        )

    def _call(self, fn: Callable[[], Any], request: ScanRequest) -> Any:
        """Run an S3 call sequence, mapping failures: transient/changed -> SourceUnavailable, denied -> S3Denied."""
        try:
            return fn()
        except ObjectChanged as exc:
            raise SourceUnavailable(f"{exc}; looking again") from None
        except ClientError as exc:
            kind = classify(exc)
            message = f"s3://{request.key[0]}/{request.key[1]}: {describe(exc)}"
            if kind == "denied":
                raise S3Denied(message) from None
            raise SourceUnavailable(message) from None
        except BotoCoreError as exc:
            raise SourceUnavailable(f"s3://{request.key[0]}/{request.key[1]}: {describe(exc)}") from None

    def _release_quietly(self, bucket: _Bucket, claim: Claim) -> None:
        try:
            bucket.claims.release(claim)
        except (ClientError, BotoCoreError) as exc:  # it expires after claim_ttl_seconds anyway
            log.warning("could not release a scan claim", extra=fields(source=SOURCE, error=describe(exc)))


@dataclass(frozen=True)
class S3InventoryRow:
    """One model of a watched bucket for ``--once`` summaries."""

    bucket: str
    model: str  # the model folder (ending in "/") or the single object's key
    objects: int
    verdict: str  # approved | quarantined | none


def unsettled(cfg: BucketConfig, model: S3Model, now: dt.datetime | None = None) -> str:
    """Why a model folder must not be scanned yet (an upload in progress), or "" when it may be.

    A folder needs ``cfg.complete_marker`` when one is configured, and ``cfg.settle_seconds``
    without any change to its objects (by their S3 modification times). A single-object model is
    complete as soon as it is listed: a PUT is atomic.
    """
    if not model.is_directory:
        return ""
    if cfg.complete_marker and not any(model.name_of(o) == cfg.complete_marker for o in model.objects):
        return f"waiting for its completion marker {cfg.complete_marker!r}"
    if cfg.settle_seconds <= 0:
        return ""
    now = now or dt.datetime.now(dt.timezone.utc)
    times = [o.last_modified for o in model.objects if o.last_modified is not None]
    if not times:
        return ""
    age = (now - max(times)).total_seconds()
    if age < cfg.settle_seconds:
        return f"changed {max(age, 0):.1f} s ago, waiting for {cfg.settle_seconds:g} s without changes"
    return ""


def bucket_sources(config: ControllerConfig, key: bytes, policy: Policy, reports: Any = None) -> list[S3Source]:
    """The controller's S3 source for ``config.buckets`` (none when no bucket is configured)."""
    if not config.buckets:
        return []
    resolver = default_resolver(tracking_uri=config.tracking_uri, registry_uri=config.registry_uri)
    return [S3Source(config.buckets, policy, key, resolver=resolver, reports=reports)]
