"""Structured JSON logs with the request id and the caller's identity of the request served.

The request id comes from the ``X-Request-ID`` header (or is made up) in
:mod:`services.common.middleware`, lives in a context variable for the request's task, is added
to every log record, and is passed on to downstream calls (:func:`outgoing_headers`, and the
Triton request id).

    configure_logging(level="INFO", json_logs=True, service="ride-duration")
    log.info("model loaded", extra={"model": "ride_duration", "version": "3"})
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

REQUEST_ID_HEADER = "x-request-id"
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
#: Who is calling (JWT subject, ``apikey:<id>``), set by :mod:`services.common.security`.
identity_var: ContextVar[str | None] = ContextVar("identity", default=None)

# Attributes every LogRecord has; anything else came in through ``extra=`` and is logged.
_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime"}
)


def outgoing_headers() -> dict[str, str]:
    """Headers to put on a downstream HTTP call so the request id follows the request."""
    request_id = request_id_var.get()
    return {REQUEST_ID_HEADER: request_id} if request_id else {}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, service, request_id, extras."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": self.service,
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        identity = identity_var.get()
        if identity:
            entry["identity"] = identity
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(*, level: str, json_logs: bool, service: str) -> None:
    """Send the root logger (and uvicorn's) to stderr, as JSON unless ``json_logs`` is false."""
    handler = logging.StreamHandler(sys.stderr)
    if json_logs:
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    if access.handlers:  # access logging is on (uvicorn without --no-access-log): make it JSON
        access.handlers[:] = []
        access.propagate = True
