"""POST /v1/rides' fan-out through a real backend process: ride-duration on the real stack,
location and sensor as real small HTTP servers of the test (one fine, one too slow). The answer
comes within the overall budget with the slow field null and a reason, and GET shows the same."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from services.stack.service import ServiceProcess
from services.stack.settings import StackSettings
from services.stack.supervisor import Stack
from services.stack.testing import free_port
from tests.httpstub import Route, Stub, http_stub

pytestmark = pytest.mark.integration

RIDE: dict[str, Any] = {
    "user_id": "it-fanout",
    "pickup_datetime": "2024-03-14T08:30:00",
    "pickup_location_id": 161,
    "dropoff_location_id": 236,
    "trip_distance": 2.4,
}
BUDGET_S = 1.0
OVERALL_REQUIREMENT_S = 2.0


@pytest_asyncio.fixture(scope="module")
async def stubs() -> AsyncIterator[Stub]:
    routes = {
        "/location": Route(body=b'{"zone": "Midtown Center", "borough": "Manhattan"}'),
        "/sensor": Route(delay_s=3.0, body=b'{"traffic": 0.9}'),
    }
    async with http_stub(routes) as stub:
        yield stub


@pytest_asyncio.fixture(scope="module")
async def fanout_backend(
    stack: Stack, stack_settings: StackSettings, stubs: Stub
) -> AsyncIterator[httpx.AsyncClient]:
    """A second backend process whose location/sensor URLs point at the stubs."""
    process = ServiceProcess(
        stack_settings,
        "backend-fanout",
        app="services.backend.app:create_app",
        port=free_port(),
        port_setting="backend_port",
        env={
            "BACKEND_RIDE_DURATION_URL": f"http://{stack_settings.host}:"
            f"{stack_settings.ride_duration_port}",
            "BACKEND_LOCATION_URL": f"{stubs.url}/location",
            "BACKEND_SENSOR_URL": f"{stubs.url}/sensor",
            "BACKEND_SENSOR_TIMEOUT_S": "2.0",
            "BACKEND_FANOUT_BUDGET_S": str(BUDGET_S),
            "BACKEND_RELAY": "false",  # the stack's backend relays its events
        },
    )
    began = time.monotonic()
    process.start()
    try:
        process.wait_ready(began + process.startup_timeout)
        async with httpx.AsyncClient(base_url=process.url, timeout=10.0) as client:
            yield client
    finally:
        process.stop()


async def test_slow_sensor_is_null_with_timeout_within_the_budget(
    fanout_backend: httpx.AsyncClient, stubs: Stub
) -> None:
    await fanout_backend.post("/v1/rides", json=RIDE)  # warm the connections
    started = time.monotonic()
    response = await fanout_backend.post("/v1/rides", json=RIDE)
    elapsed = time.monotonic() - started
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["initial_duration"]["duration_minutes"] > 1.0
    assert body["initial_duration"]["reason"] is None
    assert body["location"] == {
        "data": {"zone": "Midtown Center", "borough": "Manhattan"},
        "reason": None,
    }
    assert body["sensor"] == {"data": None, "reason": "timeout"}
    assert elapsed < OVERALL_REQUIREMENT_S, elapsed
    location_calls = [r for r in stubs.requests if r[0] == "/location"]
    assert location_calls and b'"user_id":"it-fanout"' in location_calls[-1][2]
    assert location_calls[-1][1]["x-request-id"] == response.headers["x-request-id"]

    stored = (await fanout_backend.get(f"/v1/rides/{body['ride_id']}")).json()
    assert stored["location"] == body["location"] and stored["sensor"] == body["sensor"]
    metrics = (await fanout_backend.get("/metrics")).text
    assert 'modelfleet_fanout_calls_total{downstream="sensor",outcome="timeout"}' in metrics
    assert 'modelfleet_fanout_calls_total{downstream="location",outcome="ok"}' in metrics


async def test_unconfigured_services_are_null_with_not_configured(
    backend: httpx.AsyncClient,
) -> None:
    body = (await backend.post("/v1/rides", json=RIDE)).json()
    assert body["location"] == {"data": None, "reason": "not_configured"}
    assert body["sensor"] == {"data": None, "reason": "not_configured"}
    assert body["initial_duration"]["reason"] is None
