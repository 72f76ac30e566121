"""One controller replica for the scale-out test: consume the queue until it stays empty, then exit.

Usage: python s3_replica_main.py ENDPOINT BUCKET QUEUE_URL IDLE_POLLS
Prints ``ready`` once set up and starts polling when a line arrives on stdin (so replicas start
together); logs JSON lines on stderr (one ``s3 model read`` line per scan); prints a summary as JSON.
"""

from __future__ import annotations

import json
import logging
import sys

from mlgate.analyzers.core.policy import Policy
from mlgate.controller.config.buckets import BucketConfig
from mlgate.controller.config.settings import BackoffConfig
from mlgate.controller.runtime.engine import Runtime
from mlgate.controller.runtime.logging_json import configure
from mlgate.controller.runtime.metrics import REGISTRY
from mlgate.controller.s3.source import S3Source

SIGNING_KEY = b"s3-tests-signing-key-0123456789abcdef"


def main(endpoint: str, bucket: str, queue: str, idle_polls: int) -> int:
    configure(logging.INFO, json_lines=True)
    cfg = BucketConfig(
        bucket=bucket,
        queue_url=queue,
        endpoint_url=endpoint,
        region="us-east-1",
        wait_time_seconds=1,
        max_messages=1,
        retry_delay_seconds=1,
        settle_seconds=0,  # the test uploads complete models before the replicas start; no quiet period
    )
    source = S3Source([cfg], Policy(), SIGNING_KEY)
    runtime = Runtime([source], BackoffConfig(initial_seconds=0.1, max_seconds=0.5), workers=0)
    (consumer,) = source.consumers(runtime.process)
    print("ready", flush=True)
    sys.stdin.readline()
    idle = 0
    while idle < idle_polls:
        idle = idle + 1 if consumer.poll_once() == 0 else 0
    received = REGISTRY.get_sample_value("mlgate_events_received_total", {"source": "sqs"}) or 0
    print(json.dumps({"messages": received, "scans": [r.subject for r in runtime.results]}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
