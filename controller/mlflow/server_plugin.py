"""MLflow server plugin (``mlflow server --app-name mlgate``): the preventive promotion gate.

Runs inside the MLflow server and answers HTTP 403 ``PERMISSION_DENIED`` with a clear
message when a request would:

* set an alias on a version, or move it to Staging or Production, unless the version carries
  a validly signed ``approved`` verdict whose artifact listing still matches the one signed at
  scan time (``verdicts/gate.promotion_decision``);
* write or delete a reserved tag (any key an ``mlgate.*`` key could collide with, in any case,
  ``verdicts/tags.is_reserved``) on a version or registered model, or create one carrying such
  tags, without the controller's token;
* write or delete artifacts under the storage location of a registered model version through
  the server (the ``mlflow-artifacts`` proxy, the UI upload, presigned upload URLs).

The gate sees each request exactly as MLflow's handler will: the route is resolved by Flask's
own URL map to MLflow's handler function, and the request is parsed by MLflow's
``_get_request_message`` into the handler's protobuf message (JSON, double-encoded JSON from
legacy clients, query strings of GET requests); stage names go through MLflow's
``get_canonical_stage``. ``ROUTE_CLASSES`` classifies every model-registry and artifact RPC;
``tests/mlflow/test_api_surface.py`` fails when MLflow registers a mutating one it does not list.

Server environment: ``MLGATE_SIGNING_KEY`` (or ``MLGATE_SIGNING_KEY_FILE``), the controller's
verdict key; optionally ``MLGATE_CONTROLLER_TOKEN`` (default: derived from the key, as the
controller derives it). Without a key the plugin fails closed on promotions only (no verdict can
be verified): aliases and Staging/Production moves are refused, reserved tags need the token
(refused when there is none), and every other call passes.

The controller authenticates by sending ``X-Mlgate-Controller-Token: <token>`` on its registry
calls; ``ControllerTokenHeader`` is the MLflow request-header provider (entry point
``mlflow.request_header_provider``) that adds it once the controller called ``set_controller_token``.
"""

from __future__ import annotations

import hmac
import json
import logging
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlparse

# Only the standard library at import time: MLflow loads this module in every client process
# (request-header provider entry point); the gate's imports happen inside the server only.

log = logging.getLogger("mlgate.plugin")

TOKEN_HEADER = "X-Mlgate-Controller-Token"
_TOKEN: str | None = None  # set in the controller process only

GATED = "gated"  # promotions: refused unless the version is approved and unchanged
RESERVED_TAG = "reserved-tag"  # tag writes: refused for reserved keys without the controller token
ARTIFACT_WRITE = "artifact-write"  # artifact writes: refused under a registered version's location
HARMLESS = "harmless"  # reads, and changes that cannot promote (renames and copies lose the signed name)

# Every RPC of MLflow's ModelRegistryService and MlflowArtifactsService, plus the artifact-writing
# routes outside those services (keyed by MLflow's handler function name).
ROUTE_CLASSES: dict[str, str] = {
    # ModelRegistryService
    "createRegisteredModel": RESERVED_TAG,
    "renameRegisteredModel": HARMLESS,  # verdicts are signed for the name: renamed versions lose them
    "updateRegisteredModel": HARMLESS,  # description only
    "deleteRegisteredModel": HARMLESS,
    "getRegisteredModel": HARMLESS,
    "searchRegisteredModels": HARMLESS,
    "getLatestVersions": HARMLESS,
    "createModelVersion": RESERVED_TAG,  # a new version (copy included) is unscanned until the controller signs it
    "updateModelVersion": HARMLESS,  # description only
    "transitionModelVersionStage": GATED,
    "deleteModelVersion": HARMLESS,
    "getModelVersion": HARMLESS,
    "searchModelVersions": HARMLESS,
    "getModelVersionDownloadUri": HARMLESS,
    "setRegisteredModelTag": RESERVED_TAG,
    "setModelVersionTag": RESERVED_TAG,
    "deleteRegisteredModelTag": RESERVED_TAG,
    "deleteModelVersionTag": RESERVED_TAG,
    "setRegisteredModelAlias": GATED,
    "deleteRegisteredModelAlias": HARMLESS,  # a demotion
    "getModelVersionByAlias": HARMLESS,
    # MlflowArtifactsService (the mlflow-artifacts proxy)
    "downloadArtifact": HARMLESS,
    "uploadArtifact": ARTIFACT_WRITE,
    "listArtifacts": HARMLESS,
    "deleteArtifact": ARTIFACT_WRITE,
    "createMultipartUpload": ARTIFACT_WRITE,
    "completeMultipartUpload": ARTIFACT_WRITE,
    "abortMultipartUpload": HARMLESS,
    "getPresignedDownloadUrl": HARMLESS,
    # routes outside the two services that touch run or logged-model artifacts (by handler name)
    "serve_upload_artifact": ARTIFACT_WRITE,  # UI upload: ?run_uuid=&path=
    "_create_presigned_upload_url": ARTIFACT_WRITE,  # a URL to write straight into the store
    "_create_presigned_download_url": HARMLESS,
}
# where those handlers live: (module, function name)
_EXTRA_HANDLERS = (
    ("mlflow.server", "serve_upload_artifact"),
    ("mlflow.server.handlers", "_create_presigned_upload_url"),
    ("mlflow.server.handlers", "_create_presigned_download_url"),
)
PROXY_ANCHOR = "/mlflow-artifacts/artifacts/"
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_SAFE_NEEDLE = re.compile(r"^[A-Za-z0-9._\-]+$")


