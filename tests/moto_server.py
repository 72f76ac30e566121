"""One moto server (S3, SQS, every AWS API moto serves) on loopback for the whole test session, and the AWS
settings that point boto3 and MLflow's S3 artifact repository at it. A plugin of ``tests/conftest.py``, so the
S3 tests and the MLflow tests (S3 artifact roots) share the fixtures and the server."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

AWS_TEST_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
"""Credentials moto accepts; never real ones."""


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:<port>`` of a moto server in server mode (real HTTP, so ranged GETs, checksums and
    multipart uploads go through botocore as against a real store)."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def moto_env(endpoint: str) -> dict[str, str]:
    """The environment that sends boto3 (``AWS_ENDPOINT_URL``) and MLflow (``MLFLOW_S3_ENDPOINT_URL``) to moto."""
    return {**AWS_TEST_ENV, "AWS_ENDPOINT_URL": endpoint, "MLFLOW_S3_ENDPOINT_URL": endpoint}


@pytest.fixture
def aws_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """:func:`moto_env` set in this process for one test; returned for child processes' environments."""
    env = moto_env(moto_endpoint)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env
