"""The location and sensor services in process: their answers, their bounds (422/404), the
simulated latency and failures, and the caller's budget ending a slow answer (504)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from services.city.location import create_app as location_app
from services.city.sensor import create_app as sensor_app
from services.city.settings import LocationSettings, SensorSettings
from services.domain.taxi import places, traffic
from tests.asgi import asgi_client

FAST = {"latency_s": 0.0, "seed": 7}


async def test_location_answers_a_zone_with_its_place_and_borough() -> None:
    async with asgi_client(location_app(LocationSettings(**FAST))) as client:
        midtown = await client.get("/v1/zones/161")
        jfk = await client.get("/v1/zones/132")
        unknown = await client.get("/v1/zones/264")
        outside = await client.get("/v1/zones/266")
    assert midtown.status_code == 200
    body = midtown.json()
    assert (body["zone_id"], body["borough"], body["airport"]) == (161, "Manhattan", False)
    assert (body["latitude"], body["longitude"]) == places.zone_lat_lng(161)
    assert jfk.json()["airport"] is True and jfk.json()["borough"] == "Queens"
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("application/problem+json")
    assert outside.status_code == 422


async def test_sensor_reads_the_congestion_model_at_the_nearest_zone() -> None:
    latitude, longitude = places.zone_lat_lng(161)
    query = {"latitude": latitude, "longitude": longitude, "at": "2024-03-14T08:30:00"}
    async with asgi_client(sensor_app(SensorSettings(**FAST))) as client:
        rush = await client.get("/v1/traffic", params=query)
        night = await client.get("/v1/traffic", params={**query, "at": "2024-03-14T03:30:00"})
        zoned = await client.get("/v1/traffic", params={**query, "at": "2024-03-14T12:30:00Z"})
        far = await client.get("/v1/traffic", params={**query, "latitude": 45.0})
        bad_time = await client.get("/v1/traffic", params={**query, "at": "yesterday"})
    assert rush.status_code == 200, rush.text
    reading = rush.json()
    want = traffic.traffic_speed_mph(
        np.array([161]), np.array(["2024-03-14T08:30:00"], dtype="datetime64[s]")
    )[0]
    assert reading["zone_id"] == 161 and reading["speed_mph"] == pytest.approx(want, abs=0.01)
    assert reading["congestion"] == pytest.approx(want / reading["free_flow_mph"], abs=1e-3)
    assert night.json()["speed_mph"] > reading["speed_mph"]  # 3:30 flows, 8:30 crawls
    assert zoned.json()["at"] == "2024-03-14T08:30:00"  # 12:30 UTC is 8:30 in New York
    assert zoned.json()["speed_mph"] == reading["speed_mph"]
    assert far.status_code == 422 and bad_time.status_code == 422


async def test_the_simulated_latency_and_failures() -> None:
    settings = SensorSettings(latency_s=0.05, latency_sigma=0.0, failure_rate=0.5, seed=3)
    query = {"latitude": 40.75, "longitude": -73.98, "at": "2024-03-14T08:30:00"}
    async with asgi_client(sensor_app(settings)) as client:
        started = time.monotonic()
        statuses = [(await client.get("/v1/traffic", params=query)).status_code for _ in range(40)]
        elapsed = time.monotonic() - started
    assert elapsed >= 40 * 0.05  # every answer waited its delay
    assert set(statuses) == {200, 503}
    assert 8 <= statuses.count(503) <= 32  # about half, seeded


async def test_a_callers_budget_ends_a_slow_answer_with_504() -> None:
    settings = LocationSettings(latency_s=2.0, latency_sigma=0.0)
    async with asgi_client(location_app(settings)) as client:
        started = time.monotonic()
        cut = await client.get("/v1/zones/161", headers={"X-Request-Budget-Ms": "200"})
        elapsed = time.monotonic() - started
        spent = await client.get("/v1/zones/161", headers={"X-Request-Budget-Ms": "0"})
    assert cut.status_code == 504 and elapsed < 1.5
    assert cut.json()["type"].endswith("request-timeout")
    assert spent.status_code == 504
