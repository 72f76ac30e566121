"""Structured logs for the controller: one JSON object per line on stderr.

Context travels as fields, never inside the message text, so a log pipeline can
filter on them: ``log.info("scanned", extra=fields(model="fraud", version="3",
verdict="quarantined"))``. The field names are the ones in ``FIELDS``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import TextIO

FIELDS: tuple[str, ...] = (
    "source",
    "model",
    "version",
    "alias",
    "verdict",
    "digest",
    "rule",
    "reason",
    "event",
    "delivery_id",
    "duration_s",
    "findings",
    "queue_depth",
    "attempt",
    "retry_in_s",
    "error",
    "url",
    "count",
    "target",
    "bytes",
    "size",
    "requests",  # S3 ranged reads: bytes fetched, object bytes, GETs
    "shards",  # shard numbers gained or lost (controller/runtime/shards.py)
)


def fields(**values: object) -> dict[str, object]:
    """``extra=`` for a log call; only known field names, so typos fail loudly in tests."""
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown log field(s): {', '.join(sorted(unknown))}")
    return values


class JsonFormatter(logging.Formatter):
    """``{"ts": ..., "level": ..., "logger": ..., "msg": ..., <fields>}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in FIELDS:
            if name in record.__dict__:
                out[name] = record.__dict__[name]
        if record.exc_info and record.exc_info[0] is not None:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def configure(level: int = logging.INFO, stream: TextIO | None = None, json_lines: bool = True) -> None:
    """Route the ``mlgate`` loggers to ``stream`` (stderr by default), as JSON lines or plain text."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("mlgate")
    for old in list(logger.handlers):
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
