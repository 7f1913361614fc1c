"""JSON log lines carry the request id and the record's extras."""

from __future__ import annotations

import json
import logging

from services.common.logging import JsonFormatter, outgoing_headers, request_id_var


def test_json_line_has_request_id_and_extras() -> None:
    record = logging.LogRecord("svc", logging.INFO, __file__, 1, "model %s loaded", ("v1",), None)
    record.model = "ride_duration"
    token = request_id_var.set("req-42")
    try:
        line = json.loads(JsonFormatter("ride-duration").format(record))
        headers = outgoing_headers()
    finally:
        request_id_var.reset(token)
    assert line["message"] == "model v1 loaded"
    assert line["service"] == "ride-duration"
    assert line["request_id"] == "req-42"
    assert line["model"] == "ride_duration"
    assert line["level"] == "INFO"
    assert headers == {"x-request-id": "req-42"}


def test_no_request_id_outside_a_request() -> None:
    record = logging.LogRecord("svc", logging.WARNING, __file__, 1, "idle", (), None)
    assert "request_id" not in json.loads(JsonFormatter("x").format(record))
    assert outgoing_headers() == {}
