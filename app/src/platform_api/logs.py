"""Structured JSON logs with the request id, and nothing secret in them."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from contextvars import ContextVar

from flask import g, has_request_context

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# The request id outside a Flask request context (the probes' fast path).
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)


def request_id_from(header: str | None) -> str:
    """Honour a well-formed incoming X-Request-ID; otherwise make one."""
    if header and _REQUEST_ID.match(header):
        return header
    return uuid.uuid4().hex


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extras."""

    RESERVED = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = g.get("request_id") if has_request_context() else REQUEST_ID.get()
        if request_id is not None or has_request_context():
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in self.RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            entry["stack"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, separators=(",", ":"))


def setup(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library chatter that could echo connection strings stays at WARNING.
    for name in ("psycopg", "psycopg.pool", "urllib3", "werkzeug"):
        logging.getLogger(name).setLevel(logging.WARNING)
