"""Two controller replicas (separate processes) compete for one SQS queue: every model is scanned once."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
from pathlib import Path

import pytest
from s3_helpers import evil_pickle, hf_config, notify_to_queue, safetensors_file, verdict

pytestmark = pytest.mark.integration  # a real moto server on loopback

REPLICA = Path(__file__).with_name("s3_replica_main.py")

MODELS = {
    "team-a/bert/": {"config.json": hf_config(), "model.safetensors": safetensors_file()},
    "team-a/evil/": {
        "config.json": hf_config(),
        "model.safetensors": safetensors_file(),
        "pytorch_model.bin": evil_pickle("s3-scaleout-dir"),
    },
    "team-b/gpt/": {
        "config.json": hf_config(),
        "model.safetensors": safetensors_file(16),
        "tokenizer.json": b'{"version": "1.0"}',
    },
    "team-b/clean.safetensors": {"": safetensors_file(8)},
    "team-b/evil.pkl": {"": evil_pickle("s3-scaleout-single")},
    "team-c/weights.safetensors": {"": safetensors_file(24)},
}


def test_two_replicas_scan_each_model_exactly_once(s3, sqs, proxy, bucket):
    queue, _ = notify_to_queue(s3, sqs, bucket, f"events-{bucket}")
    for root, files in MODELS.items():
        for name, body in files.items():
            s3.put_object(Bucket=bucket, Key=root + name, Body=body)
    replicas = [
        subprocess.Popen(
            [sys.executable, str(REPLICA), proxy.url, bucket, queue, "3"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = []
    try:
        for replica in replicas:
            assert replica.stdout.readline().strip() == "ready"
        for replica in replicas:  # both start polling at once, every event already queued
            replica.stdin.write("go\n")
            replica.stdin.flush()
        for replica in replicas:
            out, err = replica.communicate(timeout=90)
            assert replica.returncode == 0, err[-2000:]
            outputs.append((json.loads(out.strip().splitlines()[-1]), err))
    finally:
        for replica in replicas:
            if replica.poll() is None:
                replica.kill()
                replica.wait()

    reads = collections.Counter()
    for _, err in outputs:
        for line in err.splitlines():
            record = json.loads(line)
            if record.get("msg") == "s3 model read":
                reads[record["target"]] += 1
    assert reads == {f"s3://{bucket}/{root}": 1 for root in MODELS}
    assert all(summary["messages"] >= 1 for summary, _ in outputs)  # both replicas took work from the queue
    assert sum(len(summary["scans"]) for summary, _ in outputs) == len(MODELS)  # no failed attempts either

    for root, files in MODELS.items():
        expected = "quarantined" if "evil" in root else "approved"
        for name in files:
            assert verdict(s3, bucket, root + name) == expected, root + name
