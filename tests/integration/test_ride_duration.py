"""ride-duration over HTTP against the real stack: predictions from Triton, errors, recovery."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import numpy as np
import onnxruntime as ort
import pytest

from services.ride_duration.predictor import ride_feature_matrix
from services.ride_duration.schemas import Ride
from services.stack.settings import StackSettings
from services.stack.supervisor import Stack

pytestmark = pytest.mark.integration

RIDE: dict[str, Any] = {
    "pickup_datetime": "2024-03-14T08:30:00",
    "pickup_location_id": 161,
    "dropoff_location_id": 236,
    "trip_distance": 2.4,
    "passenger_count": 1,
}


async def until_ok(http: httpx.AsyncClient, *, attempts: int) -> httpx.Response:
    """POST the ride until it succeeds (recovery after an outage), at most ``attempts`` times."""
    for _ in range(attempts):
        response = await http.post("/v1/predict", json=RIDE)
        if response.status_code == 200:
            break
        await asyncio.sleep(0.2)
    return response


def in_process(onnx_path: Path, rides: list[dict[str, Any]]) -> np.ndarray:
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    matrix = ride_feature_matrix([Ride.model_validate(r) for r in rides])
    return np.maximum(session.run(None, {"features": matrix})[0].reshape(-1), 1.0)


async def test_predict_one_ride_comes_from_the_model(
    http: httpx.AsyncClient, onnx_path: Path
) -> None:
    response = await http.post("/v1/predict", json=RIDE, headers={"x-request-id": "it-one"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == {"name": "ride_duration", "version": "1", "variant": "stable"}
    uuid.UUID(body["prediction_id"])
    expected = in_process(onnx_path, [RIDE])[0]
    assert body["duration_minutes"] == pytest.approx(expected, abs=0.01)
    assert response.headers["x-request-id"] == "it-one"


async def test_batch_matches_single_predictions(http: httpx.AsyncClient, onnx_path: Path) -> None:
    rides = [
        {**RIDE, "trip_distance": d, "pickup_location_id": pu, "pickup_datetime": when}
        for d, pu, when in [
            (0.8, 236, "2024-03-16T23:10:00"),
            (17.9, 132, "2024-03-18T17:45:00"),
            (5.5, 79, "2024-03-19T03:00:00"),
        ]
    ] * 334
    response = await http.post("/v1/predict/batch", json={"rides": rides[:1000]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["predictions"]) == 1000
    got = np.array([p["duration_minutes"] for p in body["predictions"]])
    np.testing.assert_allclose(got, in_process(onnx_path, rides[:1000]), atol=0.01)
    assert len({p["prediction_id"] for p in body["predictions"]}) == 1000
    # An airport run at rush hour takes longer than a short night ride.
    assert got[1] > got[0]


async def test_concurrent_requests_each_get_their_own_answer(
    http: httpx.AsyncClient, onnx_path: Path
) -> None:
    rides = [{**RIDE, "trip_distance": 0.5 + i * 0.37} for i in range(64)]
    responses = await asyncio.gather(*(http.post("/v1/predict", json=r) for r in rides))
    got = np.array([r.json()["duration_minutes"] for r in responses])
    np.testing.assert_allclose(got, in_process(onnx_path, rides), atol=0.01)


async def test_bad_input_is_422_problem_and_nothing_is_logged(
    http: httpx.AsyncClient, stack_settings: StackSettings
) -> None:
    cases = [
        ({**RIDE, "pickup_location_id": 300}, "pickup_location_id"),
        ({**RIDE, "trip_distance": 0}, "trip_distance"),
        ({**RIDE, "passenger_count": 0}, "passenger_count"),
        ({**RIDE, "user_id": "rider\u0000one"}, "user_id"),  # Postgres text holds no NUL
    ]
    for ride, field in cases:
        response = await http.post(
            "/v1/predict", json=ride, headers={"x-request-id": "it-bad-input"}
        )
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["errors"][0]["field"] == field
    not_json = await http.post(
        "/v1/predict", content=b"trip please", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 422
    await asyncio.sleep(0.5)  # longer than the prediction log's flush interval
    conn = await asyncpg.connect(stack_settings.database_url)
    try:
        count = await conn.fetchval(
            "select count(*) from ride_duration_predictions where request_id = 'it-bad-input'"
        )
    finally:
        await conn.close()
    assert count == 0


async def test_predictions_are_logged_in_postgres(
    http: httpx.AsyncClient, stack_settings: StackSettings
) -> None:
    request_id = f"it-log-{uuid.uuid4().hex[:8]}"
    response = await http.post("/v1/predict", json=RIDE, headers={"x-request-id": request_id})
    prediction_id = uuid.UUID(response.json()["prediction_id"])
    conn = await asyncpg.connect(stack_settings.database_url)
    try:
        row = None
        for _ in range(50):
            row = await conn.fetchrow(
                "select * from ride_duration_predictions where prediction_id = $1", prediction_id
            )
            if row is not None:
                break
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    assert row is not None
    assert row["request_id"] == request_id
    assert row["model_version"] == "1"
    assert row["pickup_location_id"] == 161
    assert row["duration_minutes"] == pytest.approx(response.json()["duration_minutes"], abs=0.01)


async def test_outcomes_with_a_prediction_id_twice_are_422_and_store_nothing(
    http: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    outcomes = [
        {"prediction_id": str(first), "actual_minutes": 10.0},
        {"prediction_id": str(second), "actual_minutes": 12.0},
        {"prediction_id": str(first), "actual_minutes": 11.0},
    ]
    response = await http.post("/v1/outcomes", json={"outcomes": outcomes})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    (error,) = response.json()["errors"]
    assert error["field"] == "outcomes.2.prediction_id"
    assert error["type"] == "duplicate"
    assert str(first) in error["message"] and "outcomes.0" in error["message"]
    stored = "select prediction_id, actual_minutes from ride_duration_outcomes"
    stored += " where prediction_id = any($1::uuid[])"
    assert await db.fetch(stored, [first, second]) == []  # nothing of the batch was written
    once_each = await http.post("/v1/outcomes", json={"outcomes": outcomes[1:]})
    assert once_each.status_code == 200, once_each.text
    assert once_each.json() == {"accepted": 2}
    rows = await db.fetch(stored, [first, second])
    assert {r["prediction_id"]: r["actual_minutes"] for r in rows} == {
        first: pytest.approx(11.0),
        second: pytest.approx(12.0),
    }


async def test_batch_with_the_same_ride_twice_predicts_and_logs_each(
    http: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    request_id = f"it-same-ride-{uuid.uuid4().hex[:8]}"
    ride = {**RIDE, "user_id": "same-rider"}
    response = await http.post(
        "/v1/predict/batch", json={"rides": [ride, ride]}, headers={"x-request-id": request_id}
    )
    assert response.status_code == 200, response.text
    first, second = response.json()["predictions"]
    assert first["prediction_id"] != second["prediction_id"]
    assert first["duration_minutes"] == second["duration_minutes"]
    logged: set[uuid.UUID] = set()
    for _ in range(50):
        rows = await db.fetch(
            "select prediction_id from ride_duration_predictions where request_id = $1",
            request_id,
        )
        logged = {r["prediction_id"] for r in rows}
        if len(logged) == 2:
            break
        await asyncio.sleep(0.1)
    assert logged == {uuid.UUID(first["prediction_id"]), uuid.UUID(second["prediction_id"])}


async def test_models_lists_the_version_with_its_card(http: httpx.AsyncClient) -> None:
    response = await http.get("/v1/models")
    assert response.status_code == 200
    # Triton also lists a version other tests loaded and removed again, as UNAVAILABLE
    (model,) = [m for m in response.json()["models"] if m["state"] == "READY"]
    assert model["name"] == "ride_duration"
    assert model["version"] == "1"
    metrics = model["card"]["metrics"]
    assert metrics["rmse"] < metrics["baseline_rmse"]
    assert metrics["rmse_improvement_vs_baseline"] >= 0.25


async def test_health_readiness_and_metrics(http: httpx.AsyncClient) -> None:
    assert (await http.get("/healthz")).status_code == 200
    ready = await http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"triton": "ok", "postgres": "ok"}}
    await http.post("/v1/predict", json=RIDE)
    metrics = (await http.get("/metrics")).text
    assert (
        'modelfleet_triton_request_duration_seconds_count{model="ride_duration",outcome="ok"}'
        in metrics
    )
    assert 'http_requests_total{handler="/v1/predict",method="POST",status="200"}' in metrics


async def test_triton_down_gives_503_then_recovers(http: httpx.AsyncClient, stack: Stack) -> None:
    triton = stack.component("triton")
    triton.stop()
    try:
        response = await http.post("/v1/predict", json=RIDE)
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["retry-after"] == "1"
        assert response.json()["type"].endswith("/triton-unavailable")
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        assert (await http.get("/healthz")).status_code == 200  # liveness is not readiness
        await asyncio.sleep(8)  # long enough for gRPC's default reconnect backoff to grow
    finally:
        began = time.monotonic()
        triton.start()
        triton.wait_ready(began + triton.startup_timeout)
    back = time.monotonic()
    assert (await until_ok(http, attempts=100)).status_code == 200
    assert time.monotonic() - back < 2.0  # the channel's reconnect backoff is capped at 1 s
    # Readiness asks over gRPC while inference may go over HTTP (TRITON_INFER_TRANSPORT): the
    # gRPC channel reconnects on its next probe, its backoff capped at 1 s as well.
    for _ in range(25):
        ready = await http.get("/readyz")
        if ready.status_code == 200:
            break
        await asyncio.sleep(0.2)
    assert ready.status_code == 200
    assert time.monotonic() - back < 7.0


async def test_stalled_triton_gives_504_at_the_deadline(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    pid = stack.component("triton").pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        began = time.monotonic()
        response = await http.post("/v1/predict", json=RIDE)
        waited = time.monotonic() - began
    finally:
        os.kill(pid, signal.SIGCONT)
    assert response.status_code == 504
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/dependency-timeout")
    assert 0.9 <= waited < 3.0  # RIDE_DURATION_TRITON_TIMEOUT_S defaults to 1 s
    assert (await until_ok(http, attempts=50)).status_code == 200
