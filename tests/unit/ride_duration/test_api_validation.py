"""ride-duration rejects bad rides with 422 problem+json naming the field, before any model call.

Every test runs twice: hot routes served as fast routes, and as plain FastAPI routes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from services.ride_duration.app import create_app
from services.ride_duration.settings import RideDurationSettings
from tests.asgi import asgi_client

GOOD_RIDE: dict[str, Any] = {
    "pickup_datetime": "2024-03-14T08:30:00",
    "pickup_location_id": 161,
    "dropoff_location_id": 236,
    "trip_distance": 2.4,
    "passenger_count": 1,
}


@pytest_asyncio.fixture(scope="module", params=[True, False], ids=["fast-routes", "fastapi"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    # Nothing listens on port 1: a request that got past validation would fail with 503.
    # Both ways of serving the hot routes must behave the same.
    settings = RideDurationSettings(
        prediction_log=False,
        routing_table=False,
        log_json=False,
        triton_grpc_url="127.0.0.1:1",
        triton_retries=0,
        http_fast_routes=request.param,
    )
    async with asgi_client(create_app(settings)) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"pickup_location_id": 0}, "pickup_location_id"),
        ({"pickup_location_id": 266}, "pickup_location_id"),
        ({"dropoff_location_id": "JFK"}, "dropoff_location_id"),
        ({"trip_distance": 0}, "trip_distance"),
        ({"trip_distance": -3}, "trip_distance"),
        ({"passenger_count": 10}, "passenger_count"),
        ({"pickup_datetime": "yesterday"}, "pickup_datetime"),
        ({"pickup_datetime": "0001-01-01T00:00:00+14:00"}, "pickup_datetime"),
        ({"ratecode_id": 7}, "ratecode_id"),
        ({"payment_type": 9}, "payment_type"),
        ({"surge": 2.0}, "surge"),
    ],
)
async def test_bad_ride_is_422_naming_the_field(
    client: httpx.AsyncClient, change: dict[str, Any], field: str
) -> None:
    response = await client.post("/v1/predict", json={**GOOD_RIDE, **change})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == [field]


async def test_missing_field_is_named(client: httpx.AsyncClient) -> None:
    ride = {k: v for k, v in GOOD_RIDE.items() if k != "trip_distance"}
    response = await client.post("/v1/predict", json=ride)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "trip_distance"


async def test_batch_limits(client: httpx.AsyncClient) -> None:
    too_many = await client.post("/v1/predict/batch", json={"rides": [GOOD_RIDE] * 1001})
    assert too_many.status_code == 422
    assert too_many.json()["errors"][0]["field"] == "rides"
    empty = await client.post("/v1/predict/batch", json={"rides": []})
    assert empty.status_code == 422
    one_bad = await client.post(
        "/v1/predict/batch", json={"rides": [GOOD_RIDE, {**GOOD_RIDE, "trip_distance": -1}]}
    )
    assert one_bad.json()["errors"][0]["field"] == "rides.1.trip_distance"


async def test_valid_ride_with_triton_unreachable_is_503(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/predict", json=GOOD_RIDE)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "1"
    ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["triton"] != "ok"


async def test_bad_outcome_is_422_and_without_the_log_404(client: httpx.AsyncClient) -> None:
    bad = await client.post(
        "/v1/outcomes", json={"outcomes": [{"prediction_id": "x", "actual_minutes": -1}]}
    )
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {
        "outcomes.0.prediction_id",
        "outcomes.0.actual_minutes",
    }
    valid = {"prediction_id": "00000000-0000-0000-0000-000000000001", "actual_minutes": 12.0}
    off = await client.post("/v1/outcomes", json={"outcomes": [valid]})
    assert off.status_code == 404
    assert off.headers["content-type"] == "application/problem+json"


async def test_outcomes_with_repeated_prediction_ids_are_422_naming_each_repeat(
    client: httpx.AsyncClient,
) -> None:
    a, b = "00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-00000000000b"
    outcomes = [
        {"prediction_id": a, "actual_minutes": 1.0},
        {"prediction_id": b, "actual_minutes": 2.0},
        {"prediction_id": a.upper(), "actual_minutes": 3.0},  # the same UUID
        {"prediction_id": b, "actual_minutes": 4.0},
        {"prediction_id": a, "actual_minutes": 5.0},
    ]
    response = await client.post("/v1/outcomes", json={"outcomes": outcomes})
    # a 422 before the handler: without the prediction log a valid batch would be 404
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert [(e["field"], e["type"]) for e in problem["errors"]] == [
        ("outcomes.2.prediction_id", "duplicate"),
        ("outcomes.3.prediction_id", "duplicate"),
        ("outcomes.4.prediction_id", "duplicate"),
    ]
    assert [e["message"] for e in problem["errors"]] == [
        f"prediction_id {a} is also at outcomes.0: each prediction_id at most once per batch",
        f"prediction_id {b} is also at outcomes.1: each prediction_id at most once per batch",
        f"prediction_id {a} is also at outcomes.0: each prediction_id at most once per batch",
    ]
    assert problem["detail"].startswith("3 invalid field(s): outcomes.2.prediction_id")


async def test_batch_may_hold_the_same_ride_twice(client: httpx.AsyncClient) -> None:
    # rides have no key: past validation, to the (unreachable) model
    response = await client.post("/v1/predict/batch", json={"rides": [GOOD_RIDE, GOOD_RIDE]})
    assert response.status_code == 503


async def test_admin_routing_without_a_table_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/admin/routing")
    assert response.status_code == 404
    assert "ROUTING_TABLE" in response.json()["detail"]