def set_controller_token(token: str | None) -> None:
    """Make every MLflow REST call of this process carry the controller token."""
    global _TOKEN
    _TOKEN = token or None


class ControllerTokenHeader:
    """MLflow ``RequestHeaderProvider``: adds the controller token header when one is set."""

    def in_context(self) -> bool:
        return _TOKEN is not None

    def request_headers(self) -> dict[str, str]:
        return {TOKEN_HEADER: _TOKEN} if _TOKEN else {}


# -- server side ---------------------------------------------------------------------------------


def _load_key(environ: Mapping[str, str] | None) -> bytes | None:
    """The controller's verdict key, read by the one shared loader; None (promotions refused) when unusable."""
    from ..config.environment import signing_key_sources
    from ..verdicts.signing import SigningKeyError, load_signing_key

    try:
        return load_signing_key(*signing_key_sources(environ))
    except SigningKeyError as exc:
        log.error("mlgate plugin: %s; refusing every promotion", exc)
        return None


def registry_handlers() -> dict[Any, tuple[str, Any]]:
    """MLflow handler function -> (RPC name, request message class), for every RPC in ``ROUTE_CLASSES``."""
    from mlflow.protos.mlflow_artifacts_pb2 import MlflowArtifactsService
    from mlflow.protos.model_registry_pb2 import ModelRegistryService
    from mlflow.server import handlers

    out: dict[Any, tuple[str, Any]] = {}
    for service in (ModelRegistryService, MlflowArtifactsService):
        for method in service.DESCRIPTOR.methods:
            request_class = service().GetRequestClass(method)
            handler = handlers.get_handler(request_class)
            if handler is not handlers._not_implemented:
                out[handler] = (method.name, request_class)
    import importlib

    for module, name in _EXTRA_HANDLERS:
        handler = getattr(importlib.import_module(module), name, None)
        if handler is not None and handler not in out:
            out[handler] = (name, None)
    return out


def canonical_stage(stage: str) -> str | None:
    """MLflow's canonical stage name for ``stage`` (``production`` -> ``Production``), None when MLflow rejects it."""
    from mlflow.entities.model_registry.model_version_stages import get_canonical_stage
    from mlflow.exceptions import MlflowException

    try:
        return get_canonical_stage(stage)
    except MlflowException:
        return None


def location_key(uri: str) -> tuple[str, str] | None:
    """A comparable (kind, path) for an artifact location; None when it names no location."""
    parsed = urlparse(uri)
    scheme = parsed.scheme.lower()
    path = unquote(parsed.path)
    if scheme == "mlflow-artifacts":
        kind, rel = "proxy", path
    elif scheme in ("http", "https") and PROXY_ANCHOR in path:
        kind, rel = "proxy", path.split(PROXY_ANCHOR, 1)[1]
    elif scheme in ("", "file"):
        kind, rel = "file", path
    elif scheme == "models" or scheme == "runs":
        return None
    else:
        kind, rel = f"{scheme}://{parsed.netloc}", path
    rel = posixpath.normpath("/" + rel.lstrip("/")).lstrip("/")
    return kind, rel


