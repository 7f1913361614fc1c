"""POST /v1/rides' fan-out against real small HTTP servers: ride-duration, location and sensor
each within its own deadline from settings, all within BACKEND_FANOUT_BUDGET_S, a null field and
a reason for each one that misses (timeout, unavailable, not_configured)."""

from __future__ import annotations

import time
from typing import Any

from services.backend.api import data_of, downstream_calls, initial_of, request_hash
from services.backend.downstream import JsonClient
from services.backend.fanout import fan_out
from services.backend.schemas import RideRequest
from services.backend.settings import BackendSettings
from tests.httpstub import Route, http_stub

RIDE = RideRequest.model_validate(
    {
        "user_id": "u-1",
        "pickup_datetime": "2024-03-14T08:30:00",
        "pickup_location_id": 161,
        "dropoff_location_id": 236,
        "trip_distance": 2.4,
    }
)
PREDICTION = b'{"duration_minutes": 14.25, "model": {"name": "ride_duration", "version": "3"}}'


def stub_settings(url: str, **overrides: Any) -> BackendSettings:
    """Settings whose three downstreams are paths of the stub at ``url``."""
    return BackendSettings(
        ride_duration_url=url,
        location_url=f"{url}/loc",
        sensor_url=f"{url}/sensor",
        **overrides,
    )


async def answer(settings: BackendSettings) -> dict[str, Any]:
    async with JsonClient() as client:
        outcomes = await fan_out(
            downstream_calls(client, settings, RIDE), budget_s=settings.fanout_budget_s
        )
    return {
        "initial_duration": initial_of(outcomes["ride-duration"]).model_dump(mode="json"),
        "location": data_of(outcomes["location"]).model_dump(mode="json"),
        "sensor": data_of(outcomes["sensor"]).model_dump(mode="json"),
    }


async def test_all_fine_every_field_filled_and_the_ride_sent_to_each() -> None:
    routes = {
        "/v1/predict": Route(body=PREDICTION),
        "/loc": Route(body=b'{"zone": "Midtown"}'),
        "/sensor": Route(body=b'{"traffic": 0.7}'),
    }
    async with http_stub(routes) as stub:
        settings = stub_settings(stub.url)
        got = await answer(settings)
    assert got == {
        "initial_duration": {
            "duration_minutes": 14.25,
            "model": {"name": "ride_duration", "version": "3"},
            "reason": None,
        },
        "location": {"data": {"zone": "Midtown"}, "reason": None},
        "sensor": {"data": {"traffic": 0.7}, "reason": None},
    }
    paths = sorted(path for path, _, _ in stub.requests)
    assert paths == ["/loc", "/sensor", "/v1/predict"]
    location_body = next(body for path, _, body in stub.requests if path == "/loc")
    assert b'"pickup_location_id":161' in location_body


async def test_seed_budgets_slow_location_and_sensor_degrade_within_the_overall_budget() -> None:
    # The seed's budgets scaled by 1/4: location 0.125 s, sensor 0.5 s, predict 1 s, overall 0.5 s.
    routes = {
        "/v1/predict": Route(body=PREDICTION, delay_s=0.05),
        "/loc": Route(delay_s=2.0),
        "/sensor": Route(delay_s=2.0),
    }
    async with http_stub(routes) as stub:
        settings = stub_settings(
            stub.url,
            ride_duration_timeout_s=1.0,
            location_timeout_s=0.125,
            sensor_timeout_s=0.5,
            fanout_budget_s=0.5,
        )
        started = time.monotonic()
        got = await answer(settings)
        elapsed = time.monotonic() - started
    assert got["initial_duration"]["duration_minutes"] == 14.25
    assert got["location"] == {"data": None, "reason": "timeout"}
    assert got["sensor"] == {"data": None, "reason": "timeout"}
    assert elapsed < 1.5  # within the budget (plus noise on a loaded machine), not 2 s


async def test_slow_prediction_is_cut_by_the_overall_budget_others_unconfigured() -> None:
    async with http_stub({"/v1/predict": Route(body=PREDICTION, delay_s=3.0)}) as stub:
        settings = BackendSettings(
            ride_duration_url=stub.url, ride_duration_timeout_s=4.0, fanout_budget_s=0.3
        )
        started = time.monotonic()
        got = await answer(settings)
        elapsed = time.monotonic() - started
    assert got["initial_duration"] == {"duration_minutes": None, "model": None, "reason": "timeout"}
    assert got["location"] == {"data": None, "reason": "not_configured"}
    assert got["sensor"] == {"data": None, "reason": "not_configured"}
    assert elapsed < 2.0


async def test_failing_services_are_unavailable() -> None:
    routes = {
        "/v1/predict": Route(body=b'{"duration_minutes": "soon"}'),  # not the contract
        "/loc": Route(status=500),
        "/sensor": Route(body=b"[]"),
    }
    async with http_stub(routes) as stub:
        settings = stub_settings(stub.url)
        got = await answer(settings)
    assert got["initial_duration"]["reason"] == "unavailable"
    assert got["location"] == {"data": None, "reason": "unavailable"}
    assert got["sensor"] == {"data": None, "reason": "unavailable"}


def test_request_hash_binds_a_key_to_the_validated_body() -> None:
    same = RideRequest.model_validate({**RIDE.model_dump(), "passenger_count": 1})
    other = RideRequest.model_validate({**RIDE.model_dump(), "trip_distance": 2.5})
    assert request_hash(RIDE) == request_hash(same)  # defaults filled in: the same request
    assert request_hash(RIDE) != request_hash(other)
