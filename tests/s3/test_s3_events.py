"""S3 event notifications through SQS (moto delivers them for real): scans from events, idempotence, DLQ."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
from s3_helpers import (
    FAST_BACKOFF,
    Fault,
    drain,
    evil_pickle,
    hf_config,
    make_source,
    notify_to_queue,
    queue_counts,
    safetensors_file,
    scans,
    tags,
    verdict,
)

from mlgate.controller.config.buckets import BucketConfig, QuarantineMode
from mlgate.controller.runtime.engine import Runtime
from mlgate.controller.runtime.metrics import REGISTRY

pytestmark = pytest.mark.integration  # a real moto server on loopback


def _consumer(cfg: BucketConfig, endpoint: str, attempts: int = 3):
    source = make_source(cfg, endpoint, attempts)
    runtime = Runtime([source], FAST_BACKOFF, workers=0)  # the consumer runs scans itself, via runtime.process
    (consumer,) = source.consumers(runtime.process)
    return source, runtime, consumer


def _rejected(reason: str) -> float:
    return REGISTRY.get_sample_value("mlgate_events_rejected_total", {"source": "sqs", "reason": reason}) or 0.0


def _cfg(bucket: str, queue: str, **kw) -> BucketConfig:
    return BucketConfig(bucket=bucket, queue_url=queue, wait_time_seconds=1, retry_delay_seconds=1, **kw)


def test_events_alone_tag_and_move_each_model_once(s3, sqs, moto_endpoint, bucket, s3_log):
    quarantine = f"quarantine-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=quarantine)
    queue, _ = notify_to_queue(s3, sqs, bucket, f"events-{bucket}")
    test_events = _rejected("test_event")
    s3.put_object(Bucket=bucket, Key="hf/bert/config.json", Body=hf_config())
    s3.put_object(Bucket=bucket, Key="hf/bert/model.safetensors", Body=safetensors_file())
    s3.put_object(Bucket=bucket, Key="hf/evil/config.json", Body=hf_config())
    s3.put_object(Bucket=bucket, Key="hf/evil/pytorch_model.bin", Body=evil_pickle("s3-events-dir"))
    s3.put_object(Bucket=bucket, Key="loose/weird name+1.pkl", Body=evil_pickle("s3-events-single"))
    cfg = _cfg(bucket, queue, quarantine=QuarantineMode.MOVE, quarantine_bucket=quarantine)
    _, runtime, consumer = _consumer(cfg, moto_endpoint)
    drain(consumer, sqs, queue)

    assert sorted(scans(s3_log)) == [
        f"s3://{bucket}/hf/bert/",
        f"s3://{bucket}/hf/evil/",
        f"s3://{bucket}/loose/weird name+1.pkl",
    ]  # once each, key decoded
    assert verdict(s3, bucket, "hf/bert/config.json") == "approved"
    assert verdict(s3, bucket, "hf/bert/model.safetensors") == "approved"
    left = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert left == {"hf/bert/config.json", "hf/bert/model.safetensors"}
    moved = {o["Key"].split("/", 3)[3] for o in s3.list_objects_v2(Bucket=quarantine)["Contents"]}
    assert moved == {"hf/evil/config.json", "hf/evil/pytorch_model.bin", "loose/weird name+1.pkl"}
    assert _rejected("test_event") == test_events + 1
    assert sorted(r.verdict for r in runtime.results) == ["approved", "quarantined", "quarantined"]


def test_duplicate_and_out_of_order_events_change_nothing(s3, sqs, moto_endpoint, bucket, s3_log):
    queue, _ = notify_to_queue(s3, sqs, bucket, f"events-{bucket}")
    s3.put_object(Bucket=bucket, Key="m/model.safetensors", Body=safetensors_file(16))
    s3.put_object(Bucket=bucket, Key="m/model.safetensors", Body=safetensors_file(24))  # newer content
    s3.put_object(Bucket=bucket, Key="e/model.pkl", Body=evil_pickle("s3-events-dupes"))
    bodies = []  # keep the real notification bodies, then let the consumer have them
    while True:
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not got:
            break
        for message in got:
            bodies.append(message["Body"])
            sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
        if len(bodies) >= 4:
            break
    assert sum("Records" in b for b in bodies) == 3
    _, _, consumer = _consumer(_cfg(bucket, queue), moto_endpoint)
    drain(consumer, sqs, queue)
    first_scans = sorted(scans(s3_log))
    assert first_scans == [f"s3://{bucket}/e/model.pkl", f"s3://{bucket}/m/model.safetensors"]
    before = {k: tags(s3, bucket, k) for k in ("m/model.safetensors", "e/model.pkl")}

    duplicates = _rejected("duplicate")
    for body in bodies + list(reversed(bodies)):  # every event again, then in reverse order (oldest last)
        sqs.send_message(QueueUrl=queue, MessageBody=body)
    _, runtime, fresh = _consumer(_cfg(bucket, queue), moto_endpoint)  # a replica that never saw them
    drain(fresh, sqs, queue)
    drain(consumer, sqs, queue)
    assert sorted(scans(s3_log)) == first_scans  # nothing scanned again
    assert runtime.results == []
    assert {k: tags(s3, bucket, k) for k in before} == before
    assert before["m/model.safetensors"]["mlgate.verdict"] == "approved"
    assert _rejected("duplicate") > duplicates  # the replica skipped its own repeats without reading tags


def test_poison_and_failed_messages_go_to_the_dead_letter_queue(s3, sqs, moto_endpoint, bucket, s3_log):
    queue, dlq = notify_to_queue(s3, sqs, bucket, f"events-{bucket}", max_receive=2)
    s3.put_bucket_policy(
        Bucket=bucket,
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:GetObject",
                        "Resource": f"arn:aws:s3:::{bucket}/denied/*",
                    }
                ],
            }
        ),
    )
    sqs.send_message(QueueUrl=queue, MessageBody="this is not an S3 event")
    s3.put_object(Bucket=bucket, Key="denied/model.pkl", Body=evil_pickle("s3-events-denied"))
    s3.put_object(Bucket=bucket, Key="ok/model.safetensors", Body=safetensors_file())
    malformed = _rejected("malformed")
    _, runtime, consumer = _consumer(_cfg(bucket, queue), moto_endpoint)
    drain(consumer, sqs, queue)

    dead = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    bodies = sorted(m["Body"] for m in dead)
    assert len(bodies) == 2
    assert "this is not an S3 event" in bodies
    assert any("denied%2Fmodel.pkl" in b for b in bodies)
    assert _rejected("malformed") >= malformed + 2  # seen on each of its two receives
    assert verdict(s3, bucket, "ok/model.safetensors") == "approved"
    s3.delete_bucket_policy(Bucket=bucket)
    assert verdict(s3, bucket, "denied/model.pkl") is None  # never approved; the error is on record
    assert "error" in {r.verdict for r in runtime.results}


def test_visibility_is_extended_while_a_long_scan_runs(s3, sqs, moto_endpoint, proxy, bucket):
    queue, _ = notify_to_queue(s3, sqs, bucket, f"events-{bucket}", visibility=3)
    sqs.purge_queue(QueueUrl=queue)  # drop the test event
    s3.put_object(Bucket=bucket, Key="slow/model.safetensors", Body=safetensors_file())
    proxy.add(
        Fault(
            match=lambda method, path: method == "GET" and "slow/model.safetensors" in path and "tagging" not in path,
            times=1,
            delay=4.5,
        )
    )
    claims = f"claims-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=claims)  # claims elsewhere: no claim events in this bucket's queue
    cfg = _cfg(bucket, queue, visibility_timeout_seconds=3, claims_bucket=claims)
    source = make_source(cfg, proxy.url)
    runtime = Runtime([source], FAST_BACKOFF, workers=0)
    (consumer,) = source.consumers(runtime.process)
    worker = threading.Thread(target=consumer.poll_once, kwargs={"wait_seconds": 2})
    worker.start()
    time.sleep(1.0)
    stolen = []
    deadline = time.monotonic() + 4.0
    while worker.is_alive() and time.monotonic() < deadline:  # a second consumer, polling the whole time
        stolen += sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages", [])
    worker.join(30)
    assert not worker.is_alive()
    assert stolen == []
    assert verdict(s3, bucket, "slow/model.safetensors") == "approved"
    assert queue_counts(sqs, queue) == (0, 0)
