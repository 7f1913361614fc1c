"""A FAKE Prometheus HTTP API for unit tests of services/dashboards: ``/-/ready`` and
``/api/v1/query_range``, answered from what the test sets, every query recorded.

A query whose PromQL contains a key of ``refuse`` is refused as Prometheus refuses bad PromQL
(400, ``bad_data``, the value as its error); ``delay_s`` holds every answer back (deadlines).
Any other query answers ``series`` series (labels ``model``, ``version``: ``"0"``, ``"1"``...)
with a point per step, the last one NaN (as a rate over no new samples can be).

    with FakePrometheusApi(series=2) as prom:
        settings = DashboardsSettings(prometheus_url=prom.url)
        ...
        prom.queries[0]["query"]
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.threaded_server import ThreadedHttpServer


class FakePrometheusApi(ThreadedHttpServer):
    """The fake server (a thread); use as a context manager."""

    def __init__(self, *, series: int = 2, refuse: dict[str, str] | None = None) -> None:
        self.series = series
        self.refuse = dict(refuse or {})
        self.delay_s = 0.0
        self.ready = True
        self.queries: list[dict[str, str]] = []
        self.lock = threading.Lock()
        super().__init__(self._handler())

    def matrix(self, params: dict[str, str]) -> dict[str, Any]:
        start, end, step = float(params["start"]), float(params["end"]), float(params["step"])
        stamps = [start + i * step for i in range(int((end - start) / step) + 1)]
        result = [
            {
                "metric": {"model": "ride_duration", "version": str(n)},
                "values": [
                    [t, "NaN" if i == len(stamps) - 1 else str(n + i / 10)]
                    for i, t in enumerate(stamps)
                ],
            }
            for n in range(self.series)
        ]
        return {"status": "success", "data": {"resultType": "matrix", "result": result}}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status: int, body: dict[str, Any] | str) -> None:
                data = (json.dumps(body) if isinstance(body, dict) else body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                time.sleep(fake.delay_s)
                if url.path == "/-/ready":
                    self._send(200 if fake.ready else 503, "ready\n")
                    return
                if url.path != "/api/v1/query_range":
                    self._send(404, "404 page not found\n")
                    return
                params = {k: v[0] for k, v in parse_qs(url.query).items()}
                with fake.lock:
                    fake.queries.append(params)
                for key, error in fake.refuse.items():
                    if key in params["query"]:
                        body = {"status": "error", "errorType": "bad_data", "error": error}
                        self._send(400, body)
                        return
                self._send(200, fake.matrix(params))

            def log_message(self, *args: object) -> None:
                pass

        return Handler
