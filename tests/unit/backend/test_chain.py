"""POST /v1/rides' chain against real small HTTP servers standing in for ride-duration, location
and sensor: the base duration at once, location -> sensor -> sensor-aware duration when it fits
the budget, the base one with a reason per missing part when it does not, and the remaining
budget told to each callee."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from services.backend.api import request_hash
from services.backend.chain import RideAnswer, answer_ride, ride_budget_s
from services.backend.schemas import RideRequest
from services.backend.settings import BackendSettings
from services.common.deadline import BUDGET_HEADER, request_deadline
from services.common.http import JsonClient
from tests.httpstub import Route, Stub, http_stub

RIDE = RideRequest.model_validate(
    {
        "user_id": "u-1",
        "pickup_datetime": "2024-03-14T08:30:00",
        "pickup_location_id": 161,
        "dropoff_location_id": 236,
        "trip_distance": 2.4,
    }
)
BASE = b'{"duration_minutes": 14.25, "model": {"name": "ride_duration", "version": "3"}}'
PLACE = b'{"zone_id": 161, "borough": "Manhattan", "latitude": 40.78, "longitude": -73.94}'
READING = b'{"zone_id": 161, "speed_mph": 6.5, "conditions": "heavy"}'


def routes(*, location: Route | None = None, sensor: Route | None = None) -> dict[str, Route]:
    return {
        "/v1/predict": Route(body=BASE),
        "/loc/v1/zones/161": location or Route(body=PLACE),
        "/sensor/v1/traffic": sensor or Route(body=READING),
    }


def stub_settings(url: str, **overrides: Any) -> BackendSettings:
    """Settings whose three downstreams are paths of the stub at ``url``."""
    return BackendSettings(
        ride_duration_url=url, location_url=f"{url}/loc", sensor_url=f"{url}/sensor", **overrides
    )


async def answer(settings: BackendSettings, budget_s: float | None = None) -> RideAnswer:
    async with JsonClient() as client:
        budget = ride_budget_s(settings) if budget_s is None else budget_s
        return await answer_ride(client, settings, RIDE, budget_s=budget)


def predict_bodies(stub: Stub) -> list[dict[str, Any]]:
    return [orjson.loads(body) for path, _, body in stub.requests if path == "/v1/predict"]


async def test_a_chain_in_budget_answers_with_the_sensor_aware_duration() -> None:
    # The stub answers both predict calls alike: the sensor-aware one is the answer kept.
    aware = b'{"duration_minutes": 19.5, "model": {"name": "ride_duration_sensor", "version": "1"}}'
    stub_routes = routes()
    stub_routes["/v1/predict"] = Route(body=aware)
    async with http_stub(stub_routes) as aware_stub:
        got = await answer(stub_settings(aware_stub.url))
    assert got.initial.duration_minutes == 19.5 and got.initial.uses_sensor is True
    assert got.initial.model is not None and got.initial.model.name == "ride_duration_sensor"
    assert got.location.data is not None and got.location.data["latitude"] == 40.78
    assert got.sensor.data is not None and got.sensor.reason is None
    assert got.traffic_speed_mph == 6.5
    bodies = predict_bodies(aware_stub)
    assert sorted("traffic_speed_mph" in body for body in bodies) == [False, True]
    assert next(b for b in bodies if "traffic_speed_mph" in b)["traffic_speed_mph"] == 6.5
    sensor_path = next(p for p, _, _ in aware_stub.requests if p.startswith("/sensor"))
    query = parse_qs(urlsplit(sensor_path).query)
    assert query == {
        "latitude": ["40.78"],
        "longitude": ["-73.94"],
        "at": ["2024-03-14T08:30:00"],
    }


async def test_a_slow_sensor_gives_the_base_duration_in_budget_with_a_reason() -> None:
    # The document's delays scaled by 1/4: location 0.125 s, sensor 0.5 s, budget 0.5 s.
    stub_routes = routes(
        location=Route(body=PLACE, delay_s=0.125), sensor=Route(body=READING, delay_s=0.5)
    )
    async with http_stub(stub_routes) as stub:
        settings = stub_settings(stub.url, request_budget_s=0.55, write_reserve_s=0.05)
        started = time.monotonic()
        got = await answer(settings)
        elapsed = time.monotonic() - started
    assert got.initial.duration_minutes == 14.25 and got.initial.uses_sensor is False
    assert got.location.reason is None and got.location.data is not None
    assert got.sensor.data is None and got.sensor.reason == "timeout"
    assert got.traffic_speed_mph is None
    assert elapsed < 0.5 + 0.4  # the budget (plus noise on a loaded machine), not 0.625 s
    sensor_headers = next(h for p, h, _ in stub.requests if p.startswith("/sensor"))
    told = int(sensor_headers[BUDGET_HEADER])
    assert 200 <= told <= 400  # what was left of 0.5 s after the location's 0.125 s
    assert len(predict_bodies(stub)) == 1  # no sensor reading: no sensor-aware call


async def test_without_a_place_the_sensor_is_not_asked_and_says_why() -> None:
    async with http_stub(routes(location=Route(status=500))) as stub:
        got = await answer(stub_settings(stub.url))
    assert got.location.reason == "unavailable" and got.sensor.reason == "unavailable"
    assert got.initial.duration_minutes == 14.25 and got.initial.uses_sensor is False
    assert not any(path.startswith("/sensor") for path, _, _ in stub.requests)


async def test_a_slow_prediction_is_cut_by_the_budget_others_unconfigured() -> None:
    async with http_stub({"/v1/predict": Route(body=BASE, delay_s=3.0)}) as stub:
        settings = BackendSettings(ride_duration_url=stub.url, ride_duration_timeout_s=4.0)
        started = time.monotonic()
        got = await answer(settings, budget_s=0.3)
        elapsed = time.monotonic() - started
    assert got.initial.model_dump() == {
        "duration_minutes": None,
        "model": None,
        "reason": "timeout",
        "uses_sensor": False,
    }
    assert got.location.reason == "not_configured" and got.sensor.reason == "not_configured"
    assert elapsed < 2.0


async def test_bad_answers_are_unavailable() -> None:
    stub_routes = {
        "/v1/predict": Route(body=b'{"duration_minutes": "soon"}'),  # not the contract
        "/loc/v1/zones/161": Route(body=PLACE),
        "/sensor/v1/traffic": Route(body=b"[]"),
    }
    async with http_stub(stub_routes) as stub:
        got = await answer(stub_settings(stub.url))
    assert got.initial.reason == "unavailable"
    assert got.sensor.reason == "unavailable" and got.location.reason is None


def test_the_ride_budget_is_the_settings_or_the_callers_shorter_one_less_the_reserve() -> None:
    settings = BackendSettings(request_budget_s=2.0, write_reserve_s=0.2)
    assert ride_budget_s(settings) == 1.8
    with request_deadline(1.0):
        assert 0.7 < ride_budget_s(settings) <= 0.8
    with request_deadline(5.0):
        assert ride_budget_s(settings) == 1.8
    with request_deadline(0.1):
        assert ride_budget_s(settings) == 0.0


def test_request_hash_binds_a_key_to_the_validated_body() -> None:
    same = RideRequest.model_validate({**RIDE.model_dump(), "passenger_count": 1})
    other = RideRequest.model_validate({**RIDE.model_dump(), "trip_distance": 2.5})
    assert request_hash(RIDE) == request_hash(same)  # defaults filled in: the same request
    assert request_hash(RIDE) != request_hash(other)
