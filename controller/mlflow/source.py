"""The MLflow registry as a ``Source``: paging, artifact download within budgets, verdict tags, alias guard.

Reconcile (level-triggered): page through model versions newest-updated first
(``last_updated_timestamp DESC``) down to the previous pass's watermark minus a
skew, with a full pass at start and every ``full_resync_seconds``; every READY
version whose tags lack a validly signed verdict is queued. Each pass also runs
the alias guard over every registered model (the fallback promotion gate) and,
on full passes, the stage guard.

Listings: each pass (or every ``verify_listings_seconds``) re-lists the artifacts of every
approved version the controller knows and compares the listing fingerprint signed at scan
time (``mlgate.listing``, ``verdicts/listing.py``); a changed listing invalidates the verdict
(the controller deletes its ``mlgate.signature``, so every layer sees no verdict and the alias
guard reverts promotions) and queues a rescan; a verdict without a signed listing (written by
an older mlgate) is rescanned without being invalidated.

Scan: fetch the version, skip it when a valid verdict is already there (events
are hints, the tags are the truth), take the listing fingerprint, list its artifacts (more than
``max_download_files``: a quarantined, incomplete verdict) and scan them where
they live (``stores.py``: local stores in place, S3 and the ``mlflow-artifacts:``
proxy through ranged reads); ``max_download_bytes`` bounds the bytes the scan
reads, not the model's size. Model signatures are verified, and approved versions
signed, from the same per-file sha256 the digest needs (nothing more is read).
Stores without an in-place reader, and signatures whose manifest is not by files
with sha256, take the download path: a private copy in the work dir (bounded by
``max_download_bytes`` as a whole), ``scan_target``, the copy deleted. Record:
write the docs/contracts.md §2 tags, remembering each write so the webhook receiver can ignore
the echo of the controller's own tags: the others concurrently (MLflow has no batch call for
model-version tags), the signature strictly after all of them succeeded.

Requests per version (``bench/mlflow_throughput.py`` shows them): the version, its download URI
once, the artifact listing before and after the read (in ``proxy`` mode the listing before also
gives the files to read), the reads themselves (small artifacts are hashed from the bytes read),
one write per tag. Registry calls go through MLflow's registry client (``registry_client``), not
``MlflowClient``, whose tag and download-URI calls each fetch the registered model first. A
reconcile pass lists each artifact location once, however many approved versions share it.

Shards (``controller/runtime/shards.py``): the runtime points ``owns`` at this replica's shard
ownership; reconcile passes, listing checks and the alias guard look only at owned model names
(the registry is still paged whole: MLflow cannot filter by hash), ``shard_key`` names the model
of a version request the passes made (webhook requests and alias checks return None: they are
handled idempotently where they arrive), and ``resync()`` makes the next pass a full one (after
gaining a shard).

Registry errors: connection failures, 5xx and malformed answers raise
``SourceUnavailable`` (the runtime retries with backoff); a missing version
means nothing to do; a refused write (403 from the gate plugin: wrong
controller token) raises ``RegistryRefused``.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from mlgate.analyzers.core.digest import files_manifest_digest, manifest_digest
from mlgate.analyzers.core.policy import Policy, Verdict
from mlgate.analyzers.core.report import TargetReport, build_report
from mlgate.analyzers.core.walker import BUDGET, ScanContext, ScanOptions, TargetScan, scan_artifacts
from mlgate.analyzers.signatures import (
    in_place_supported,
    sign_digests,
    sign_model,
    unsigned,
    verify_signature_digests,
)

from ..config.environment import MLFLOW_CLIENT_DEFAULTS, set_library_defaults
from ..config.settings import ControllerConfig, StoreChecksums
from ..runtime.interface import PRIORITY_RECONCILE, Scanned, ScanRequest, SourceUnavailable, with_bytes_read
from ..runtime.logging_json import fields
from ..scanning import resolve_dependencies, scan_target
from ..verdicts.exceptions import ExceptionState, apply_exceptions, read_exceptions, stale
from ..verdicts.exceptions import ids as exception_ids
from ..verdicts.gate import AliasGuard
from ..verdicts.listing import ListingEntry, decode_listing, fingerprint, listing_mode
from ..verdicts.tags import EXCEPTIONS, LISTING, REPORT, SIGNATURE, build_tags, check_verdict, summary_details
from ..verdicts.tags import MODEL_SIGNATURE as MODEL_SIGNATURE_TAG
from .artifact_listing import ListingError, best_mode, physical_uri, take_fingerprint
from .stores import Store, open_store

log = logging.getLogger("mlgate.mlflow")

SOURCE = "mlflow"
PROMPT_TAG = "mlflow.prompt.is_prompt"
MODEL_SIGNATURE_FILE = "mlgate.sig"  # <model folder>.mlgate.sig beside the folder
_OWN_WRITE_TTL = 600.0
_MODELS_PAGE = 1000  # search_registered_models maximum
_TAG_WRITERS = 8  # verdict tags written at once (the signature always after the others)
_T = TypeVar("_T")

# The controller has its own retry loop; MLflow's default (7 retries, exponential) would stall a worker for minutes.


class RegistryRefused(Exception):
    """The registry refused a call for a reason retrying will not fix (permission, bad request)."""


class _Gone(Exception):
    """The model or version no longer exists."""


@dataclass(frozen=True)
class InventoryRow:
    """One version and its current (verified) verdict, for summaries."""

    model: str
    version: str
    verdict: str  # approved | quarantined | none
    top: str


def registry_client(client: Any) -> Any:
    """The model-registry client under an ``MlflowClient`` (``client`` itself when it has none).

    ``MlflowClient.set_model_version_tag``, ``delete_model_version_tag`` and
    ``get_model_version_download_uri`` first fetch the registered model to refuse prompts: one more
    REST call each. The controller never writes to a prompt (``scan`` skips versions tagged
    ``mlflow.prompt.is_prompt`` before anything is written), so it calls the registry client directly."""
    get = getattr(client, "_get_registry_client", None)
    return get() if callable(get) else client


def version_key(name: str, version: str) -> tuple[str, str, str]:
    return ("version", name, str(version))


def alias_key(name: str, alias: str) -> tuple[str, str, str]:
    return ("alias", name, alias)


class MLflowSource:
    """Watches one MLflow registry (see the module docstring)."""

    name = SOURCE

    def __init__(
        self,
        config: ControllerConfig,
        key: bytes,
        policy: Policy,
        client: Any = None,
        resolver: Any = None,
        clock: Callable[[], float] = time.time,
        reports: Any = None,
    ) -> None:
        set_library_defaults(MLFLOW_CLIENT_DEFAULTS)
        if client is None:
            from mlflow import MlflowClient

            client = MlflowClient(tracking_uri=config.tracking_uri, registry_uri=config.registry_uri)
        self.client = client
        self._registry = registry_client(client)
        self.settings = config.mlflow
        self.tracking_uri = config.tracking_uri
        self.registry_uri = config.registry_uri
        self.work_dir = config.state_path / "work"
        self._key = key
        overridden = config.mlflow.signatures
        self._policy = policy if overridden is None else replace(policy, signatures=overridden)
        self._resolver = resolver
        self._clock = clock
        self.reports = reports  # ReportKeeper: keeps each verdict's full report (mlgate.report tag)
        self.guard = AliasGuard(key, client, SOURCE)
        self._watermark_ms: int | None = None
        self._last_full = 0.0
        self._last_verify = clock()
        self._last_listing_check = 0.0
        self._approved: dict[tuple[str, str], dict[str, str]] = {}  # versions whose listings are re-checked
        self._approved_lock = threading.Lock()
        self._created: dict[tuple[str, str], int] = {}  # version -> creation time (ms), as last seen
        self._uris: dict[tuple[str, str, int], str] = {}  # (name, version, creation time) -> download URI
        self._own_writes: OrderedDict[tuple[str, str, str], tuple[str, float]] = OrderedDict()  # oldest first
        self._own_lock = threading.Lock()
        self._tag_pool = ThreadPoolExecutor(_TAG_WRITERS, thread_name_prefix="mlgate-tags")
        self.owns: Callable[[str], bool] = _everything  # set by the runtime to its shard ownership
        self._resync = False

    # -- registry calls -------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Run one registry call, mapping its failures onto the source contract."""
        from mlflow.exceptions import MlflowException, RestException

        try:
            return fn(*args, **kwargs)
        except RestException as exc:
            code = exc.error_code
            if code == "RESOURCE_DOES_NOT_EXIST":
                raise _Gone(what) from None
            if code in (
                "PERMISSION_DENIED",
                "UNAUTHENTICATED",
                "INVALID_PARAMETER_VALUE",
                "BAD_REQUEST",
                "INVALID_STATE",
                "RESOURCE_ALREADY_EXISTS",
            ):
                raise RegistryRefused(f"MLflow refused {what}: {_one_line(exc.message)}") from None
            raise SourceUnavailable(f"MLflow error during {what}: {_one_line(exc.message)}") from None
        except MlflowException as exc:
            raise SourceUnavailable(f"MLflow unreachable during {what}: {_one_line(exc.message)}") from None
        except (_Gone, RegistryRefused, SourceUnavailable):
            raise
        except Exception as exc:  # noqa: BLE001 - malformed answers surface as parser errors of any type
            raise SourceUnavailable(
                f"malformed MLflow answer during {what}: {type(exc).__name__}: {_one_line(str(exc))}"
            ) from None

    def _name_filter(self) -> str:
        pattern = self.settings.model_name_like
        return "name LIKE '{}'".format(pattern.replace("'", "''")) if pattern else ""

    def _pages(self, what: str, search: Callable[..., Any], **kwargs: Any) -> Iterator[Any]:
        token = None
        while True:
            page = self._call(what, search, page_token=token, **kwargs)
            yield from page
            token = getattr(page, "token", None)
            if not token:
                return

    # -- reconcile ------------------------------------------------------------------------------

    def shard_key(self, request: ScanRequest) -> str | None:
        """The model name whose shard owns ``request`` (None: any replica handles it, e.g. a webhook's)."""
        if request.reason in _EVENT_REASONS or request.key[0] != "version" or len(request.key) != 3:
            return None
        return request.key[1]

    def resync(self) -> None:
        """Make the next reconcile pass a full one (shards were gained: older versions are now ours)."""
        self._resync = True

    def reconcile_once(self) -> list[ScanRequest]:
        now = self._clock()
        verify = (
            self.settings.verify_digests_seconds > 0 and now - self._last_verify >= self.settings.verify_digests_seconds
        )
        resync, self._resync = self._resync, False  # a resync asked for during this pass makes the next full
        full = resync or verify or self._watermark_ms is None
        full = full or now - self._last_full >= self.settings.full_resync_seconds
        stop_below = None if full else self._watermark_ms - int(self.settings.watermark_skew_seconds * 1000)
        requests: list[ScanRequest] = []
        newest = self._watermark_ms or 0
        seen_tags: dict[tuple[str, str], Mapping[str, str]] = {}
        for mv in self._pages(
            "search_model_versions",
            self.client.search_model_versions,
            filter_string=self._name_filter(),
            max_results=self.settings.page_size,
            order_by=["last_updated_timestamp DESC"],
        ):
            updated = int(getattr(mv, "last_updated_timestamp", None) or getattr(mv, "creation_timestamp", 0) or 0)
            if stop_below is not None and updated < stop_below:
                break
            newest = max(newest, updated)
            name, version = getattr(mv, "name", None), getattr(mv, "version", None)
            if not isinstance(name, str) or not name or version in (None, ""):
                log.warning("skipping a malformed model version in the registry answer", extra=fields(source=SOURCE))
                continue
            if not self.owns(name):
                continue
            version = str(version)
            tags = dict(getattr(mv, "tags", None) or {})
            seen_tags[(name, version)] = tags
            if tags.get(PROMPT_TAG) or getattr(mv, "status", "READY") != "READY":
                continue
            signed = check_verdict(self._key, name, version, tags).signed
            self._track(name, version, tags, signed is not None and signed.approved, _created(mv))
            if signed is None:
                requests.append(ScanRequest(SOURCE, version_key(name, version), "reconcile", PRIORITY_RECONCILE))
            elif stale(self._key, name, version, signed.digest, signed.exceptions, tags):
                requests.append(
                    ScanRequest(SOURCE, version_key(name, version), "exceptions", PRIORITY_RECONCILE, force=True)
                )
            elif verify:
                requests.append(
                    ScanRequest(SOURCE, version_key(name, version), "verify", PRIORITY_RECONCILE, force=True)
                )
            if self.settings.gate_stages:
                self._guarded(
                    "stage",
                    lambda n=name, v=version, m=mv, t=tags: self.guard.check_stage(
                        n, v, getattr(m, "current_stage", None), t
                    ),
                )
        if full:
            self._prune(seen_tags)
        if now - self._last_listing_check >= self.settings.verify_listings_seconds:
            self._last_listing_check = now
            queued = {r.key for r in requests}
            for request in self.check_listings(seen_tags):
                if request.key not in queued:
                    requests.append(request)
        if self.settings.revert_unapproved_aliases:
            self._guard_all_aliases(seen_tags)
        self._watermark_ms = newest
        if full:
            self._last_full = now
        if verify:
            self._last_verify = now
        return requests

    # -- listings -------------------------------------------------------------------------------

    def _track(
        self, name: str, version: str, tags: Mapping[str, str], approved: bool, created: int | None = None
    ) -> None:
        """Keep (or drop) an approved version for the listing checks; ``created``: its creation time (ms)."""
        with self._approved_lock:
            if approved:
                self._approved[(name, version)] = dict(tags)
                if created and self._created.get((name, version)) != created:
                    self._forget_uri(name, version)  # another instance of this version number
                    self._created[(name, version)] = created
            else:
                self._approved.pop((name, version), None)
                self._forget_uri(name, version)

    def _prune(self, seen: Mapping[tuple[str, str], object]) -> None:
        """After a full pass: forget approved versions the registry no longer lists (deleted)."""
        with self._approved_lock:
            for name, version in [k for k in self._approved if k not in seen]:
                del self._approved[(name, version)]
                self._forget_uri(name, version)

    def _remember_uri(self, name: str, version: str, created: int | None, uri: str) -> None:
        """Keep a version's download URI for the listing checks, bound to its creation time: a model deleted
        and registered again reuses version numbers, never (name, version, creation time)."""
        if created:
            with self._approved_lock:
                self._created[(name, version)] = created
                self._uris[(name, version, created)] = uri

    def _known_uri(self, name: str, version: str) -> str | None:
        with self._approved_lock:
            created = self._created.get((name, version))
            return self._uris.get((name, version, created)) if created else None

    def _forget_uri(self, name: str, version: str) -> None:  # with _approved_lock held
        created = self._created.pop((name, version), None)
        if created:
            self._uris.pop((name, version, created), None)

    def current_listing(
        self,
        name: str,
        version: str,
        mode: str | None = None,
        uri: str | None = None,
        memo: dict[tuple[str, str | None], str] | None = None,
    ) -> str:
        """The listing fingerprint of the version's artifacts now (``mode``: as recorded; None: the best one).

        ``uri``: the version's download URI when the caller has it; ``memo``: fingerprints already
        taken in this pass, by (URI, mode): versions sharing a location are listed once per pass."""
        if uri is None:
            uri = self._download_uri(name, version)
        if memo is not None and (uri, mode) in memo:
            return memo[(uri, mode)]
        try:
            listing = take_fingerprint(
                uri, mode, destination=self.settings.artifacts_destination or None, repo_factory=self._repository
            )
        except ListingError as exc:
            raise SourceUnavailable(f"models:/{name}/{version}: {exc}") from None
        if memo is not None:
            memo[(uri, mode)] = listing
        return listing

    def _download_uri(self, name: str, version: str) -> str:
        return self._call(
            "get_model_version_download_uri", self._registry.get_model_version_download_uri, name, version
        )

    def _repository(self, uri: str) -> Any:
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        return self._call(
            "artifact repository",
            get_artifact_repository,
            uri,
            tracking_uri=self.tracking_uri,
            registry_uri=self.registry_uri,
        )

    def check_listings(self, seen: dict[tuple[str, str], Mapping[str, str]] | None = None) -> list[ScanRequest]:
        """Re-list every approved version's artifacts; invalidate and queue those that changed."""
        with self._approved_lock:
            approved = list(self._approved.items())
        requests = []
        memo: dict[tuple[str, str | None], str] = {}  # one listing per location and mode in a pass
        for (name, version), tags in approved:
            if not self.owns(name):
                self._track(name, version, tags, False)
                continue
            signed = check_verdict(self._key, name, version, tags).signed
            if signed is None or not signed.approved:
                self._track(name, version, tags, False)
                continue
            recorded = decode_listing(self._key, name, version, signed.digest, tags.get(LISTING))
            if recorded is None:  # an older mlgate's verdict: bind it to a listing by rescanning
                requests.append(ScanRequest(SOURCE, version_key(name, version), "listing", PRIORITY_RECONCILE, True))
                continue
            try:
                now = self.current_listing(
                    name, version, listing_mode(recorded), uri=self._known_uri(name, version), memo=memo
                )
            except _Gone:
                self._track(name, version, tags, False)
                continue
            except SourceUnavailable as exc:
                log.warning(
                    "could not re-list artifacts: %s",
                    exc,
                    extra=fields(source=SOURCE, model=name, version=version, event="listing"),
                )
                continue
            if now == recorded:
                continue
            log.warning(
                "artifacts changed since the scan: verdict invalidated, rescan queued",
                extra=fields(source=SOURCE, model=name, version=version, event="listing"),
            )
            self._invalidate(name, version)
            self._track(name, version, tags, False)
            if seen is not None and (name, version) in seen:
                seen[(name, version)] = {k: v for k, v in seen[(name, version)].items() if k != SIGNATURE}
            requests.append(ScanRequest(SOURCE, version_key(name, version), "listing", PRIORITY_RECONCILE, True))
        return requests

    def _invalidate(self, name: str, version: str) -> None:
        """Delete the verdict signature: the verdict no longer describes the content."""
        try:
            self._call("delete_model_version_tag", self._registry.delete_model_version_tag, name, version, SIGNATURE)
        except (_Gone, RegistryRefused) as exc:
            log.error(
                "could not invalidate a stale verdict: %s",
                exc,
                extra=fields(source=SOURCE, model=name, version=version, event="listing"),
            )

    def _guard_all_aliases(self, known: dict[tuple[str, str], Mapping[str, str]]) -> None:
        for model in self._pages(
            "search_registered_models",
            self.client.search_registered_models,
            filter_string=self._name_filter(),
            max_results=_MODELS_PAGE,
        ):
            aliases = getattr(model, "aliases", None) or {}
            name = getattr(model, "name", None)
            if aliases and isinstance(name, str) and self.owns(name):
                self._check_model_aliases(name, dict(aliases), dict(getattr(model, "tags", None) or {}), known)

    def _check_model_aliases(
        self,
        name: str,
        aliases: dict[str, Any],
        model_tags: dict[str, str],
        known: Mapping[tuple[str, str], Mapping[str, str]] | None = None,
    ) -> int:
        def tags_of(version: str) -> Mapping[str, str] | None:
            if known and (name, version) in known:
                return known[(name, version)]
            try:
                return dict(self._call("get_model_version", self.client.get_model_version, name, version).tags or {})
            except _Gone:
                return None

        return (
            self._guarded(
                "alias",
                lambda: self.guard.check_aliases(name, {a: str(v) for a, v in aliases.items()}, model_tags, tags_of),
            )
            or 0
        )

    def _guarded(self, what: str, action: Callable[[], _T]) -> _T | None:
        """Run a guard action; a version deleted meanwhile is fine, a refused write is logged."""
        from mlflow.exceptions import MlflowException

        try:
            return action()
        except _Gone:
            return None
        except MlflowException as exc:
            log.error(
                "could not revert an unapproved %s: %s",
                what,
                _one_line(exc.message),
                extra=fields(source=SOURCE, event=what),
            )
            return None

    def check_model(self, name: str) -> int:
        """Run the alias guard on one model now (after a quarantine verdict, or an alias event)."""
        try:
            model = self._call("get_registered_model", self.client.get_registered_model, name)
        except _Gone:
            return 0
        aliases = dict(getattr(model, "aliases", None) or {})
        return self._check_model_aliases(name, aliases, dict(getattr(model, "tags", None) or {})) if aliases else 0

    # -- scan + record --------------------------------------------------------------------------

    def scan(self, request: ScanRequest) -> Scanned | None:
        kind, name, ref = request.key
        if kind == "alias":
            if self.settings.revert_unapproved_aliases:
                self.check_model(name)
            return None
        try:
            mv = self._call("get_model_version", self.client.get_model_version, name, ref)
        except _Gone:
            log.info("version no longer exists", extra=fields(source=SOURCE, model=name, version=ref))
            return None
        if getattr(mv, "status", "READY") != "READY":
            raise SourceUnavailable(f"models:/{name}/{ref} is still {mv.status}")
        tags = dict(mv.tags or {})
        if tags.get(PROMPT_TAG):
            return None
        signed = check_verdict(self._key, name, ref, tags).signed
        changed = signed is not None and stale(self._key, name, ref, signed.digest, signed.exceptions, tags)
        if signed is not None and not request.force and not changed:
            return None
        uri = self._download_uri(name, ref)
        self._remember_uri(name, ref, _created(mv), uri)
        listing, listed = self._listing_and_files(name, ref, uri)  # before reading: a later swap changes it
        report, model_signature = self._download_and_scan(name, ref, listed)
        if self.current_listing(name, ref, listing_mode(listing), uri=uri) != listing:
            raise SourceUnavailable(f"models:/{name}/{ref}: artifacts changed while they were scanned")
        states = read_exceptions(self._key, name, ref, report.digest, tags)
        valid = [st.exception for st in states if st.valid and st.exception is not None]
        report = apply_exceptions(report, valid, self._policy, SOURCE, f"models:/{name}/{ref}")
        decided = _Decided(
            exception_ids(valid),
            states,
            tags,
            getattr(mv, "run_id", None),
            getattr(mv, "source", ""),
            model_signature,  # made when the scan alone approved; never for an approval that rests on exceptions
            listing,
        )
        if (
            signed is not None
            and signed.digest == report.digest
            and signed.verdict is report.verdict
            and signed.exceptions == decided.exceptions
            and (tags.get(REPORT) or self.reports is None)
            and decode_listing(self._key, name, ref, signed.digest, tags.get(LISTING)) == listing
        ):
            log.info("digest verified", extra=fields(source=SOURCE, model=name, version=ref, digest=report.digest))
            return None
        return Scanned(report, decided)

    def record(self, request: ScanRequest, scanned: Scanned) -> None:
        _, name, ref = request.key
        report = scanned.report
        decided = scanned.state if isinstance(scanned.state, _Decided) else _Decided()
        tags = build_tags(self._key, name, ref, report, exceptions=decided.exceptions, listing=decided.listing)
        if not decided.exceptions and EXCEPTIONS in decided.tags:
            tags = {EXCEPTIONS: "", **tags}  # an old list would make the new signature fail: remove it first
        report_tag = self._keep_report(name, ref, report, decided)
        if report_tag:  # before the signature, which stays the last write
            signature = tags.pop(SIGNATURE)
            tags[REPORT] = report_tag
            tags[SIGNATURE] = signature
        try:
            self._write_tags(name, ref, tags)
        except _Gone:
            return
        if decided.model_signature is not None and report.verdict is Verdict.APPROVED:
            self._publish_model_signature(name, ref, decided.model_signature)
        self._track(name, ref, tags, report.verdict is Verdict.APPROVED)
        if report.verdict is not Verdict.APPROVED and self.settings.revert_unapproved_aliases:
            self.check_model(name)

    def _write_tags(self, name: str, ref: str, tags: Mapping[str, str]) -> None:
        """Write ``tags`` (an empty ``mlgate.exceptions``: delete it), the signature strictly after all others.

        The tags before the signature are written concurrently (each is its own REST call; MLflow has
        no batch call for model-version tags): a reader sees a verdict only once the signature is
        there, and the signature is written only after every other write succeeded. Mid-way (a rescan
        overwriting an older verdict) the old signature validates only tags equal to the old verdict's;
        a listing or exception list already rewritten for a new digest fails closed, as it does
        between sequential writes."""
        first = [(tag, value) for tag, value in tags.items() if tag != SIGNATURE]
        futures = [self._tag_pool.submit(self._write_tag, name, ref, tag, value) for tag, value in first]
        problem: BaseException | None = None
        for future in futures:
            try:
                future.result()
            except BaseException as exc:  # noqa: BLE001 - every write is waited for; the first failure is raised
                problem = problem or exc
        if problem is not None:
            raise problem
        if SIGNATURE in tags:
            self._write_tag(name, ref, SIGNATURE, tags[SIGNATURE])

    def _write_tag(self, name: str, ref: str, tag: str, value: str) -> None:
        self._remember_write(name, ref, tag, value)
        if tag == EXCEPTIONS and not value:
            self._call("delete_model_version_tag", self._registry.delete_model_version_tag, name, ref, EXCEPTIONS)
        else:
            self._call("set_model_version_tag", self._registry.set_model_version_tag, name, ref, tag, value)

    def _remember_write(self, name: str, ref: str, tag: str, value: str) -> None:
        """Note a write of our own so its webhook echo is dismissed (entries expire after ``_OWN_WRITE_TTL``)."""
        now = self._clock()
        with self._own_lock:
            self._own_writes.pop((name, ref, tag), None)  # re-inserted at the end: the dict stays oldest first
            self._own_writes[(name, ref, tag)] = (value, now)

    def _keep_report(self, name: str, version: str, report: TargetReport, decided: _Decided) -> str:
        """Store the full report (``reports/``); the ``mlgate.report`` tag value, "" when not kept."""
        if self.reports is None:
            return ""
        try:
            return str(
                self.reports.keep_mlflow(
                    self.client, name, version, report, decided.states, decided.run_id, decided.source
                )
            )
        except Exception as exc:  # noqa: BLE001 - a report that cannot be stored never blocks the verdict
            log.error(
                "could not keep the verdict report: %s",
                _one_line(str(exc)),
                extra=fields(source=SOURCE, model=name, version=version, event="report"),
            )
            return ""

    def is_own_write(self, name: str, version: str, key: str, value: str) -> bool:
        """True when (name, version, key=value) is a tag this controller wrote recently (webhook echo)."""
        now = self._clock()
        with self._own_lock:
            while self._own_writes:  # oldest first: drop the expired ones from the front
                oldest = next(iter(self._own_writes.values()))
                if now - oldest[1] <= _OWN_WRITE_TTL:
                    break
                self._own_writes.popitem(last=False)
            written = self._own_writes.get((name, str(version), key))
        return written is not None and written[0] == value

    def _download_and_scan(
        self, name: str, version: str, listed: tuple[Any, list[tuple[str, int]]] | None = None
    ) -> tuple[TargetReport, bytes | None]:
        """The report, and (when configured and approved) an OpenSSF signature over the files as scanned.

        Artifacts are scanned where they live (``stores.py``); the download path remains for stores
        without an in-place reader and for signatures that cannot be checked from per-file sha256."""
        label = f"models:/{name}/{version}"
        repo, files = listed if listed is not None else self._listing(name, version)
        if len(files) > self.settings.max_download_files:
            return self._unscanned(label, self._over_budget(len(files), 0)), None
        store = self._open_store(repo, files)
        if store is not None:
            try:
                signature_file = store.read_small(self._policy.signatures.signature_file)
            except OSError as exc:
                raise with_bytes_read(SourceUnavailable(f"{label}: {exc}"), store.session.bytes_fetched) from None
            if signature_file is None or in_place_supported(signature_file):
                return self._scan_in_place(name, label, store, signature_file)
        with self._downloaded(name, version, repo, files) as (dest, problem):
            if dest is None:
                return self._unscanned(label, problem), None
            if self._resolver is not None:
                report = scan_target(dest, self._policy, label=label, resolver=self._resolver)
            else:
                report = scan_target(dest, self._policy, label=label)
            signature = None
            if report.verdict is Verdict.APPROVED and self.settings.sign_approved_key_file:
                signature = self._sign(dest)
            return report, signature

    def _scan_in_place(
        self, name: str, label: str, store: Store, signature_file: bytes | None
    ) -> tuple[TargetReport, bytes | None]:
        """Scan ``store``'s artifacts through their readers; ``max_download_bytes`` bounds the bytes read.
        The model signature (``signature_file``, its bytes) is checked, and an approved version signed,
        from the per-file sha256 the digest computed."""
        budgets = replace(
            self._policy.budgets, max_bytes=min(self._policy.budgets.max_bytes, self.settings.max_download_bytes)
        )
        ctx = ScanContext(label, ScanOptions(budgets=budgets))
        try:
            scan = scan_artifacts(store.artifacts, ctx, content_hash=store.content_hash)
        except OSError as exc:  # a content hash could not be computed: nothing to record
            raise with_bytes_read(SourceUnavailable(f"{label}: {exc}"), store.session.bytes_fetched) from None
        if store.session.errors:  # the store failed mid-scan: never record a verdict for a scan cut short
            raise with_bytes_read(SourceUnavailable(f"{label}: {store.session.errors[0]}"), store.session.bytes_fetched)
        sha256_of = {a.location: (lambda a=a: store.content_hash(a)) for a in store.artifacts}
        if signature_file is None:
            signature = unsigned(self._policy.signatures)
        else:
            try:
                signature = verify_signature_digests(signature_file, sha256_of, self._policy.signatures)
            except OSError as exc:
                raise with_bytes_read(SourceUnavailable(f"{label}: {exc}"), store.session.bytes_fetched) from None
        scan.findings.extend(signature.findings)
        deps = resolve_dependencies(scan, self._policy, store.origin(), self._resolver)
        report = build_report(scan, self._policy, deps)
        total = sum(a.size or 0 for a in store.artifacts)
        log.info(
            "mlflow version read in place",
            extra=fields(
                source=SOURCE,
                target=label,
                count=len(store.artifacts),
                bytes=store.bytes_read(scan.bytes_read),
                size=total,
                requests=store.session.requests,
                duration_s=round(scan.duration_s, 3),
            ),
        )
        model_signature = None
        if report.verdict is Verdict.APPROVED and self.settings.sign_approved_key_file:
            model_signature = self._sign_digests(name, {rel: hasher() for rel, hasher in sha256_of.items()})
        report = replace(
            report,
            bytes_read=store.bytes_read(scan.bytes_read),
            signer=signature.signer,
            signature_file=signature.signature_file,
        )
        return report, model_signature

    def _sign_digests(self, name: str, sha256_of: dict[str, str]) -> bytes:
        """Sign the files as scanned in place, from their sha256 (docs/signatures.md)."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="sign-", dir=self.work_dir) as tmp:
            out = Path(tmp) / MODEL_SIGNATURE_FILE
            sign_digests(sha256_of, name, Path(self.settings.sign_approved_key_file), out)
            return out.read_bytes()

    def _sign(self, model: Path) -> bytes:
        """Sign the scanned files with the configured key (docs/signatures.md, "mlgate signs what it approves")."""
        with tempfile.TemporaryDirectory(prefix="sign-", dir=self.work_dir) as tmp:
            out = Path(tmp) / MODEL_SIGNATURE_FILE
            sign_model(model, Path(self.settings.sign_approved_key_file), out)
            return out.read_bytes()

    def _publish_model_signature(self, name: str, version: str, signature: bytes) -> None:
        """Upload the signature beside the model's artifact folder (never inside it: the digest would
        change) and record its URI in ``mlgate.model_signature``."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        uri = self._download_uri(name, version)
        parent, _, folder = uri.rstrip("/").rpartition("/")
        file_name = f"{folder or 'model'}.{MODEL_SIGNATURE_FILE}"
        repo = get_artifact_repository(parent, tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)
        with tempfile.TemporaryDirectory(prefix="sign-", dir=self.work_dir) as tmp:
            local = Path(tmp) / file_name
            local.write_bytes(signature)
            self._call("upload model signature", repo.log_artifact, str(local))
        self._write_tag(name, version, MODEL_SIGNATURE_TAG, f"{parent}/{file_name}")

    def _open_store(self, repo: Any, files: list[tuple[str, int]]) -> Store | None:
        """The version's artifacts in place (None: no in-place reader for this store)."""
        trust = self.settings.store_checksums is StoreChecksums.TRUST
        return self._call("artifact store", open_store, repo, files, trust_checksums=trust)

    def current_digest(self, name: str, version: str) -> str:
        """The content digest of the version's artifacts as they are now (hashed in place when the
        store allows it, else downloaded)."""
        repo, files = self._listing(name, version)
        store = self._open_store(repo, files)
        if store is not None:
            try:
                return manifest_digest((a.location, store.content_hash(a)) for a in store.artifacts)
            except OSError as exc:
                raise SourceUnavailable(f"models:/{name}/{version}: {exc}") from None
        with self._downloaded(name, version, repo, files) as (dest, problem):
            if dest is None:
                raise ValueError(problem)
            files = {p.relative_to(dest).as_posix(): p for p in dest.rglob("*") if p.is_file()}
            return files_manifest_digest(files)  # hashed in parallel, as the scan does

    def _listing(self, name: str, version: str, uri: str | None = None) -> tuple[Any, list[tuple[str, int]]]:
        """The version's artifact repository and its files (relative path, size)."""
        repo = self._repository(uri if uri is not None else self._download_uri(name, version))
        return repo, list(self._list_files(repo, ""))

    def _listing_and_files(self, name: str, version: str, uri: str) -> tuple[str, tuple[Any, list[tuple[str, int]]]]:
        """The listing fingerprint (taken first), then the artifact repository and its files.

        When the fingerprint is a ``proxy`` one (path and size through MLflow's ``list_artifacts``,
        the very listing the scan needs), one listing serves both."""
        try:
            proxy = best_mode(physical_uri(uri, self.settings.artifacts_destination or None)) == "proxy"
        except ListingError as exc:
            raise SourceUnavailable(f"models:/{name}/{version}: {exc}") from None
        if not proxy:
            listing = self.current_listing(name, version, uri=uri)
            return listing, self._listing(name, version, uri)
        repo, files = self._listing(name, version, uri)
        return fingerprint("proxy", (ListingEntry(path, size) for path, size in files)), (repo, files)

    @contextmanager
    def _downloaded(
        self, name: str, version: str, repo: Any, files: list[tuple[str, int]]
    ) -> Iterator[tuple[Path | None, str]]:
        """A private copy of the version's artifacts, ``(dir, "")``, or ``(None, why)`` when over budget
        (a copy is bounded by the model's size: ``max_download_bytes`` applies to all of it)."""
        problem = self._over_budget(len(files), sum(size for _, size in files))
        if problem:
            yield None, problem
            return
        self.work_dir.mkdir(parents=True, exist_ok=True)
        dest = Path(tempfile.mkdtemp(prefix="scan-", dir=self.work_dir))
        try:
            if files:
                self._call("artifact download", repo.download_artifacts, "", dst_path=str(dest))
            actual = [p.stat().st_size for p in dest.rglob("*") if p.is_file()]
            problem = self._over_budget(len(actual), sum(actual))
            yield (None, problem) if problem else (dest, "")
        finally:
            shutil.rmtree(dest, ignore_errors=True)

    def _list_files(self, repo: Any, path: str) -> Iterator[tuple[str, int]]:
        for info in self._call("list_artifacts", repo.list_artifacts, path or None):
            if info.is_dir:
                yield from self._list_files(repo, info.path)
            else:
                yield info.path, int(info.file_size or 0)

    def _over_budget(self, count: int, size: int) -> str:
        if count > self.settings.max_download_files:
            return f"{count} artifact files exceed the download budget of {self.settings.max_download_files} files"
        if size > self.settings.max_download_bytes:
            return f"{size} artifact bytes exceed the download budget of {self.settings.max_download_bytes} bytes"
        return ""

    def _unscanned(self, label: str, problem: str) -> TargetReport:
        """A fail-closed report for content that was never read."""
        scan = TargetScan(
            target=label,
            findings=[BUDGET.finding(label, f"not downloaded: {problem}")],
            complete=False,
            references=[],
            digest="",
            duration_s=0.0,
            bytes_read=0,
            members=0,
        )
        return build_report(scan, self._policy)

    # -- summaries ------------------------------------------------------------------------------

    def inventory(self) -> list[InventoryRow]:
        """Every watched version with its verified verdict (``none`` when unsigned or missing)."""
        rows = []
        for mv in self._pages(
            "search_model_versions",
            self.client.search_model_versions,
            filter_string=self._name_filter(),
            max_results=self.settings.page_size,
            order_by=["name ASC", "version_number ASC"],
        ):
            tags = dict(mv.tags or {})
            if tags.get(PROMPT_TAG):
                continue
            signed = check_verdict(self._key, mv.name, str(mv.version), tags).signed
            top = summary_details(signed.findings) if signed else ""
            rows.append(InventoryRow(mv.name, str(mv.version), signed.verdict.value if signed else "none", top))
        return rows


@dataclass(frozen=True)
class _Decided:
    """What ``scan`` decided with, for ``record``: exceptions considered, their states, the version's tags."""

    exceptions: tuple[str, ...] = ()
    states: list[ExceptionState] = field(default_factory=list)
    tags: Mapping[str, str] = field(default_factory=dict)
    run_id: str | None = None
    source: str = ""
    model_signature: bytes | None = None  # mlgate's OpenSSF signature of the files as scanned (approved only)
    listing: str | None = None  # the artifact-listing fingerprint taken before the files were read


def _created(mv: Any) -> int | None:
    """A model version's creation time in ms (None when the answer has none)."""
    value = getattr(mv, "creation_timestamp", None)
    return value if isinstance(value, int) and value > 0 else None


_EVENT_REASONS = ("webhook", "tag-event")  # webhooks.py: served by the replica that received them


def _everything(_name: str) -> bool:
    return True


def _one_line(text: str | None) -> str:
    line = " ".join(str(text or "").split())
    return line if len(line) <= 300 else line[:297] + "..."
