"""S3 test fixtures: per-test buckets and clients on the session's moto server (``moto_endpoint``,
tests/moto_server.py), the fault proxy."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from moto_server import AWS_TEST_ENV
from s3_helpers import FaultProxy, client

for _key, _value in AWS_TEST_ENV.items():
    os.environ.setdefault(_key, _value)


@pytest.fixture
def s3(moto_endpoint: str) -> Any:
    """The test's own S3 client, straight to moto (uploads, checks)."""
    return client("s3", moto_endpoint)


@pytest.fixture
def sqs(moto_endpoint: str) -> Any:
    return client("sqs", moto_endpoint)


@pytest.fixture
def bucket(s3: Any) -> str:
    """A fresh, empty bucket for this test."""
    name = f"models-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def versioned_bucket(s3: Any, bucket: str) -> str:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return bucket


@pytest.fixture
def proxy(moto_endpoint: str) -> Iterator[FaultProxy]:
    """A fault-injecting proxy in front of moto; ``proxy.url`` is its endpoint."""
    fault_proxy = FaultProxy(moto_endpoint)
    fault_proxy.start()
    try:
        yield fault_proxy
    finally:
        fault_proxy.stop()


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def s3_log() -> Iterator[list[logging.LogRecord]]:
    """Records of the ``mlgate`` loggers (attached directly: works whatever configured the root logger)."""
    logger = logging.getLogger("mlgate")
    handler = _Collect()
    old = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


@pytest.fixture(autouse=True)
def no_upload_settling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests upload a model and scan it at once: no quiet period unless a test asks for one
    (``settle_seconds`` is tested in test_s3_hardening.py)."""
    from mlgate.controller.config import buckets

    monkeypatch.setattr(buckets, "DEFAULT_SETTLE_SECONDS", 0.0)
