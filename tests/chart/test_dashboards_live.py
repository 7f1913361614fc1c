"""Every PromQL expression of every dashboard returns data from a real Prometheus.

A real Prometheus (Debian package `prometheus`) scrapes the local stack (real Triton with the
models, PostgreSQL, NATS, ride-duration, the classifier, the backend and its three streaming
workers) after some load (predictions through a canary and a shadow variant with outcomes,
classifications with feedback, rides), with the labels
the chart's
ServiceMonitors give: job=<component>, namespace. A panel that shows nothing is a bug. The
recording rules are loaded too, so a rule file Prometheus refuses fails here.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from models.repository import build_repository
from models.ride_duration.variants import publish_candidate
from services.common.triton import TritonClient
from services.stack.testing import free_port, running_stack, settings_for_tests
from tests.chart.test_monitoring import DASHBOARDS, RULE_FILES

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

NAMESPACE = "local"
RIDE = {
    "pickup_datetime": "2024-03-14T08:30:00",
    "pickup_location_id": 161,
    "dropoff_location_id": 236,
    "trip_distance": 2.4,
    "passenger_count": 1,
}
SCRAPE_INTERVAL_S = 1
COMPONENTS = [
    "postgres",
    "nats",
    "triton",
    "ride-duration",
    "classifier",
    "backend",
    "worker-tip",
    "worker-cost",
    "worker-dynamic-duration",
]


def _wait(predicate: Any, *, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _rides(base_url: str, count: int) -> None:
    """`count` ride requests to the backend (each becomes an event for the three workers)."""
    with httpx.Client(base_url=base_url, timeout=5) as client:
        for i in range(count):
            ride = {**RIDE, "user_id": f"dash-{i}", "trip_distance": 1.0 + i % 7}
            response = client.post("/v1/rides", json=ride)
            assert response.status_code == 201, response.text


PRODUCTS = [
    ("Sonix wireless noise cancelling headphones", "Over ear headphones with 40mm drivers."),
    ("Stainless steel chef knife 20 cm", "Forged kitchen knife with a riveted handle."),
    ("Trail running shoes, men's size 43", "Lightweight shoes with a grippy outsole."),
    ("Organic green tea, 100 bags", "Loose leaf sencha in biodegradable bags."),
]


def _classify(base_url: str, rounds: int) -> None:
    """Classifications, each followed by feedback (every fourth names the runner-up category)."""
    with httpx.Client(base_url=base_url, timeout=10) as client:
        for i in range(rounds):
            title, description = PRODUCTS[i % len(PRODUCTS)]
            response = client.post(
                "/v1/classify", json={"title": title, "description": description, "top_k": 2}
            )
            assert response.status_code == 200, response.text
            answer = response.json()
            truth = answer["top_k"][1 if i % 4 == 3 else 0]["category"]
            feedback = client.post(
                "/v1/feedback",
                json={"prediction_id": answer["prediction_id"], "true_category": truth},
            )
            assert feedback.status_code == 200, feedback.text


def _variants(base_url: str, triton_url: str, repository: Path) -> None:
    """A second ride_duration version as canary and shadow (model-variants dashboard), and the
    truth of some predictions (per-variant MAE/RMSE)."""
    candidate = publish_candidate(repository, quality="worse", seed=8, rows=5_000)

    async def load() -> None:
        triton = TritonClient(triton_url, timeout_s=30.0)
        try:
            await triton.load_model("ride_duration")
        finally:
            await triton.close()

    asyncio.run(load())
    variants = [
        {"name": "stable", "model": "ride_duration", "model_version": 1, "role": "stable",
         "weight": 0.7},
        {"name": "canary", "model": "ride_duration", "model_version": candidate.version,
         "role": "canary", "weight": 0.3},
        {"name": "shadow", "model": "ride_duration", "model_version": candidate.version,
         "role": "shadow", "weight": 1.0},
    ]  # fmt: skip
    with httpx.Client(base_url=base_url, timeout=5) as client:
        response = client.put(
            "/v1/admin/routing", json={"expected_version": 0, "variants": variants}
        )
        assert response.status_code == 200, response.text
        ids = [client.post("/v1/predict", json=RIDE).json()["prediction_id"] for _ in range(20)]
        time.sleep(0.5)  # the prediction log is written in the background
        outcomes = [{"prediction_id": i, "actual_minutes": 11.0} for i in ids]
        response = client.post("/v1/outcomes", json={"outcomes": outcomes})
        assert response.status_code == 200, response.text


def _load(base_url: str, seconds: float) -> None:
    """Predictions, batch predictions, model listings and a bad request, for `seconds`."""
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=base_url, timeout=5) as client:
        while time.monotonic() < deadline:
            assert client.post("/v1/predict", json=RIDE).status_code == 200
            assert client.post("/v1/predict/batch", json={"rides": [RIDE, RIDE]}).status_code in (
                200,
                422,
            )
            assert client.get("/v1/models").status_code == 200
            assert client.post("/v1/predict", json={"trip_distance": -1}).status_code == 422
            time.sleep(0.02)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus missing: apt-get install -y prometheus (scripts/ensure-tools)")
    home = tmp_path_factory.mktemp("dashboards-stack")
    settings = settings_for_tests(home)
    build_repository(settings.paths.model_repository, seed=7, rows=5_000, log=lambda _: None)
    with running_stack(settings, COMPONENTS):
        port = free_port()
        config = {
            "global": {"scrape_interval": f"{SCRAPE_INTERVAL_S}s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in RULE_FILES],
            "scrape_configs": [
                {
                    "job_name": job,
                    "static_configs": [{"targets": [target], "labels": {"namespace": NAMESPACE}}],
                }
                for job, target in (
                    ("ride-duration", f"{settings.host}:{settings.ride_duration_port}"),
                    ("classifier", f"{settings.host}:{settings.classifier_port}"),
                    ("triton", f"{settings.host}:{settings.triton_metrics_port}"),
                    ("backend", f"{settings.host}:{settings.backend_port}"),
                    ("worker-tip", f"{settings.host}:{settings.worker_tip_port}"),
                    ("worker-cost", f"{settings.host}:{settings.worker_cost_port}"),
                    (
                        "worker-dynamic-duration",
                        f"{settings.host}:{settings.worker_dynamic_duration_port}",
                    ),
                )
            ],
        }
        config_file = home / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config))
        log = (home / "prometheus.log").open("w")
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={home / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait(lambda: httpx.get(f"{url}/-/ready").status_code == 200, timeout_s=30,
                  what="prometheus ready")  # fmt: skip
            _rides(f"http://{settings.host}:{settings.backend_port}", count=20)
            _classify(f"http://{settings.host}:{settings.classifier_port}", rounds=8)
            _variants(
                f"http://{settings.host}:{settings.ride_duration_port}",
                settings.triton_grpc_url,
                settings.paths.model_repository,
            )
            _load(f"http://{settings.host}:{settings.ride_duration_port}", seconds=6)
            _rides(f"http://{settings.host}:{settings.backend_port}", count=20)
            _classify(f"http://{settings.host}:{settings.classifier_port}", rounds=8)
            time.sleep(3 * SCRAPE_INTERVAL_S)  # the last counts are scraped
            yield url
        finally:
            process.terminate()
            process.wait(timeout=30)
            log.close()


def _query(url: str, expr: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10)
    body = response.json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def _panels() -> list[tuple[str, str, str]]:
    return [
        (path.stem, panel["title"], target["expr"])
        for path in DASHBOARDS
        for panel in json.loads(path.read_text())["panels"]
        for target in panel["targets"]
    ]


@pytest.mark.parametrize(("dashboard", "title", "expr"), _panels(), ids=lambda v: str(v)[:40])
def test_every_panel_shows_data(prometheus: str, dashboard: str, title: str, expr: str) -> None:
    result = _query(prometheus, expr.replace("$namespace", ".*"))
    assert result, f"{dashboard} / {title}: no data for {expr}"
    values = [float(sample["value"][1]) for sample in result]
    assert any(v == v for v in values), f"{dashboard} / {title}: only NaN"  # NaN != NaN


def test_template_variables_find_the_namespace(prometheus: str) -> None:
    for path in DASHBOARDS:
        for variable in json.loads(path.read_text())["templating"]["list"]:
            metric = variable["definition"].split("(")[1].split(",")[0].strip()
            response = httpx.get(
                f"{prometheus}/api/v1/label/namespace/values", params={"match[]": metric}
            )
            assert NAMESPACE in response.json()["data"], (path.name, variable["definition"])


def test_rules_load_and_no_alert_fires_on_a_healthy_stack(prometheus: str) -> None:
    groups = httpx.get(f"{prometheus}/api/v1/rules").json()["data"]["groups"]
    assert sorted(g["name"] for g in groups) == sorted(
        g["name"] for p in RULE_FILES for g in yaml.safe_load(p.read_text())["groups"]
    )
    # "unknown" until a group first runs (the recording group runs every 30 s).
    assert all(r["health"] in ("ok", "unknown") for g in groups for r in g["rules"]), groups
    firing = [a for a in httpx.get(f"{prometheus}/api/v1/alerts").json()["data"]["alerts"]
              if a["state"] == "firing"]  # fmt: skip
    assert firing == []