def overlaps(a: tuple[str, str], b: tuple[str, str]) -> bool:
    """Is one location equal to, inside, or above the other?"""
    if a[0] != b[0]:
        return False
    x, y = a[1].rstrip("/"), b[1].rstrip("/")
    return not x or not y or x == y or x.startswith(y + "/") or y.startswith(x + "/")


def search_needles(rel: str) -> list[str]:
    """Path segments every registered source above, at or below ``rel`` must contain (for a LIKE search).

    The run id (``<experiment>/<run id>/...``) or logged-model id (``<experiment>/models/<id>/...``)
    when the path has that shape; else the longest of its first two segments.
    """
    segs = [s for s in rel.split("/") if s and s != "."]
    if not segs:
        return [""]
    if len(segs) >= 3 and segs[1] == "models":
        return [segs[2]]
    if len(segs) >= 2 and _RUN_ID.match(segs[1]):
        return [segs[1]]
    return [max(segs[:2], key=len)]


class PromotionGate:
    """The decision logic, separate from Flask so it can be exercised with plain values.

    ``version_tags(name, version)`` returns a version's tags (None when it does not exist);
    ``current_listing(name, version, mode)`` lists its artifacts now (``verdicts/listing.py``);
    ``registered_locations(key)`` yields the storage locations of registered versions that may
    overlap the location ``key`` (``location_key``), as ``(label, location key)``.
    """

    def __init__(
        self,
        key: bytes | None,
        token: str | None,
        version_tags: Callable[[str, str], Mapping[str, str] | None],
        current_listing: Callable[[str, str, str], str] | None = None,
        registered_locations: Callable[[tuple[str, str]], Iterable[tuple[str, tuple[str, str]]]] | None = None,
    ) -> None:
        from ..verdicts.signing import derive_controller_token

        self._key = key
        self._token = token or (derive_controller_token(key) if key else None)
        self._version_tags = version_tags
        self._current_listing = current_listing
        self._registered_locations = registered_locations

    def is_controller(self, presented_token: str | None) -> bool:
        return (
            bool(presented_token)
            and self._token is not None
            and hmac.compare_digest(presented_token.encode(), self._token.encode())
        )

    def check(self, rpc: str, message: Any, presented_token: str | None) -> str | None:
        """None to let the request through, else the refusal message.

        ``message`` is the request as MLflow's handler parsed it (the protobuf message, or any
        object with the same attribute names).
        """
        from ..verdicts.gate import PROMOTED_STAGES
        from ..verdicts.tags import is_reserved

        name = str(getattr(message, "name", "") or "")
        if rpc == "setRegisteredModelAlias":
            return self._promotion(name, str(getattr(message, "version", "") or ""), "alias")
        if rpc == "transitionModelVersionStage":
            raw = str(getattr(message, "stage", "") or "")
            stage = canonical_stage(raw)
            if stage is not None and stage not in PROMOTED_STAGES:
                return None  # None / Archived: a demotion
            return self._promotion(name, str(getattr(message, "version", "") or ""), f"stage {raw!r}")
        if rpc in ("setModelVersionTag", "deleteModelVersionTag", "setRegisteredModelTag", "deleteRegisteredModelTag"):
            key = str(getattr(message, "key", "") or "")
            if is_reserved(key) and not self.is_controller(presented_token):
                return f"mlgate: tag {key!r} is reserved for the mlgate controller; write refused"
            return None
        if rpc in ("createModelVersion", "createRegisteredModel"):
            keys = [str(getattr(t, "key", "") or "") for t in (getattr(message, "tags", None) or [])]
            reserved = [k for k in keys if is_reserved(k)]
            if reserved and not self.is_controller(presented_token):
                return f"mlgate: tag {reserved[0]!r} is reserved for the mlgate controller; create refused"
        return None

    def _promotion(self, name: str, version: str, what: str) -> str | None:
        from ..verdicts.gate import promotion_decision

        if self._key is None:
            return (
                "mlgate: promotion gate has no verdict key (MLGATE_SIGNING_KEY unset on the MLflow server); "
                f"{what} refused"
            )
        if not name or not version:
            return None  # MLflow's own validation answers malformed requests
        tags = self._version_tags(name, version)
        if tags is None:
            return None  # no such version: MLflow answers 404 itself
        listing = None
        if self._current_listing is not None:
            current = self._current_listing

            def listing(mode: str) -> str:
                return current(name, version, mode)

        decision = promotion_decision(self._key, name, version, tags, count_as="plugin", current_listing=listing)
        return None if decision.allowed else decision.message

    def check_artifact_write(self, target: str | None) -> str | None:
        """Refuse a write or delete at artifact location ``target`` that touches a registered version."""
        if not target:
            return None
        key = location_key(target)
        if key is None or self._registered_locations is None:
            return None
        try:
            for label, location in self._registered_locations(key):
                if overlaps(key, location):
                    return (
                        f"mlgate: {target} is inside the artifacts of registered model version {label}; "
                        "registered artifacts are immutable (register a new version instead); write refused"
                    )
        except Exception as exc:  # noqa: BLE001 - cannot tell: fail closed
            return f"mlgate: cannot check whether {target} belongs to a registered model version ({exc}); refused"
        return None


