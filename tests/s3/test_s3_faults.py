"""Fault injection against moto (issue 17, item 6): the controller ends with correct verdicts.

One run of the real ``mlgate controller`` behind the fault proxy: throttling (503 SlowDown) and
500s on a share of all S3/SQS requests, slow reads so scans are in flight, the controller killed
(SIGKILL) mid-scan and restarted, events dropped, duplicated and flooded into the queue. After
recovery every object carries the verdict a fault-free scan gives, and no tagging request ever
marked a malicious object approved. ``MLGATE_SOAK_SECONDS`` repeats rounds for a soak run
(docs/fault-injection.md).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from s3_helpers import SIGNING_KEY, Fault, evil_pickle, free_port, notify_to_queue, safetensors_file, verdict, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SOAK_SECONDS = float(os.environ.get("MLGATE_SOAK_SECONDS", "0"))


def _config(tmp_path, endpoint: str, bucket: str, queue: str) -> str:
    path = tmp_path / "controller.yaml"
    path.write_text(f"""
mlflow:
  enabled: false
  poll_interval_seconds: 2
backoff:
  initial_seconds: 0.2
  max_seconds: 1
workers: 2
http:
  port: {free_port()}
log_format: json
buckets:
  - bucket: {bucket}
    endpoint_url: {endpoint}
    region: us-east-1
    queue_url: "{queue}"
    wait_time_seconds: 1
    retry_delay_seconds: 1
    claim_ttl_seconds: 3
    settle_seconds: 0
""")
    return str(path)


def _start(tmp_path, config: str) -> subprocess.Popen:
    env = {**os.environ, "MLGATE_SIGNING_KEY": SIGNING_KEY.decode(), "MLGATE_HOME": str(tmp_path / "state")}
    return subprocess.Popen(
        [sys.executable, "-m", "mlgate.controller", "controller", "--config", config],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _event(bucket: str, key: str) -> str:
    record = {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": bucket}}}
    record["s3"]["object"] = {"key": key}
    return json.dumps({"Records": [record]})


def _round(tmp_path, s3, sqs, proxy, bucket: str, queue: str, rng: random.Random, tag: str) -> None:
    clean = [f"{tag}/clean{i}.safetensors" for i in range(3)]
    evil = [f"{tag}/evil{i}.pkl" for i in range(3)]
    folder = {f"{tag}/folder/config.json": b"{}", f"{tag}/folder/model.safetensors": safetensors_file()}
    folder[f"{tag}/folder/extra.pkl"] = evil_pickle(f"s3-faults-{tag}")
    controller = _start(tmp_path, _config(tmp_path, proxy.url, bucket, queue))
    try:
        proxy.add(Fault(lambda m, p: rng.random() < 0.15, 10_000, 503, "SlowDown"))
        proxy.add(Fault(lambda m, p: rng.random() < 0.05, 10_000, 500, "InternalError"))
        proxy.add(Fault(lambda m, p: m == "GET" and ".pkl" in p and "tagging" not in p, 6, delay=1.0))
        for key in clean:
            s3.put_object(Bucket=bucket, Key=key, Body=safetensors_file())
        for key in evil:
            s3.put_object(Bucket=bucket, Key=key, Body=evil_pickle(f"s3-faults-{tag}"))
        for key, body in folder.items():
            s3.put_object(Bucket=bucket, Key=key, Body=body)
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=2, WaitTimeSeconds=1).get("Messages", [])
        for message in got:  # dropped events: the listing must still find these models
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        time.sleep(1.5)  # scans in flight (slow reads)
        controller.send_signal(signal.SIGKILL)  # a crash mid-scan: claims expire, nothing half-recorded counts
        controller.wait(timeout=10)
        for key in [*clean, *evil] * 2:  # duplicated events
            sqs.send_message(QueueUrl=queue, MessageBody=_event(bucket, key))
        for _ in range(10):  # a flood of duplicates fills the work queue
            entries = [{"Id": str(i), "MessageBody": _event(bucket, rng.choice(evil))} for i in range(10)]
            sqs.send_message_batch(QueueUrl=queue, Entries=entries)
        controller = _start(tmp_path, _config(tmp_path, proxy.url, bucket, queue))
        expected = {**dict.fromkeys(clean, "approved"), **dict.fromkeys(evil, "quarantined")}
        expected.update(dict.fromkeys(folder, "quarantined"))
        wait_for(lambda: all(verdict(s3, bucket, k) == v for k, v in expected.items()), timeout=90, every=0.5)
    finally:
        proxy.faults.clear()
        controller.send_signal(signal.SIGTERM)
        try:
            controller.wait(timeout=30)
        except subprocess.TimeoutExpired:
            controller.kill()
    for path, body in proxy.tagging:
        if any(key in path for key in [*evil, *folder]):
            assert b"approved" not in body, f"{path} was tagged approved while faults were injected"


def test_faults_end_with_correct_verdicts_and_no_wrong_approval(tmp_path, s3, sqs, proxy, bucket):
    queue, _dlq = notify_to_queue(s3, sqs, bucket, f"faults-{bucket}", max_receive=50, visibility=5)
    rng = random.Random(17)
    deadline = time.monotonic() + SOAK_SECONDS
    n = 0
    while True:
        _round(tmp_path, s3, sqs, proxy, bucket, queue, rng, f"r{n}")
        n += 1
        if time.monotonic() >= deadline:
            break
