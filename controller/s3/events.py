"""S3 event notifications from SQS: parse, dedupe, hand to a handler, delete only what succeeded.

Any number of replicas consume one queue (competing consumers). Events are
hints: the handler re-reads the bucket, so a duplicate or out-of-order event
changes nothing. Per message:

* ``s3:TestEvent`` (sent when notifications are configured) is deleted and
  counted as rejected (``reason="test_event"``);
* S3 records (directly, or wrapped by SNS) are parsed; keys are URL-decoded
  with ``unquote_plus`` (``a+b%2Fc`` is ``a b/c``);
* a record already handled successfully (same bucket, key, version or ETag
  and sequencer or event time) is skipped;
* while the handler runs, the visibility timeout of every message of the batch
  is extended, so a long scan is never handed to a second consumer;
* a message whose records were all handled is deleted; one that failed, or
  that cannot be parsed, is made visible again after ``retry_delay_seconds``
  and, after the queue's ``maxReceiveCount``, lands in its dead-letter queue.
  Nothing that failed is ever deleted.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..config.buckets import BucketConfig
from ..runtime.logging_json import fields
from ..runtime.metrics import EVENTS_RECEIVED, EVENTS_REJECTED

log = logging.getLogger("mlgate.s3")

EVENT_SOURCE = "sqs"  # metric label
REJECT_REASONS = ("malformed", "test_event", "duplicate", "unknown_bucket", "own_write", "outside_prefix")
_SEEN_MAX = 50_000


class BadMessage(Exception):
    """A message that is not an S3 event notification."""


@dataclass(frozen=True)
class ObjectEvent:
    """One S3 event record."""

    bucket: str
    key: str  # decoded
    name: str  # ObjectCreated:Put, ObjectRemoved:Delete, ...
    version_id: str = ""
    etag: str = ""
    sequencer: str = ""
    time: str = ""

    @property
    def identity(self) -> tuple[str, ...]:
        return (self.bucket, self.key, self.name, self.version_id or self.etag, self.sequencer or self.time)


def parse_message(body: str) -> list[ObjectEvent] | None:
    """The records of one message; None for ``s3:TestEvent``. Raises ``BadMessage``."""
    try:
        data = json.loads(body)
        if isinstance(data, dict) and data.get("Type") == "Notification" and "Message" in data:
            data = json.loads(data["Message"])  # S3 -> SNS -> SQS
    except (TypeError, ValueError):
        raise BadMessage("not JSON") from None
    if not isinstance(data, dict):
        raise BadMessage("not a JSON object")
    if data.get("Event") == "s3:TestEvent":
        return None
    records = data.get("Records")
    if not isinstance(records, list) or not records:
        raise BadMessage("no Records")
    out = []
    for record in records:
        try:
            s3 = record["s3"]
            obj = s3["object"]
            raw_key = obj["key"]
            bucket = s3["bucket"]["name"]
        except (KeyError, TypeError):
            raise BadMessage("a record without s3.bucket.name / s3.object.key") from None
        if not isinstance(raw_key, str) or not isinstance(bucket, str):
            raise BadMessage("bucket name and key must be strings")
        out.append(
            ObjectEvent(
                bucket=bucket,
                key=urllib.parse.unquote_plus(raw_key),
                name=str(record.get("eventName", "")),
                version_id=str(obj.get("versionId") or ""),
                etag=str(obj.get("eTag") or obj.get("etag") or "").strip('"'),
                sequencer=str(obj.get("sequencer") or ""),
                time=str(record.get("eventTime") or ""),
            )
        )
    return out


Handler = Callable[[ObjectEvent], bool]
"""Handles one event (the model it touches is checked and scanned); False when it failed."""


class SqsConsumer:
    """Long-polls one queue and hands each new event to ``handle``."""

    def __init__(self, sqs: Any, cfg: BucketConfig, handle: Handler) -> None:
        self._sqs = sqs
        self._cfg = cfg
        self._handle = handle
        self._seen: OrderedDict[tuple[str, ...], None] = OrderedDict()
        self._lock = threading.Lock()

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop`` is set; every failure is logged and retried with backoff, never fatal."""
        failures = 0
        log.info("SQS consumer started", extra=fields(source=EVENT_SOURCE, url=self._cfg.queue_url))
        while not stop.is_set():
            try:
                self.poll_once()
                failures = 0
            except Exception as exc:  # the consumer must outlive any failure; unsettled messages come back
                failures += 1
                delay = min(60.0, 2.0**failures)
                log.log(
                    logging.WARNING if isinstance(exc, (ClientError, BotoCoreError)) else logging.ERROR,
                    "SQS consumer failed; retrying",
                    exc_info=not isinstance(exc, (ClientError, BotoCoreError)),
                    extra=fields(source=EVENT_SOURCE, url=self._cfg.queue_url, error=str(exc), retry_in_s=delay),
                )
                stop.wait(delay)

    def poll_once(self, wait_seconds: int | None = None) -> int:
        """Receive one batch and handle it; the number of messages received."""
        response = self._sqs.receive_message(
            QueueUrl=self._cfg.queue_url,
            MaxNumberOfMessages=self._cfg.max_messages,
            WaitTimeSeconds=self._cfg.wait_time_seconds if wait_seconds is None else wait_seconds,
            VisibilityTimeout=self._cfg.visibility_timeout_seconds,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        messages = response.get("Messages", [])
        if not messages:
            return 0
        pending = {m["ReceiptHandle"] for m in messages}
        stop = threading.Event()
        keeper = threading.Thread(
            target=self._keep_invisible, args=(pending, stop), daemon=True, name="mlgate-sqs-visibility"
        )
        keeper.start()
        try:
            for message in messages:
                ok = self._message(message)
                with self._lock:
                    pending.discard(message["ReceiptHandle"])
                self._settle(message, ok)
        finally:
            stop.set()
            keeper.join()
        return len(messages)

    # -- internals ------------------------------------------------------------------------------

    def _message(self, message: dict[str, Any]) -> bool:
        EVENTS_RECEIVED.labels(source=EVENT_SOURCE).inc()
        try:
            events = parse_message(message.get("Body", ""))
        except BadMessage as exc:
            EVENTS_REJECTED.labels(source=EVENT_SOURCE, reason="malformed").inc()
            log.warning(
                "unreadable SQS message left for the dead-letter queue",
                extra=fields(source=EVENT_SOURCE, error=str(exc), count=_receive_count(message)),
            )
            return False
        if events is None:
            EVENTS_REJECTED.labels(source=EVENT_SOURCE, reason="test_event").inc()
            return True
        ok = True
        for event in events:
            with self._lock:
                if event.identity in self._seen:
                    EVENTS_REJECTED.labels(source=EVENT_SOURCE, reason="duplicate").inc()
                    continue
            if self._handle(event):
                self._remember(event.identity)
            else:
                ok = False
        return ok

    def _settle(self, message: dict[str, Any], ok: bool) -> None:
        handle = message["ReceiptHandle"]
        try:
            if ok:
                self._sqs.delete_message(QueueUrl=self._cfg.queue_url, ReceiptHandle=handle)
            else:
                self._sqs.change_message_visibility(
                    QueueUrl=self._cfg.queue_url, ReceiptHandle=handle, VisibilityTimeout=self._cfg.retry_delay_seconds
                )
        except (ClientError, BotoCoreError) as exc:  # the message simply comes back later
            log.warning("could not settle an SQS message", extra=fields(source=EVENT_SOURCE, error=str(exc)))

    def _keep_invisible(self, pending: set[str], stop: threading.Event) -> None:
        """Extend the visibility of unfinished messages every third of the timeout."""
        timeout = self._cfg.visibility_timeout_seconds
        while not stop.wait(max(1.0, timeout / 3)):
            with self._lock:
                handles = sorted(pending)
            for start in range(0, len(handles), 10):
                entries = [
                    {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": timeout}
                    for i, h in enumerate(handles[start : start + 10])
                ]
                try:
                    self._sqs.change_message_visibility_batch(QueueUrl=self._cfg.queue_url, Entries=entries)
                except (ClientError, BotoCoreError) as exc:
                    log.warning("could not extend SQS visibility", extra=fields(source=EVENT_SOURCE, error=str(exc)))

    def _remember(self, identity: tuple[str, ...]) -> None:
        with self._lock:
            self._seen[identity] = None
            self._seen.move_to_end(identity)
            while len(self._seen) > _SEEN_MAX:
                self._seen.popitem(last=False)


def _receive_count(message: dict[str, Any]) -> int:
    try:
        return int(message.get("Attributes", {}).get("ApproximateReceiveCount", 0))
    except (TypeError, ValueError):
        return 0
