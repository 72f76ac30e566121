"""The admission decision: an AdmissionReview (admission.k8s.io/v1) in, an AdmissionReview out.

``review(body, lookup, policy)`` is a function of the request and the verdict lookup: it finds the
model references in the submitted object (``model_refs``), asks the lookup about each within a time
budget, and allows the request only when every reference is approved. It denies, with one clear
message naming each offending reference and where it was found, when a model is quarantined, not
scanned, carries a forged verdict, is named by a mutable alias, cannot be verified, or when the
lookup fails or runs out of time (fail closed). Malformed reviews get an HTTP 400.

Only CREATE and UPDATE are judged; DELETE/CONNECT and objects already being deleted (finalizer
updates) are allowed so that a quarantined model can always be taken down.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlgate.analyzers.core.compat import tomllib

from .model_refs import (
    MalformedObject,
    ModelRef,
    MutableSelector,
    RegistryAlias,
    RegistryVersion,
    S3Objects,
    UnsupportedKind,
    Unverifiable,
    extract,
    parse_reference,
)
from .verdict_lookup import Approval, LookupFailed, VerdictLookup

log = logging.getLogger("mlgate.admission")

API_VERSION = "admission.k8s.io/v1"
JUDGED_OPERATIONS = frozenset({"CREATE", "UPDATE"})
KNOWN_KINDS = frozenset(
    {
        "InferenceService",
        "TrainedModel",
        "Model",
        "SeldonDeployment",
        "Deployment",
        "StatefulSet",
        "DaemonSet",
        "ReplicaSet",
        "Job",
        "CronJob",
        "Pod",
    }
)
LOOKUP_WORKERS = 16


class AdmissionPolicyError(Exception):
    """An admission policy file that cannot be used; the message is one line for a person."""


@dataclass(frozen=True)
class AdmissionPolicy:
    """How strict the webhook is. The defaults deny everything that is not a verified, pinned model."""

    resolve_aliases: bool = False  # True: check the version an alias points at now (it may move later)
    unverified_schemes: frozenset[str] = frozenset()  # schemes admitted with a warning, e.g. {"pvc"}
    storage_buckets: Mapping[str, str] = field(default_factory=dict)  # KServe storage key -> S3 bucket
    lookup_timeout: float = 2.0  # whole-request budget for verdict lookups, well under the webhook timeout


@dataclass(frozen=True)
class Reply:
    """What to send back: the HTTP status and the AdmissionReview document."""

    http_status: int
    document: dict[str, Any]
    kind: str  # low-cardinality kind label for metrics ("invalid" for malformed reviews)
    allowed: bool
    message: str = ""


MAX_NESTING = 200
"""Deepest JSON nesting accepted in a review (Kubernetes objects nest a few dozen levels at most);
deeper bodies get a 400 before they are parsed, so neither ``json`` nor the reference walk recurses."""
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_KEEP_BRACKETS = bytes(range(256)).translate(None, b"[]{}")
_SAME_BRACKETS = bytes.maketrans(b"{}", b"[]")


def nesting_depth(body: bytes | str, limit: int | None = None) -> int:
    """The nesting depth of ``[``/``{`` outside JSON strings, or ``limit + 1`` once it exceeds ``limit``.

    No recursion and no per-byte Python loop: strings are cut out and innermost ``[]`` pairs
    are removed one level per pass (C-speed ``bytes.replace``).
    """
    limit = MAX_NESTING if limit is None else limit
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    brackets = _STRING.sub(b"", raw).translate(_SAME_BRACKETS, _KEEP_BRACKETS)
    depth = 0
    while brackets:
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) == len(brackets):
            break  # unbalanced: not JSON, json.loads refuses it
        depth += 1
        if depth > limit:
            return limit + 1
        brackets = shorter
    return depth


def review(body: bytes | str | Mapping[str, Any], lookup: VerdictLookup, policy: AdmissionPolicy) -> Reply:
    """Judge one AdmissionReview. Never raises: every failure becomes a denial or a 400."""
    if isinstance(body, (bytes, str)):
        depth = nesting_depth(body)
        if depth > MAX_NESTING:
            return _bad_request(None, f"request body nests {depth} levels deep (at most {MAX_NESTING})")
    try:
        doc = json.loads(body) if isinstance(body, (bytes, str)) else body
    except (ValueError, UnicodeDecodeError, RecursionError):
        return _bad_request(None, "request body is not JSON")
    if not isinstance(doc, Mapping):
        return _bad_request(None, "request body is not a JSON object")
    if doc.get("apiVersion") != API_VERSION or doc.get("kind") != "AdmissionReview":
        return _bad_request(None, f"expected an {API_VERSION} AdmissionReview")
    request = doc.get("request")
    if not isinstance(request, Mapping) or not isinstance(request.get("uid"), str) or not request["uid"]:
        return _bad_request(None, "AdmissionReview has no request.uid")
    uid = request["uid"]
    kind_info = request.get("kind")
    kind = kind_info.get("kind") if isinstance(kind_info, Mapping) else None
    label = kind if kind in KNOWN_KINDS else "other"
    try:
        return _review_request(uid, kind, label, request, lookup, policy)
    except Exception as exc:  # a bug must still answer, and answer no (fail closed); the traceback goes to the log
        log.exception("admission review %s failed", uid)
        return _answer(
            uid, label, False, f"mlgate could not judge the request ({type(exc).__name__}); denied (fail closed)", 500
        )


def _review_request(
    uid: str, kind: str | None, label: str, request: Mapping[str, Any], lookup: VerdictLookup, policy: AdmissionPolicy
) -> Reply:
    operation = request.get("operation")
    if operation not in JUDGED_OPERATIONS:
        return _answer(uid, label, True)
    obj = request.get("object")
    if not isinstance(obj, Mapping):
        return _bad_request(uid, f"{operation} request carries no object")
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    if operation == "UPDATE" and metadata.get("deletionTimestamp"):
        return _answer(uid, label, True)
    subject = _subject(kind or "object", request, metadata)
    try:
        refs = extract(obj)
    except UnsupportedKind as exc:
        return _answer(uid, label, False, f"mlgate denied {subject}: {exc}; remove it from the webhook rules", 400)
    except MalformedObject as exc:
        return _answer(uid, label, False, f"mlgate denied {subject}: {exc}", 400)
    if not refs:
        return _answer(uid, label, True)
    problems, warnings = _judge(refs, lookup, policy)
    audit = {"models": ",".join(ref.uri for ref in refs)[:1000]}
    if problems:
        message = (
            f"mlgate denied {subject}: it would serve a model that is not approved: "
            + "; ".join(problems)
            + ". Serve an approved, pinned version (models:/<name>/<version>) or ask the security team."
        )
        return _answer(uid, label, False, message, 403, warnings=warnings, audit={**audit, "decision": "denied"})
    return _answer(uid, label, True, warnings=warnings, audit={**audit, "decision": "approved"})


# --- judging references ------------------------------------------------------------------------

_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    """One shared pool: a hung backend can hold at most LOOKUP_WORKERS threads; later requests time out."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=LOOKUP_WORKERS, thread_name_prefix="mlgate-lookup")
        return _pool


def _judge(refs: list[ModelRef], lookup: VerdictLookup, policy: AdmissionPolicy) -> tuple[list[str], list[str]]:
    """(problems, warnings) for the references, each problem naming the reference and its location."""
    problems: list[str] = []
    warnings: list[str] = []
    pending: list[tuple[ModelRef, str, Future[Approval]]] = []
    for ref in refs:
        shown = f"{ref.uri} ({ref.location})"
        decision = _plan(ref, lookup, policy)
        if isinstance(decision, str):
            problems.append(f"{shown} {decision}")
        elif decision is None:
            warnings.append(f"{shown} admitted without verification: the mlgate policy trusts its scheme")
        else:
            what, call = decision
            pending.append((ref, f"{shown}{what}", _executor().submit(call)))
    if pending:
        wait_futures([f for _, _, f in pending], timeout=policy.lookup_timeout)
    for _ref, shown, future in pending:
        if not future.done():
            future.cancel()
            problems.append(
                f"{shown}: the verdict lookup did not answer within {policy.lookup_timeout:g} s (denied, fail closed)"
            )
            continue
        try:
            approval = future.result()
        except LookupFailed as exc:
            problems.append(f"{shown}: could not be verified: {exc} (denied, fail closed)")
            continue
        except Exception as exc:  # any lookup crash denies (fail closed); the traceback goes to the log
            log.warning("verdict lookup crashed for %s", shown, exc_info=True)
            problems.append(f"{shown}: could not be verified: {type(exc).__name__} (denied, fail closed)")
            continue
        if not approval.approved:
            problems.append(f"{shown} {approval.reason}")
    return problems, warnings


def _plan(
    ref: ModelRef, lookup: VerdictLookup, policy: AdmissionPolicy
) -> str | None | tuple[str, Callable[[], Approval]]:
    """A denial reason (str), ``None`` for a trusted scheme, or (suffix, lookup call) to run."""
    if ref.storage_key is not None:
        bucket = policy.storage_buckets.get(ref.storage_key)
        if not bucket:
            return (
                f"uses KServe storage key {ref.storage_key!r}, whose bucket mlgate does not know; map it in "
                "the admission policy (storage_buckets) or set storage.parameters.bucket"
            )
        target = parse_reference(f"s3://{bucket}/{ref.uri.lstrip('/')}")
    else:
        target = parse_reference(ref.uri)
    if isinstance(target, RegistryVersion):
        return "", lambda: lookup.registry_version(target.name, target.version)
    if isinstance(target, RegistryAlias):
        if not policy.resolve_aliases:
            return (
                f"names alias @{target.alias}, which can move to another version after admission; "
                f"pin a version (models:/{target.name}/<version>)"
            )
        return f" (alias @{target.alias})", lambda: _via_alias(lookup, target)
    if isinstance(target, MutableSelector):
        return (
            f"names {target.selector!r} instead of a version; stages and 'latest' move, "
            f"pin a version (models:/{target.name}/<version>)"
        )
    if isinstance(target, S3Objects):
        return "", lambda: lookup.s3_objects(target.bucket, target.key)
    assert isinstance(target, Unverifiable)
    if target.scheme in policy.unverified_schemes:
        return None
    return f"cannot be verified: {target.reason}"


def _via_alias(lookup: VerdictLookup, target: RegistryAlias) -> Approval:
    version = lookup.resolve_alias(target.name, target.alias)
    if version is None:
        return Approval(False, "names an alias that does not exist")
    approval = lookup.registry_version(target.name, version)
    if approval.approved:
        return approval
    return Approval(False, f"points at version {version}, which {approval.reason}")


# --- replies -----------------------------------------------------------------------------------


def _subject(kind: str, request: Mapping[str, Any], metadata: Mapping[str, Any]) -> str:
    name = request.get("name") or metadata.get("name") or metadata.get("generateName") or "(unnamed)"
    namespace = request.get("namespace") or metadata.get("namespace")
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def _answer(
    uid: str,
    kind: str,
    allowed: bool,
    message: str = "",
    code: int = 200,
    warnings: list[str] | None = None,
    audit: dict[str, str] | None = None,
) -> Reply:
    response: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if not allowed:
        reason = {403: "Forbidden", 400: "BadRequest"}.get(code, "InternalError")
        response["status"] = {"code": code, "reason": reason, "message": message}
    if warnings:
        response["warnings"] = [w[:256] for w in warnings]  # the API server caps each warning
    if audit:
        response["auditAnnotations"] = audit
    document = {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response}
    return Reply(200, document, kind, allowed, message)


def _bad_request(uid: str | None, message: str) -> Reply:
    """A review we cannot parse: HTTP 400 (the API server then applies the failure policy)."""
    if uid is not None:
        return _answer(uid, "invalid", False, f"mlgate denied the request: {message}", 400)
    document = {
        "apiVersion": API_VERSION,
        "kind": "AdmissionReview",
        "response": {
            "uid": "",
            "allowed": False,
            "status": {"code": 400, "reason": "BadRequest", "message": f"mlgate: {message}"},
        },
    }
    return Reply(400, document, "invalid", False, message)


# --- policy file -------------------------------------------------------------------------------


def load_admission_policy(path: str | Path | None) -> AdmissionPolicy:
    """The default admission policy, or the ``[admission]`` table of the TOML file at ``path``."""
    if path is None:
        return AdmissionPolicy()
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise AdmissionPolicyError(f"cannot read admission policy {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise AdmissionPolicyError(f"admission policy {path} is not valid TOML: {exc}") from None
    table = data.get("admission", {})
    where = f"{path} [admission]"
    if not isinstance(table, dict) or set(data) - {"admission"}:
        raise AdmissionPolicyError(f"{path}: expected only an [admission] table")
    unknown = set(table) - {"resolve_aliases", "unverified_schemes", "storage_buckets", "lookup_timeout_seconds"}
    if unknown:
        raise AdmissionPolicyError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    policy = AdmissionPolicy()
    resolve = table.get("resolve_aliases", policy.resolve_aliases)
    if not isinstance(resolve, bool):
        raise AdmissionPolicyError(f"{where} resolve_aliases: expected true or false")
    schemes = table.get("unverified_schemes", [])
    if not isinstance(schemes, list) or not all(isinstance(s, str) and s for s in schemes):
        raise AdmissionPolicyError(f"{where} unverified_schemes: expected a list of URI schemes")
    buckets = table.get("storage_buckets", {})
    if not isinstance(buckets, dict) or not all(isinstance(v, str) and v for v in buckets.values()):
        raise AdmissionPolicyError(f'{where} storage_buckets: expected a table of storage key = "bucket"')
    timeout = table.get("lookup_timeout_seconds", policy.lookup_timeout)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 10:
        raise AdmissionPolicyError(f"{where} lookup_timeout_seconds: expected a number in (0, 10]")
    return AdmissionPolicy(
        resolve_aliases=resolve,
        unverified_schemes=frozenset(s.lower() for s in schemes),
        storage_buckets=dict(buckets),
        lookup_timeout=float(timeout),
    )