def _refusal(message: str) -> tuple[str, int]:
    return json.dumps({"error_code": "PERMISSION_DENIED", "message": message}), 403


def create_app(app: Any = None) -> Any:
    """The ``mlflow.app`` entry point: install the gate on MLflow's Flask app (and its ASGI front)."""
    from flask import Response, request
    from mlflow.exceptions import MlflowException
    from mlflow.server import app as default_app
    from mlflow.server.handlers import _get_model_registry_store, _get_request_message

    from .artifact_listing import take_fingerprint

    app = app or default_app
    from ..config.environment import controller_token

    key = _load_key(None)
    if key is None:
        log.error("mlgate plugin: MLGATE_SIGNING_KEY is not set; every promotion will be refused")
    handlers = registry_handlers()
    destination = _artifact_destination()

    def version_tags(name: str, version: str) -> Mapping[str, str] | None:
        try:
            return dict(_get_model_registry_store().get_model_version(name, version).tags or {})
        except MlflowException:
            return None

    def current_listing(name: str, version: str, mode: str) -> str:
        uri = _get_model_registry_store().get_model_version_download_uri(name, version)
        return take_fingerprint(uri, mode, destination=destination)

    def registered_locations(target: tuple[str, str]) -> Iterable[tuple[str, tuple[str, str]]]:
        return _registered_locations(_get_model_registry_store(), target, destination)

    gate = PromotionGate(key, controller_token() or None, version_tags, current_listing, registered_locations)

    def before_request() -> Any:
        rule = request.url_rule
        handler = app.view_functions.get(rule.endpoint) if rule is not None else None
        entry = handlers.get(handler) if handler is not None else None
        if entry is None:
            return None
        rpc, request_class = entry
        kind = ROUTE_CLASSES.get(rpc)
        if kind in (None, HARMLESS):
            return None
        if kind == ARTIFACT_WRITE:
            refusal = gate.check_artifact_write(_artifact_target(rpc, request, destination))
        else:
            try:  # the very parser the handler runs next: same body, same result
                message = _get_request_message(request_class(), flask_request=request)
            except Exception:  # noqa: BLE001 - the handler fails the same way before touching the store
                return None
            refusal = gate.check(rpc, message, request.headers.get(TOKEN_HEADER))
        if refusal is None:
            return None
        log.warning("%s", refusal)
        payload, status = _refusal(refusal)
        return Response(payload, status=status, mimetype="application/json")

    app.before_request(before_request)

    from mlflow.server import _MLFLOW_SGI_NAME

    if _MLFLOW_SGI_NAME.get() == "uvicorn":
        from mlflow.server.fastapi_app import create_fastapi_app

        return _ArtifactWriteGuard(create_fastapi_app(app), gate, destination)
    return app


def _artifact_destination() -> str | None:
    """The server's ``--artifacts-destination`` when it proxies artifacts."""
    from mlflow.server import ARTIFACTS_DESTINATION_ENV_VAR

    from ..config.environment import named

    return named(ARTIFACTS_DESTINATION_ENV_VAR) or None


