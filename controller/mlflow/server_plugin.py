"""MLflow server plugin (``mlflow server --app-name mlgate``): the preventive promotion gate.

Runs inside the MLflow server as a Flask ``before_request`` hook and answers
HTTP 403 ``PERMISSION_DENIED`` with a clear message when a request would:

* set an alias on a version without a validly signed ``approved`` verdict
  (``registered-models/alias`` POST);
* move a version without one to Staging or Production (``model-versions/transition-stage``);
* write or delete an ``mlgate.*`` tag on a version or registered model, or create one
  carrying such tags, without the controller's token.

The paths are taken from MLflow's own service descriptor, so the REST
(``/api/2.0/mlflow/...``) and UI (``/ajax-api/2.0/mlflow/...``) routes and any
``--static-prefix`` are covered exactly as the server registers them.

Server environment: ``MLGATE_SIGNING_KEY`` (or ``MLGATE_SIGNING_KEY_FILE``), the
controller's verdict key; optionally ``MLGATE_CONTROLLER_TOKEN`` (default:
derived from the key, as the controller derives it). Without a key the plugin
fails closed: every gated request is refused.

The controller authenticates by sending ``X-Mlgate-Controller-Token: <token>``
on its registry calls; ``ControllerTokenHeader`` is the MLflow request-header
provider (entry point ``mlflow.request_header_provider``) that adds it once the
controller called ``set_controller_token``.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

# Only the standard library at import time: MLflow loads this module in every client process
# (request-header provider entry point); the gate's imports happen inside the server only.

log = logging.getLogger("mlgate.plugin")

TOKEN_HEADER = "X-Mlgate-Controller-Token"
_TOKEN: str | None = None  # set in the controller process only


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
    """The controller's verdict key, read by the one shared loader; None (gated calls refused) when unusable."""
    from ..config.environment import signing_key_sources
    from ..verdicts.signing import SigningKeyError, load_signing_key

    try:
        return load_signing_key(*signing_key_sources(environ))
    except SigningKeyError as exc:
        log.error("mlgate plugin: %s; refusing every gated request", exc)
        return None


def _gated_paths() -> dict[tuple[str, str], str]:
    """(HTTP method, path) -> registry RPC name, for the RPCs the gate inspects."""
    from mlflow.protos import databricks_pb2
    from mlflow.protos.model_registry_pb2 import ModelRegistryService
    from mlflow.server.handlers import _get_paths

    wanted = {
        "setRegisteredModelAlias",
        "transitionModelVersionStage",
        "setModelVersionTag",
        "deleteModelVersionTag",
        "setRegisteredModelTag",
        "deleteRegisteredModelTag",
        "createModelVersion",
        "createRegisteredModel",
    }
    out: dict[tuple[str, str], str] = {}
    for method in ModelRegistryService.DESCRIPTOR.methods:
        if method.name not in wanted:
            continue
        for endpoint in method.GetOptions().Extensions[databricks_pb2.rpc].endpoints:
            for path in _get_paths(endpoint.path, version=endpoint.since.major):
                out[(endpoint.method, path)] = method.name
    return out


class PromotionGate:
    """The decision logic, separate from Flask so it can be exercised with plain values."""

    def __init__(
        self, key: bytes | None, token: str | None, version_tags: Callable[[str, str], Mapping[str, str] | None]
    ) -> None:
        from ..verdicts.signing import derive_controller_token

        self._key = key
        self._token = token or (derive_controller_token(key) if key else None)
        self._version_tags = version_tags

    def check(self, rpc: str, params: Mapping[str, Any], presented_token: str | None) -> str | None:
        """None to let the request through, else the refusal message."""
        from ..verdicts.gate import PROMOTED_STAGES
        from ..verdicts.tags import is_reserved

        if self._key is None:
            return "mlgate: promotion gate has no verdict key (MLGATE_SIGNING_KEY unset on the MLflow server); refused"
        controller = (
            bool(presented_token)
            and self._token is not None
            and hmac.compare_digest(presented_token.encode(), self._token.encode())
        )
        name = str(params.get("name") or "")
        if rpc == "setRegisteredModelAlias":
            return self._promotion(name, str(params.get("version") or ""))
        if rpc == "transitionModelVersionStage":
            if str(params.get("stage") or "") not in PROMOTED_STAGES:
                return None
            return self._promotion(name, str(params.get("version") or ""))
        if rpc in ("setModelVersionTag", "deleteModelVersionTag", "setRegisteredModelTag", "deleteRegisteredModelTag"):
            key = str(params.get("key") or "")
            if is_reserved(key) and not controller:
                return f"mlgate: tag {key!r} is reserved for the mlgate controller; write refused"
            return None
        if rpc in ("createModelVersion", "createRegisteredModel"):
            tags = params.get("tags") or []
            keys = [str(t.get("key") or "") for t in tags if isinstance(t, dict)] if isinstance(tags, list) else []
            reserved = [k for k in keys if is_reserved(k)]
            if reserved and not controller:
                return f"mlgate: tag {reserved[0]!r} is reserved for the mlgate controller; create refused"
        return None

    def _promotion(self, name: str, version: str) -> str | None:
        from ..verdicts.gate import promotion_decision

        if not name or not version:
            return None  # MLflow's own validation answers malformed requests
        tags = self._version_tags(name, version)
        if tags is None:
            return None  # no such version: MLflow answers 404 itself
        decision = promotion_decision(self._key or b"", name, version, tags, count_as="plugin")
        return None if decision.allowed else decision.message


def create_app(app: Any = None) -> Any:
    """The ``mlflow.app`` entry point: install the gate on MLflow's Flask app."""
    from flask import Response, request
    from mlflow.exceptions import MlflowException
    from mlflow.server import app as default_app
    from mlflow.server.handlers import _get_model_registry_store

    app = app or default_app
    from ..config.environment import controller_token

    key = _load_key(None)
    if key is None:
        log.error("mlgate plugin: MLGATE_SIGNING_KEY is not set; every promotion will be refused")
    paths = _gated_paths()

    def version_tags(name: str, version: str) -> Mapping[str, str] | None:
        try:
            return dict(_get_model_registry_store().get_model_version(name, version).tags or {})
        except MlflowException:
            return None

    gate = PromotionGate(key, controller_token() or None, version_tags)

    def before_request() -> Any:
        rpc = paths.get((request.method, request.path))
        if rpc is None:
            return None
        params: dict[str, Any] = dict(request.args.items())
        body = request.get_json(silent=True, force=True)
        if isinstance(body, dict):
            params.update(body)
        refusal = gate.check(rpc, params, request.headers.get(TOKEN_HEADER))
        if refusal is None:
            return None
        log.warning("%s", refusal)
        payload = json.dumps({"error_code": "PERMISSION_DENIED", "message": refusal})
        return Response(payload, status=403, mimetype="application/json")

    app.before_request(before_request)

    from mlflow.server import _MLFLOW_SGI_NAME

    if _MLFLOW_SGI_NAME.get() == "uvicorn":
        from mlflow.server.fastapi_app import create_fastapi_app

        return create_fastapi_app(app)
    return app
