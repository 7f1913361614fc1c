"""The ride's call chain on real processes: the stack's Postgres, NATS, Triton (with the
sensor-aware model) and ride-duration, the real location and sensor services with the
deployment-architectures document's delays, a backend with a 2 s budget and the sensor-duration
worker. The first answer comes in budget (the base duration, the sensor's reason); the
sensor-aware duration follows as a result; a sensor asked with too little budget left gives up
(504) instead of answering nobody; a fast city fits the chain in the first answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
import pytest_asyncio

from services.stack.service import ServiceProcess
from services.stack.settings import StackSettings
from services.stack.supervisor import Stack
from services.stack.testing import free_port

pytestmark = pytest.mark.integration

RIDE: dict[str, Any] = {
    "user_id": "it-chain",
    "pickup_datetime": "2024-03-14T08:30:00",
    "pickup_location_id": 161,
    "dropoff_location_id": 236,
    "trip_distance": 2.4,
}
BUDGET_S = 2.0


def _process(
    settings: StackSettings, name: str, app: str, env: dict[str, str], *, argv: Any = None
) -> ServiceProcess:
    return ServiceProcess(
        settings,
        name,
        app=app,
        port=free_port(),
        port_setting="backend_port",
        env=env,
        argv=argv,
    )


def _start(processes: list[ServiceProcess], stop: ExitStack) -> None:
    began = time.monotonic()
    for process in processes:
        process.start()
        stop.callback(process.stop)
    for process in processes:
        process.wait_ready(began + process.startup_timeout)


class City:
    """The processes of one chain: location, sensor, a backend, and its sensor-duration worker."""

    def __init__(self, settings: StackSettings, *, latency: bool, name: str) -> None:
        self.location = _process(
            settings,
            f"location-{name}",
            "services.city.location:create_app",
            {"LOCATION_LATENCY_S": "0.5" if latency else "0", "LOCATION_SEED": "1"},
        )
        self.sensor = _process(
            settings,
            f"sensor-{name}",
            "services.city.sensor:create_app",
            {"SENSOR_LATENCY_S": "2.0" if latency else "0", "SENSOR_SEED": "1"},
        )
        self.backend = _process(
            settings,
            f"backend-{name}",
            "services.backend.app:create_app",
            {
                "BACKEND_RIDE_DURATION_URL": f"http://{settings.host}:{settings.ride_duration_port}",
                "BACKEND_LOCATION_URL": self.location.url,
                "BACKEND_SENSOR_URL": self.sensor.url,
                "BACKEND_REQUEST_BUDGET_S": str(BUDGET_S),
                "BACKEND_RELAY": "true",
            },
        )

    def processes(self) -> list[ServiceProcess]:
        return [self.location, self.sensor, self.backend]


@pytest.fixture(scope="module")
def slow_city(stack: Stack, stack_settings: StackSettings) -> Iterator[City]:
    """The document's delays (location 0.5 s, sensor 2 s) and the sensor-duration worker."""
    city = City(stack_settings, latency=True, name="slow")
    worker = ServiceProcess(
        stack_settings,
        "worker-sensor-duration",
        app="services.workers",
        port=free_port(),
        port_setting="worker_sensor_duration_port",
        argv=("services.workers", "sensor-duration"),
        env={"WORKERS_LOCATION_URL": city.location.url, "WORKERS_SENSOR_URL": city.sensor.url},
    )
    with ExitStack() as stop:
        _start([*city.processes(), worker], stop)
        yield city


@pytest.fixture(scope="module")
def fast_city(stack: Stack, stack_settings: StackSettings) -> Iterator[City]:
    city = City(stack_settings, latency=False, name="fast")
    with ExitStack() as stop:
        _start(city.processes(), stop)
        yield city


@pytest_asyncio.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=15.0) as http:
        yield http


def _counter(metrics: str, name: str, **labels: str) -> float:
    """The sum of a counter's samples carrying ``labels`` in a /metrics text."""
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith(f"{name}{{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_the_first_answer_is_in_budget_and_the_sensor_aware_duration_follows(
    slow_city: City, client: httpx.AsyncClient
) -> None:
    backend = slow_city.backend.url
    await client.post(f"{backend}/v1/rides", json={**RIDE, "user_id": "warm"})
    sensor_before = (await client.get(f"{slow_city.sensor.url}/metrics")).text
    started = time.monotonic()
    response = await client.post(f"{backend}/v1/rides", json=RIDE)
    elapsed = time.monotonic() - started
    assert response.status_code == 201, response.text
    body = response.json()
    assert elapsed < BUDGET_S, elapsed
    initial = body["initial_duration"]
    assert initial["duration_minutes"] > 1.0 and initial["uses_sensor"] is False
    assert initial["model"]["name"] == "ride_duration"
    assert body["location"]["reason"] is None and body["location"]["data"]["zone_id"] == 161
    assert body["sensor"] == {"data": None, "reason": "timeout"}

    # The better duration arrives as a result: the worker finished the chain.
    ride_url = f"{backend}/v1/rides/{body['ride_id']}"
    deadline = time.monotonic() + 30.0
    sensor_result: dict[str, Any] | None = None
    while time.monotonic() < deadline and sensor_result is None:
        results = (await client.get(ride_url)).json()["results"]
        sensor_result = next((r for r in results if r["kind"] == "sensor_duration"), None)
        await asyncio.sleep(0.3)
    assert sensor_result is not None, "no sensor_duration result within 30 s"
    assert sensor_result["model"]["name"] == "ride_duration_sensor"
    assert sensor_result["value"] > 1.0 and sensor_result["unit"] == "minutes"

    # The sensor gave up the backend's call when its budget ran out (504, no answer computed);
    # the worker's call, with its own 10 s deadline, was answered.
    sensor_after = (await client.get(f"{slow_city.sensor.url}/metrics")).text
    gave_up = _counter(sensor_after, "http_requests_total", status="504") - _counter(
        sensor_before, "http_requests_total", status="504"
    )
    answered = _counter(sensor_after, "modelfleet_city_answers_total", outcome="ok") - _counter(
        sensor_before, "modelfleet_city_answers_total", outcome="ok"
    )
    assert gave_up >= 1 and answered >= 1


async def test_a_fast_city_fits_the_chain_in_the_first_answer(
    fast_city: City, client: httpx.AsyncClient
) -> None:
    response = await client.post(f"{fast_city.backend.url}/v1/rides", json=RIDE)
    assert response.status_code == 201, response.text
    body = response.json()
    initial = body["initial_duration"]
    assert initial["uses_sensor"] is True and initial["model"]["name"] == "ride_duration_sensor"
    assert body["sensor"]["reason"] is None and body["sensor"]["data"]["speed_mph"] > 0
    stored = (await client.get(f"{fast_city.backend.url}/v1/rides/{body['ride_id']}")).json()
    assert stored["initial_duration"] == initial  # a replay and GET say the same


async def test_a_spent_budget_is_refused_at_once(
    fast_city: City, client: httpx.AsyncClient
) -> None:
    response = await client.post(
        f"{fast_city.backend.url}/v1/rides", json=RIDE, headers={"X-Request-Budget-Ms": "0"}
    )
    assert response.status_code == 504
    assert response.headers["content-type"].startswith("application/problem+json")
