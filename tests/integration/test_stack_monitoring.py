"""The local stack's Prometheus and Alertmanager (Debian packages, services/stack/monitoring.py)
run the chart's rules and the chart's route: every rule group loads and evaluates without
error, and an alert the chart routes reaches the classifier's webhook while another does not.

The webhook is a stub HTTP server on the classifier's port (the classifier itself is not needed
to show the route), so what Alertmanager sends is read exactly.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.stack.testing import running_stack, settings_for_tests
from tests.fakes.threaded_server import ThreadedHttpServer

pytestmark = pytest.mark.integration


class Webhook(ThreadedHttpServer):
    """Records every POST body (Alertmanager's notifications)."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        received, lock = self.bodies, self.lock

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with lock:
                    received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(Handler)


@pytest.fixture(scope="module")
def monitoring(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Webhook]]:
    with Webhook() as webhook:
        port = int(webhook.url.rsplit(":", 1)[1])
        settings = settings_for_tests(Path(tmp_path_factory.mktemp("monitoring")))
        settings = settings.model_copy(update={"classifier_port": port})
        with running_stack(settings, ["alertmanager", "prometheus"]):
            yield (
                f"http://{settings.host}:{settings.prometheus_port}",
                f"http://{settings.host}:{settings.alertmanager_port}",
                webhook,
            )


def test_every_rule_of_the_chart_loads_and_evaluates(monitoring: tuple[str, str, Webhook]) -> None:
    prometheus, _, _ = monitoring
    deadline = time.monotonic() + 30
    while True:
        groups = httpx.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        if rules and all(r.get("lastEvaluation", "").startswith("20") for r in rules):
            break
        assert time.monotonic() < deadline, "the rules were not all evaluated within 30 s"
        time.sleep(1)
    assert [r["name"] for r in rules if r["health"] != "ok"] == []
    alerts = {r["name"]: r for r in rules if r["type"] == "alerting"}
    assert alerts["ModelfleetClassifierEstimatedF1Low"]["duration"] == 30  # MODELFLEET_ALERT_FOR
    assert alerts["ModelfleetClassifierF1Low"]["duration"] == 30
    assert {g["interval"] for g in groups} == {5}


def test_the_charts_route_sends_its_alerts_and_only_those(
    monitoring: tuple[str, str, Webhook],
) -> None:
    _, alertmanager, webhook = monitoring
    alerts = [
        {"labels": {"alertname": name, "model": "classifier", "version": "1"}}
        for name in ("ModelfleetClassifierEstimatedF1Low", "ModelfleetHighErrorRatio")
    ]
    assert httpx.post(f"{alertmanager}/api/v2/alerts", json=alerts, timeout=5).status_code == 200
    deadline = time.monotonic() + 30
    while not webhook.bodies:
        assert time.monotonic() < deadline, "Alertmanager sent nothing to the webhook in 30 s"
        time.sleep(0.5)
    time.sleep(12)  # two group intervals more: the other alert would have come by now
    with webhook.lock:
        sent = {a["labels"]["alertname"] for body in webhook.bodies for a in body["alerts"]}
        receivers = {body["receiver"] for body in webhook.bodies}
    assert sent == {"ModelfleetClassifierEstimatedF1Low"} and receivers == {"classifier-retraining"}
