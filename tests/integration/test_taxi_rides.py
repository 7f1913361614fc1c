"""The taxi app on the real stack: a ride gets its initial duration at once, then tip, cost and
a corrected duration from the workers (GET and Server-Sent Events); telemetry corrects it."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import orjson
import pytest

pytestmark = pytest.mark.integration

RIDE: dict[str, Any] = {
    "user_id": "it-user-1",
    "pickup_datetime": "2024-03-14T08:30:00",
    "pickup_location_id": 161,
    "dropoff_location_id": 236,
    "trip_distance": 2.4,
    "passenger_count": 1,
    "payment_type": 1,
}
WORKER_KINDS = {"tip", "cost", "duration"}
RESULTS_WITHIN_S = 5.0


async def wait_for_results(
    backend: httpx.AsyncClient, ride_id: str, kinds: set[str], *, timeout_s: float
) -> dict[str, Any]:
    """GET the ride until it has a result of every kind in ``kinds`` (bounded)."""
    deadline = time.monotonic() + timeout_s
    while True:
        body: dict[str, Any] = (await backend.get(f"/v1/rides/{ride_id}")).json()
        if kinds <= {r["kind"] for r in body["results"]}:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"results after {timeout_s} s: {body['results']}")
        await asyncio.sleep(0.05)


async def read_sse(
    backend: httpx.AsyncClient, path: str, *, until: set[str], timeout_s: float
) -> list[tuple[str, dict[str, Any]]]:
    """Events of an SSE stream until results of every kind in ``until`` arrived (bounded)."""
    events: list[tuple[str, dict[str, Any]]] = []
    async with asyncio.timeout(timeout_s):
        async with backend.stream("GET", path) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            name = ""
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    name = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    events.append((name, orjson.loads(line.removeprefix("data: "))))
                    kinds = {data["kind"] for kind, data in events if kind == "result"}
                    if until <= kinds:
                        return events
    return events


async def test_ride_gets_initial_duration_then_worker_results(backend: httpx.AsyncClient) -> None:
    started = time.monotonic()
    response = await backend.post("/v1/rides", json=RIDE, headers={"x-request-id": "it-ride-1"})
    assert response.status_code == 201, response.text
    created = response.json()
    ride_id = created["ride_id"]
    uuid.UUID(ride_id)
    assert response.headers["location"] == f"/v1/rides/{ride_id}"
    initial = created["initial_duration"]
    assert initial["reason"] is None and initial["duration_minutes"] > 1.0
    assert initial["model"] == {"name": "ride_duration", "version": "1"}

    body = await wait_for_results(backend, ride_id, WORKER_KINDS, timeout_s=RESULTS_WITHIN_S)
    elapsed = time.monotonic() - started
    results = {r["kind"]: r for r in body["results"]}
    assert len(body["results"]) == 3, body["results"]
    assert results["tip"]["model"] == {"name": "tip_amount", "version": "1"}
    assert results["cost"]["model"] == {"name": "total_amount", "version": "1"}
    assert results["duration"]["model"] == {"name": "ride_duration", "version": "1"}
    assert results["tip"]["unit"] == "USD" and results["duration"]["unit"] == "minutes"
    assert 0.0 <= results["tip"]["value"] < results["cost"]["value"] < 100.0
    # Without telemetry the corrected duration is the model's own (same features, same model).
    assert results["duration"]["value"] == pytest.approx(initial["duration_minutes"], abs=0.01)
    assert body["initial_duration"] == initial
    assert body["ride"]["user_id"] == "it-user-1"
    assert elapsed < RESULTS_WITHIN_S


async def test_sse_streams_initial_duration_and_each_result(backend: httpx.AsyncClient) -> None:
    created = (await backend.post("/v1/rides", json={**RIDE, "trip_distance": 7.5})).json()
    ride_id = created["ride_id"]
    events = await read_sse(
        backend, f"/v1/rides/{ride_id}/events", until=WORKER_KINDS, timeout_s=RESULTS_WITHIN_S
    )
    assert events[0] == ("initial_duration", created["initial_duration"])
    kinds = [data["kind"] for name, data in events if name == "result"]
    assert sorted(kinds) == sorted(WORKER_KINDS)  # each exactly once


async def test_telemetry_corrects_the_duration(backend: httpx.AsyncClient) -> None:
    created = (await backend.post("/v1/rides", json={**RIDE, "trip_distance": 6.0})).json()
    ride_id = created["ride_id"]
    first = await wait_for_results(backend, ride_id, {"duration"}, timeout_s=RESULTS_WITHIN_S)
    before = next(r for r in first["results"] if r["kind"] == "duration")
    # Stuck in traffic: 30 minutes in, one mile done, crawling at 2 mph.
    response = await backend.post(
        f"/v1/rides/{ride_id}/telemetry",
        json={"elapsed_minutes": 30.0, "distance_covered": 1.0, "speed_mph": 2.0},
    )
    assert response.status_code == 202, response.text
    uuid.UUID(response.json()["event_id"])
    deadline = time.monotonic() + RESULTS_WITHIN_S
    while True:
        body = (await backend.get(f"/v1/rides/{ride_id}")).json()
        duration = [r for r in body["results"] if r["kind"] == "duration"]
        assert len(duration) == 1  # one row per (ride, kind, model version), updated in place
        if duration[0]["value"] != before["value"]:
            break
        assert time.monotonic() < deadline, "the corrected duration never changed"
        await asyncio.sleep(0.05)
    assert duration[0]["value"] > 30.0 + before["value"] / 2