def _artifact_target(rpc: str, request: Any, destination: str | None) -> str | None:
    """The artifact location a write request touches (as a URI), from the request MLflow will serve."""
    if rpc == "serve_upload_artifact":
        run_id, path = request.args.get("run_uuid"), request.args.get("path")
        return _run_artifact_target(run_id, None, path)
    if rpc == "_create_presigned_upload_url":
        from mlflow.protos.service_pb2 import CreatePresignedUploadUrl
        from mlflow.server.handlers import _get_request_message

        try:
            msg = _get_request_message(CreatePresignedUploadUrl(), flask_request=request)
        except Exception:  # noqa: BLE001 - the handler fails the same way
            return None
        return _run_artifact_target(msg.run_id or None, msg.model_id or None, msg.path)
    artifact_path = (request.view_args or {}).get("artifact_path")
    if artifact_path is None:
        return None
    return f"mlflow-artifacts:/{str(artifact_path).lstrip('/')}"


def _run_artifact_target(run_id: str | None, model_id: str | None, path: str | None) -> str | None:
    from mlflow.exceptions import MlflowException
    from mlflow.server.handlers import _get_tracking_store

    try:
        if run_id:
            root = _get_tracking_store().get_run(run_id).info.artifact_uri
        elif model_id:
            root = _get_tracking_store().get_logged_model(model_id).artifact_location
        else:
            return None
    except MlflowException:
        return None  # the handler answers 404 itself
    return root.rstrip("/") + "/" + str(path or "").lstrip("/")


def _registered_locations(
    store: Any, target: tuple[str, str], destination: str | None
) -> Iterable[tuple[str, tuple[str, str]]]:
    """Registered versions whose storage location may overlap ``target`` (exact check by the caller)."""
    from .artifact_listing import physical_uri

    rel = target[1]
    if target[0] != "proxy" and destination:
        dest = location_key(destination)
        if dest is not None and overlaps(dest, target) and len(rel) >= len(dest[1]):
            rel = rel[len(dest[1]) :].lstrip("/")
    seen: set[tuple[str, str]] = set()
    for needle in search_needles(rel):
        if not _SAFE_NEEDLE.match(needle):
            raise ValueError(f"unsupported characters in artifact path segment {needle!r}")
        filters = [f"source_path LIKE '%{needle}%'"]
        if _RUN_ID.match(needle):
            filters.append(f"run_id = '{needle}'")
        for filter_string in filters:
            token = None
            while True:
                page = store.search_model_versions(filter_string=filter_string, max_results=1000, page_token=token)
                for mv in page:
                    ident = (mv.name, str(mv.version))
                    if ident in seen:
                        continue
                    seen.add(ident)
                    uri = store.get_model_version_download_uri(mv.name, mv.version)
                    label = f"models:/{mv.name}/{mv.version}"
                    for candidate in {uri, physical_uri(uri, destination)}:
                        loc = location_key(candidate)
                        if loc is not None:
                            yield label, loc
                token = getattr(page, "token", None)
                if not token:
                    break


class _ArtifactWriteGuard:
    """ASGI front for uvicorn: MLflow serves artifact uploads natively there, outside Flask's hooks."""

    _PATH = re.compile(r"^(?:.*?)/(?:api|ajax-api)/2\.0/mlflow-artifacts/(?:artifacts|mpu/create|mpu/complete)/(.+)$")

    def __init__(self, app: Any, gate: PromotionGate, destination: str | None) -> None:
        self._app = app
        self._gate = gate
        self._destination = destination

    def __getattr__(self, name: str) -> Any:
        return getattr(self._app, name)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope.get("type") == "http" and scope.get("method") in ("PUT", "POST", "DELETE", "PATCH"):
            match = self._PATH.match(scope.get("path", ""))
            if match:
                import anyio

                target = f"mlflow-artifacts:/{match[1].lstrip('/')}"
                refusal = await anyio.to_thread.run_sync(self._gate.check_artifact_write, target)
                if refusal is not None:
                    log.warning("%s", refusal)
                    payload, status = _refusal(refusal)
                    body = payload.encode()
                    await send(
                        {
                            "type": "http.response.start",
                            "status": status,
                            "headers": [
                                (b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                            ],
                        }
                    )
                    await send({"type": "http.response.body", "body": body})
                    return
        await self._app(scope, receive, send)
