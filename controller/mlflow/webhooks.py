"""MLflow webhook receiver: verify, dedupe, turn deliveries into queued requests, answer fast.

A delivery is accepted only with a valid ``X-MLflow-Signature`` (``v1,<base64
HMAC-SHA256(secret, "<delivery id>.<timestamp>.<body>")>``), a timestamp within
``max_skew`` seconds, and a delivery id not seen before. Events are hints; the
reconcile loop stays the source of truth:

* ``model_version.created`` -> scan the version;
* ``model_version_alias.created`` -> check the alias now (gate fallback);
* ``model_version_tag.set`` / ``.deleted`` on an ``mlgate.*`` key that is not the
  echo of the controller's own write -> re-verify the version (a forged or removed
  verdict is rescanned); other keys are ignored.

Rejections are counted in ``mlgate_events_rejected_total{source, reason}``
(reason: signature, timestamp, replay, malformed); a replayed delivery still
gets 200 so MLflow does not retry it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from ..runtime.http_server import HttpRequest, Response
from ..runtime.interface import PRIORITY_EVENT, PRIORITY_GATE, Enqueue, ScanRequest
from ..runtime.logging_json import fields
from ..runtime.metrics import EVENTS_RECEIVED, EVENTS_REJECTED
from ..verdicts.tags import is_reserved
from .source import SOURCE, alias_key, version_key

log = logging.getLogger("mlgate.webhook")

EVENT_SOURCE = "mlflow-webhook"  # metric label
REJECT_REASONS = ("signature", "timestamp", "replay", "malformed")
EVENTS = ("model_version.created", "model_version_alias.created", "model_version_tag.set", "model_version_tag.deleted")
_MAX_DELIVERY_IDS = 100_000


def expected_signature(secret: bytes, delivery_id: str, timestamp: str, body: bytes) -> str:
    """The ``X-MLflow-Signature`` value MLflow sends for this delivery."""
    mac = hmac.new(secret, f"{delivery_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


class WebhookReceiver:
    """``handle`` is an ``HttpServer`` route. ``is_own_write(name, version, key, value)`` filters echoes."""

    def __init__(
        self,
        secret: bytes,
        enqueue: Enqueue,
        is_own_write: Callable[[str, str, str, str], bool],
        max_skew: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret
        self._enqueue = enqueue
        self._is_own_write = is_own_write
        self._max_skew = max_skew
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def handle(self, request: HttpRequest) -> Response:
        EVENTS_RECEIVED.labels(source=EVENT_SOURCE).inc()
        delivery_id = request.headers.get("X-MLflow-Delivery-Id", "") or ""
        stamp = request.headers.get("X-MLflow-Timestamp", "") or ""
        signature = request.headers.get("X-MLflow-Signature", "") or ""
        if not delivery_id or not signature.startswith("v1,"):
            return self._reject("signature", 401, delivery_id, "missing delivery id or signature")
        if not hmac.compare_digest(signature, expected_signature(self._secret, delivery_id, stamp, request.body)):
            return self._reject("signature", 401, delivery_id, "signature does not match")
        try:
            skew = abs(self._clock() - int(stamp))
        except ValueError:
            return self._reject("timestamp", 400, delivery_id, "timestamp is not a number")
        if skew > self._max_skew:
            return self._reject("timestamp", 401, delivery_id, f"timestamp {int(skew)} s away from now")
        if not self._first_delivery(delivery_id):
            self._reject("replay", 200, delivery_id, "delivery id already seen")
            return 200, "application/json", b'{"status": "duplicate"}'
        try:
            event = json.loads(request.body)
            request_obj = self._to_request(event)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            return self._reject("malformed", 400, delivery_id, f"unreadable event: {exc}")
        if request_obj is not None:
            self._enqueue(request_obj)
        return 200, "application/json", b'{"status": "ok"}'

    def _to_request(self, event: dict) -> ScanRequest | None:
        kind = f"{event['entity']}.{event['action']}"
        data = event["data"]
        name = data["name"]
        if not isinstance(name, str) or not name:
            raise ValueError("model name missing")
        if kind == "model_version.created":
            return ScanRequest(SOURCE, version_key(name, str(data["version"])), "webhook", PRIORITY_EVENT)
        if kind == "model_version_alias.created":
            return ScanRequest(SOURCE, alias_key(name, str(data["alias"])), "webhook", PRIORITY_GATE)
        if kind in ("model_version_tag.set", "model_version_tag.deleted"):
            key, version = str(data["key"]), str(data["version"])
            if not is_reserved(key):
                return None
            if kind == "model_version_tag.set" and self._is_own_write(name, version, key, str(data.get("value"))):
                return None
            log.warning(
                "verdict tag changed by someone else; re-verifying",
                extra=fields(source=SOURCE, model=name, version=version, event=kind),
            )
            return ScanRequest(SOURCE, version_key(name, version), "tag-event", PRIORITY_EVENT)
        return None  # events we do not act on (registered_model.created, prompts, ...)

    def _first_delivery(self, delivery_id: str) -> bool:
        now = self._clock()
        with self._lock:
            while self._seen and (
                len(self._seen) > _MAX_DELIVERY_IDS or now - next(iter(self._seen.values())) > 2 * self._max_skew
            ):
                self._seen.popitem(last=False)
            if delivery_id in self._seen:
                return False
            self._seen[delivery_id] = now
            return True

    def _reject(self, reason: str, status: int, delivery_id: str, detail: str) -> Response:
        EVENTS_REJECTED.labels(source=EVENT_SOURCE, reason=reason).inc()
        log.warning(
            "webhook delivery rejected",
            extra=fields(source=EVENT_SOURCE, reason=reason, delivery_id=delivery_id[:64], error=detail),
        )
        return status, "application/json", json.dumps({"error": reason}).encode()
