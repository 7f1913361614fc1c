"""Bad input to every backend endpoint: 4xx problem+json, and nothing written anywhere."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

from services.stack.settings import StackSettings
from services.stack.supervisor import Stack

pytestmark = pytest.mark.integration

RIDE: dict[str, Any] = {
    "user_id": "it-bad-input",
    "pickup_datetime": "2024-03-14T08:30:00",
    "pickup_location_id": 161,
    "dropoff_location_id": 236,
    "trip_distance": 2.4,
}
TELEMETRY = {"elapsed_minutes": 3.0, "distance_covered": 0.5, "speed_mph": 11.0}
# What a request to the backend writes. ride_results is left out: the workers keep writing the
# results of rides earlier tests made, so its count moves on its own.
TABLES = ("rides", "ride_outbox", "ride_telemetry", "ride_idempotency")


@pytest_asyncio.fixture(scope="module")
async def db(stack: Stack, stack_settings: StackSettings) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(stack_settings.database_url)
    yield conn
    await conn.close()


async def counts(db: asyncpg.Connection) -> dict[str, int]:
    return {t: int(await db.fetchval(f"select count(*) from {t}")) for t in TABLES}


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["type"].startswith("https://")
    return body


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"pickup_location_id": 0}, "pickup_location_id"),
        ({"dropoff_location_id": 266}, "dropoff_location_id"),
        ({"trip_distance": -1}, "trip_distance"),
        ({"trip_distance": "far"}, "trip_distance"),
        ({"passenger_count": 10}, "passenger_count"),
        ({"payment_type": 9}, "payment_type"),
        ({"user_id": ""}, "user_id"),
        ({"user_id": "a b"}, "user_id"),
        ({"pickup_datetime": "yesterday"}, "pickup_datetime"),
        ({"surge": 2.0}, "surge"),
    ],
)
async def test_bad_ride_is_422_and_writes_nothing(
    backend: httpx.AsyncClient, db: asyncpg.Connection, change: dict[str, Any], field: str
) -> None:
    before = await counts(db)
    body = assert_problem(await backend.post("/v1/rides", json={**RIDE, **change}), 422)
    assert field in {e["field"] for e in body["errors"]}
    assert await counts(db) == before


@pytest.mark.parametrize(
    "content",
    [b"", b"{", b"[]", b'{"user_id": "x"}', b"null"],
    ids=["empty", "broken", "list", "missing", "null"],
)
async def test_unparsable_ride_is_422(
    backend: httpx.AsyncClient, db: asyncpg.Connection, content: bytes
) -> None:
    before = await counts(db)
    response = await backend.post(
        "/v1/rides", content=content, headers={"content-type": "application/json"}
    )
    assert_problem(response, 422)
    assert await counts(db) == before


async def test_unknown_and_malformed_ride_ids(
    backend: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    before = await counts(db)
    unknown = uuid.uuid4()
    for path in (f"/v1/rides/{unknown}", f"/v1/rides/{unknown}/events"):
        assert_problem(await backend.get(path), 404)
        assert_problem(await backend.get(path.replace(str(unknown), "not-a-uuid")), 422)
    assert_problem(await backend.post(f"/v1/rides/{unknown}/telemetry", json=TELEMETRY), 404)
    assert_problem(await backend.post("/v1/rides/nope/telemetry", json=TELEMETRY), 422)
    assert_problem(await backend.delete(f"/v1/rides/{unknown}"), 405)
    assert await counts(db) == before


@pytest.mark.parametrize(
    "change",
    [
        {"elapsed_minutes": -1},
        {"distance_covered": "x"},
        {"speed_mph": 500},
        {"speed_mph": None},
        {"extra": 1},
    ],
)
async def test_bad_telemetry_is_422_and_writes_nothing(
    backend: httpx.AsyncClient, db: asyncpg.Connection, change: dict[str, Any]
) -> None:
    ride_id = (await backend.post("/v1/rides", json=RIDE)).json()["ride_id"]
    before = await counts(db)
    response = await backend.post(f"/v1/rides/{ride_id}/telemetry", json={**TELEMETRY, **change})
    assert_problem(response, 422)
    after = await counts(db)
    assert after["ride_telemetry"] == before["ride_telemetry"]
    assert after["ride_outbox"] == before["ride_outbox"]


@pytest.mark.parametrize(
    "key",
    ["k" * 256, "with space", "tab\tkey", "caf\u00e9"],
    ids=["too-long", "space", "control", "non-ascii"],
)
async def test_bad_idempotency_key_is_422_and_writes_nothing(
    backend: httpx.AsyncClient, db: asyncpg.Connection, key: str
) -> None:
    before = await counts(db)
    response = await backend.post("/v1/rides", json=RIDE, headers={"Idempotency-Key": key.encode()})
    body = assert_problem(response, 422)
    assert body["errors"][0]["field"] == "Idempotency-Key"
    assert body["errors"][0]["in"] == "header"
    assert await counts(db) == before


async def test_bad_ride_with_a_key_is_422_and_does_not_claim_the_key(
    backend: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    key = f"it-bad-{uuid.uuid4()}"
    before = await counts(db)
    bad = await backend.post(
        "/v1/rides", json={**RIDE, "trip_distance": -1}, headers={"Idempotency-Key": key}
    )
    assert_problem(bad, 422)
    assert await counts(db) == before
    good = await backend.post("/v1/rides", json=RIDE, headers={"Idempotency-Key": key})
    assert good.status_code == 201 and "idempotent-replayed" not in good.headers


async def test_malformed_last_event_id_is_422(
    backend: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    ride_id = (await backend.post("/v1/rides", json=RIDE)).json()["ride_id"]
    before = await counts(db)
    for last in ("tip", "tip:1:x", "0,0", "x" * 2000):
        response = await backend.get(f"/v1/rides/{ride_id}/events", headers={"Last-Event-ID": last})
        body = assert_problem(response, 422)
        assert body["errors"][0]["field"] == "Last-Event-ID"
    assert await counts(db) == before
