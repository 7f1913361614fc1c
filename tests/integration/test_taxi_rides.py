"""The taxi app on the real stack: a ride gets its initial duration at once, then tip, cost and
a corrected duration from the workers (GET and Server-Sent Events); telemetry corrects it."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import pytest_asyncio

from services.backend.schemas import EXAMPLE_RIDE
from services.stack.settings import StackSettings
from services.stack.supervisor import Stack

pytestmark = pytest.mark.integration

RIDE: dict[str, Any] = {**EXAMPLE_RIDE, "user_id": "it-user-1"}
WORKER_KINDS = {"tip", "cost", "duration"}
RESULTS_WITHIN_S = 5.0


@pytest_asyncio.fixture(scope="module")
async def db(stack: Stack, stack_settings: StackSettings) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(stack_settings.database_url)
    yield conn
    await conn.close()


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


async def sse_events(
    backend: httpx.AsyncClient,
    path: str,
    *,
    count: int,
    timeout_s: float,
    headers: dict[str, str] | None = None,
) -> list[tuple[str, str, dict[str, Any]]]:
    """The first ``count`` events of an SSE stream as (id, event, data); fewer on timeout."""
    events: list[tuple[str, str, dict[str, Any]]] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            async with backend.stream("GET", path, headers=headers) as response:
                assert response.status_code == 200, await response.aread()
                event_id = name = ""
                async for line in response.aiter_lines():
                    if line.startswith("id: "):
                        event_id = line.removeprefix("id: ")
                    elif line.startswith("event: "):
                        name = line.removeprefix("event: ")
                    elif line.startswith("data: "):
                        events.append((event_id, name, orjson.loads(line.removeprefix("data: "))))
                        if len(events) == count:
                            break
    return events


async def test_sse_resumes_after_last_event_id_then_streams_live(
    backend: httpx.AsyncClient,
) -> None:
    created = (await backend.post("/v1/rides", json={**RIDE, "trip_distance": 4.0})).json()
    ride_id = created["ride_id"]
    path = f"/v1/rides/{ride_id}/events"
    await wait_for_results(backend, ride_id, WORKER_KINDS, timeout_s=RESULTS_WITHIN_S)
    first = await sse_events(backend, path, count=4, timeout_s=RESULTS_WITHIN_S)
    assert [name for _, name, _ in first] == ["initial_duration", "result", "result", "result"]
    ids = [event_id for event_id, _, _ in first]
    assert ids[0] == "0" and len(set(ids)) == 4  # every event has its own id

    # Resume after the second result: only the third comes again, no initial duration.
    resumed = await sse_events(
        backend, path, count=2, timeout_s=1.5, headers={"Last-Event-ID": ids[2]}
    )
    assert [(i, n, d) for i, n, d in resumed] == [first[3]]

    # Resume after the last one: nothing is replayed; a new duration from telemetry streams live.
    async def telemetry_soon() -> None:
        await asyncio.sleep(0.5)
        response = await backend.post(
            f"/v1/rides/{ride_id}/telemetry",
            json={"elapsed_minutes": 20.0, "distance_covered": 0.5, "speed_mph": 3.0},
        )
        assert response.status_code == 202

    sender = asyncio.create_task(telemetry_soon())
    live = await sse_events(
        backend, path, count=1, timeout_s=RESULTS_WITHIN_S, headers={"Last-Event-ID": ids[3]}
    )
    await sender
    assert len(live) == 1
    event_id, name, data = live[0]
    assert name == "result" and data["kind"] == "duration" and data["value"] > 20.0
    assert event_id not in ids


async def test_idempotency_key_replays_the_ride_and_refuses_another_body(
    backend: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    key = f"it-key-{uuid.uuid4()}"
    ride = {**RIDE, "user_id": f"it-idem-{uuid.uuid4().hex[:8]}"}
    first = await backend.post("/v1/rides", json=ride, headers={"Idempotency-Key": key})
    again = await backend.post("/v1/rides", json=ride, headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 201, again.text
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()  # same ride id, same initial duration
    assert again.headers["location"] == first.headers["location"]

    other = await backend.post(
        "/v1/rides", json={**ride, "trip_distance": 9.9}, headers={"Idempotency-Key": key}
    )
    assert other.status_code == 409, other.text
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["ride_id"] == first.json()["ride_id"]
    ride_id = uuid.UUID(first.json()["ride_id"])
    assert await db.fetchval("select count(*) from rides where user_id = $1", ride["user_id"]) == 1
    assert await db.fetchval("select count(*) from ride_outbox where ride_id = $1", ride_id) == 1


async def test_concurrent_retries_with_one_key_make_one_ride_and_one_event(
    backend: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    key = f"it-key-{uuid.uuid4()}"
    ride = {**RIDE, "user_id": f"it-race-{uuid.uuid4().hex[:8]}"}
    responses = await asyncio.gather(
        *(backend.post("/v1/rides", json=ride, headers={"Idempotency-Key": key}) for _ in range(12))
    )
    assert [r.status_code for r in responses] == [201] * 12
    assert len({r.json()["ride_id"] for r in responses}) == 1
    assert sum("idempotent-replayed" not in r.headers for r in responses) == 1
    ride_id = uuid.UUID(responses[0].json()["ride_id"])
    assert await db.fetchval("select count(*) from rides where user_id = $1", ride["user_id"]) == 1
    assert await db.fetchval("select count(*) from ride_outbox where ride_id = $1", ride_id) == 1
    body = await wait_for_results(backend, str(ride_id), WORKER_KINDS, timeout_s=RESULTS_WITHIN_S)
    assert len(body["results"]) == 3


async def test_outbox_backlog_gauges_are_exported(backend: httpx.AsyncClient) -> None:
    text = (await backend.get("/metrics")).text
    assert "modelfleet_backend_outbox_unsent_events " in text
    assert "modelfleet_backend_outbox_oldest_unsent_age_seconds " in text
