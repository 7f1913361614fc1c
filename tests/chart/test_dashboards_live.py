"""Every PromQL expression of every dashboard returns data from a real Prometheus.

A real Prometheus (Debian package `prometheus`) scrapes the local stack (real Triton with the
models, PostgreSQL, NATS, ride-duration, the classifier, the backend, the chatbot generating with
the local LLM (llama.cpp, `modelfleet up --llm`), the location and sensor services and the four
streaming workers) after some load
(predictions through a canary and a shadow variant with outcomes, classifications with feedback,
rides, questions about an uploaded PDF, streamed). Its scrape jobs are the chart's rendered
ServiceMonitors (tests/chart/scrape_config.py: the Services they select, their ports, path,
interval, relabelings, and the labels the Prometheus Operator gives: job=<component> by the
jobLabel, namespace, service, endpoint), aimed at the local processes; a ServiceMonitor that
would scrape nothing in a cluster fails here. A panel that shows nothing is a bug. The rule
files are loaded too: every rule must evaluate with health "ok".
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

from bench.chatbot import make_pdf, manual_pages
from models.repository import build_repository
from models.ride_duration.variants import publish_candidate
from services.common.triton import TritonClient
from services.stack.testing import free_port, running_stack, settings_for_tests
from tests.chart.conftest import NAMESPACE, Obj, by_kind, render
from tests.chart.scrape_config import scrape_configs, stack_ports
from tests.chart.test_monitoring import DASHBOARDS, RULE_FILES

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

RIDE = {
    "pickup_datetime": "2024-03-14T08:30:00",
    "pickup_location_id": 161,
    "dropoff_location_id": 236,
    "trip_distance": 2.4,
    "passenger_count": 1,
}
SCRAPE_INTERVAL_S = 1
#: The chart's values for this test: its defaults, scraped every second (a short test).
VALUES = {"monitoring": {"serviceMonitor": {"interval": f"{SCRAPE_INTERVAL_S}s"}}}
#: Every component a rendered ServiceMonitor scrapes (scrape_config fails on one not run here).
COMPONENTS = [
    "postgres",
    "nats",
    "triton",
    "ride-duration",
    "classifier",
    "backend",
    "chatbot",
    "worker-tip",
    "worker-cost",
    "worker-dynamic-duration",
    "worker-sensor-duration",
    "location",
    "sensor",
    "llm",  # no ServiceMonitor: the chatbot measures its generations (chatbot dashboard)
]


def _expect(response: httpx.Response, status: int) -> httpx.Response:
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url.path}: {response.status_code} "
        f"(expected {status}): {response.text}"
    )
    return response


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
            _expect(client.post("/v1/rides", json=ride), 201)


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
            body = {"title": title, "description": description, "top_k": 2}
            answer = _expect(client.post("/v1/classify", json=body), 200).json()
            truth = answer["top_k"][1 if i % 4 == 3 else 0]["category"]
            feedback = {"prediction_id": answer["prediction_id"], "true_category": truth}
            _expect(client.post("/v1/feedback", json=feedback), 200)


def _questions(base_url: str, count: int, *, first: int = 0) -> None:
    """A PDF uploaded, then `count` questions about it streamed (the LLM generates; a cited
    answer or the extractive one that replaces it), numbered from `first`: a question asked
    before is answered from the cache."""
    with httpx.Client(base_url=base_url, timeout=180) as client:
        pdf = ("nova-01.pdf", make_pdf(manual_pages(1)), "application/pdf")
        accepted = _expect(client.post("/v1/documents", files={"file": pdf}), 202).json()
        _wait(
            lambda: client.get(accepted["status_url"]).json()["status"] == "ready",
            timeout_s=60,
            what="the PDF ingested",
        )
        for i in range(first, first + count):
            body = {"question": f"How long does the Nova 01 battery last? ({i})", "stream": True}
            with client.stream("POST", "/v1/chat", json=body) as response:
                assert response.status_code == 200
                assert "event: done" in response.read().decode()


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
        routing = {"expected_version": 0, "variants": variants}
        _expect(client.put("/v1/admin/routing", json=routing), 200)
        ids = [
            _expect(client.post("/v1/predict", json=RIDE), 200).json()["prediction_id"]
            for _ in range(20)
        ]
        time.sleep(0.5)  # the prediction log is written in the background
        outcomes = [{"prediction_id": i, "actual_minutes": 11.0} for i in ids]
        _expect(client.post("/v1/outcomes", json={"outcomes": outcomes}), 200)


def _load(base_url: str, seconds: float) -> None:
    """Predictions, batch predictions and model listings (valid requests: each must answer 200),
    and one deliberate invalid ride (must answer 422: the 'by route and status' panel), for
    `seconds`."""
    deadline = time.monotonic() + seconds
    batch = {"rides": [RIDE, {**RIDE, "user_id": "dash-batch", "trip_distance": 5.1}]}
    with httpx.Client(base_url=base_url, timeout=5) as client:
        while time.monotonic() < deadline:
            _expect(client.post("/v1/predict", json=RIDE), 200)
            _expect(client.post("/v1/predict/batch", json=batch), 200)
            _expect(client.get("/v1/models"), 200)
            _expect(client.post("/v1/predict", json={"trip_distance": -1}), 422)
            time.sleep(0.02)


def _targets(url: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{url}/api/v1/targets", params={"state": "active"}, timeout=10)
    targets: list[dict[str, Any]] = response.json()["data"]["activeTargets"]
    return targets


@pytest.fixture(scope="module")
def chart() -> list[Obj]:
    """The chart's objects with VALUES, on a cluster with the Prometheus Operator's APIs."""
    return render(VALUES)


@pytest.fixture(scope="module")
def prometheus(
    tmp_path_factory: pytest.TempPathFactory, chart: list[Obj], request: pytest.FixtureRequest
) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus missing: apt-get install -y prometheus (scripts/ensure-tools)")
    home = tmp_path_factory.mktemp("dashboards-stack")
    settings = settings_for_tests(home, llm=True)
    # Before anything starts: a ServiceMonitor that would scrape nothing fails at once.
    jobs = scrape_configs(
        chart, stack_ports(settings, COMPONENTS), namespace=NAMESPACE, host=settings.host
    )
    build_repository(settings.paths.model_repository, seed=7, rows=5_000, log=lambda _: None)
    # Short answers within a generous deadline (the cores are shared): the stack's processes
    # read these when they start; the test's own environment is restored after.
    env = pytest.MonkeyPatch()
    request.addfinalizer(env.undo)
    env.setenv("CHATBOT_LLM_MAX_TOKENS", "16")
    env.setenv("CHATBOT_LLM_TIMEOUT_S", "120")
    # A fast city: every ride's chain fits its budget (the rides here are sequential).
    env.setenv("LOCATION_LATENCY_S", "0")
    env.setenv("SENSOR_LATENCY_S", "0")
    with running_stack(settings, COMPONENTS):
        port = free_port()
        config = {
            "global": {"scrape_interval": f"{SCRAPE_INTERVAL_S}s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in RULE_FILES],
            "scrape_configs": jobs,
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
            _wait(
                lambda: (
                    len(_targets(url)) == sum(len(j["static_configs"]) for j in jobs)
                    and all(t["health"] == "up" for t in _targets(url))
                ),
                timeout_s=30,
                what="every ServiceMonitor target up",
            )
            _rides(f"http://{settings.host}:{settings.backend_port}", count=20)
            _classify(f"http://{settings.host}:{settings.classifier_port}", rounds=8)
            _questions(f"http://{settings.host}:{settings.chatbot_port}", count=3)
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
    """Every panel's queries, those of the panels inside collapsed rows too."""
    return [
        (path.stem, panel["title"], target["expr"])
        for path in DASHBOARDS
        for top in json.loads(path.read_text())["panels"]
        for panel in (top.get("panels", []) if top["type"] == "row" else [top])
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


def test_targets_have_the_operators_labels(prometheus: str, chart: list[Obj]) -> None:
    """One target per ServiceMonitor'd Service, up, labelled as the Prometheus Operator labels
    it: job = the Service's jobLabel label (else its name), namespace, service, endpoint."""
    expected = set()
    for monitor in by_kind(chart, "ServiceMonitor"):
        spec = monitor["spec"]
        for service in by_kind(chart, "Service"):
            labels = service["metadata"]["labels"]
            if all(labels.get(k) == v for k, v in spec["selector"]["matchLabels"].items()):
                job = labels.get(spec.get("jobLabel", ""), service["metadata"]["name"])
                expected |= {
                    (job, NAMESPACE, service["metadata"]["name"], endpoint["port"])
                    for endpoint in spec["endpoints"]
                }
    targets = _targets(prometheus)
    assert all(t["health"] == "up" for t in targets), targets
    labels = [t["labels"] for t in targets]
    got = {(t["job"], t["namespace"], t["service"], t["endpoint"]) for t in labels}
    assert got == expected
    assert len(labels) == len(expected)
    assert {t["job"] for t in labels} >= {"triton", "ride-duration", "backend"}  # rules use job


def _rule_groups(url: str) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = httpx.get(f"{url}/api/v1/rules", timeout=10).json()["data"][
        "groups"
    ]
    return groups


def _evaluated(rule: dict[str, Any]) -> bool:
    return not str(rule["lastEvaluation"]).startswith("0001-")  # Go's zero time: never run


def test_rules_load_and_no_alert_fires_on_a_healthy_stack(prometheus: str) -> None:
    groups = _rule_groups(prometheus)
    assert sorted(g["name"] for g in groups) == sorted(
        g["name"] for p in RULE_FILES for g in yaml.safe_load(p.read_text())["groups"]
    )
    # Every rule runs at least once (the recording group runs every 30 s), then is healthy.
    timeout_s = 2 * max(float(g["interval"]) for g in groups) + 10
    _wait(
        lambda: all(_evaluated(r) for g in _rule_groups(prometheus) for r in g["rules"]),
        timeout_s=timeout_s,
        what="every rule evaluated once",
    )
    rules = [r for g in _rule_groups(prometheus) for r in g["rules"]]
    unhealthy = [
        (r["name"], r["health"], r.get("lastError", ""))
        for r in rules
        if r["health"] != "ok" or r.get("lastError")
    ]
    assert unhealthy == []
    assert len(rules) == sum(
        len(g["rules"]) for p in RULE_FILES for g in yaml.safe_load(p.read_text())["groups"]
    )
    firing = [a for a in httpx.get(f"{prometheus}/api/v1/alerts").json()["data"]["alerts"]
              if a["state"] == "firing"]  # fmt: skip
    assert firing == []
