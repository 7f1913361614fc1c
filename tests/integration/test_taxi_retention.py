"""Retention on the real stack: an expired Idempotency-Key is deleted and the key makes a new
ride; a published outbox event past its retention is deleted; fresh keys and recent events are
kept; rides themselves are never touched. (Unsent events are never candidates: the delete only
selects rows with ``sent_at``; the relay would publish a row the test made unsent at once.)"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from services.backend.retention import prune_once
from services.backend.schemas import EXAMPLE_RIDE
from services.backend.settings import BackendSettings
from services.stack.settings import StackSettings

pytestmark = pytest.mark.integration

RIDE: dict[str, Any] = {**EXAMPLE_RIDE, "user_id": "it-retention"}


async def post_ride(backend: httpx.AsyncClient, key: str) -> httpx.Response:
    response = await backend.post("/v1/rides", json=RIDE, headers={"Idempotency-Key": key})
    assert response.status_code == 201, response.text
    return response


async def wait_sent(db: asyncpg.Pool, ride_id: str) -> None:
    for _ in range(100):
        unsent = await db.fetchval(
            "select count(*) from ride_outbox where ride_id = $1 and sent_at is null",
            uuid.UUID(ride_id),
        )
        if unsent == 0:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"ride {ride_id}'s event was never published")


async def test_expired_keys_and_old_events_are_pruned_and_nothing_else(
    backend: httpx.AsyncClient, db: asyncpg.Pool, stack_settings: StackSettings
) -> None:
    settings = BackendSettings(
        database_url=stack_settings.database_url,
        idempotency_key_ttl_s=3600,
        outbox_retention_s=86400,
        prune_batch_size=2,  # several batches per table
    )
    tag = uuid.uuid4().hex[:8]
    old_keys = [f"ret-old-{tag}-{i}" for i in range(5)]
    fresh_key = f"ret-fresh-{tag}"
    old_rides = [(await post_ride(backend, key)).json()["ride_id"] for key in old_keys]
    fresh_ride = (await post_ride(backend, fresh_key)).json()["ride_id"]
    for ride_id in [*old_rides, fresh_ride]:
        await wait_sent(db, ride_id)
    old_ids = [uuid.UUID(r) for r in old_rides]
    await db.execute(
        "update ride_idempotency set created_at = now() - interval '2 hours' "
        "where idempotency_key = any($1::text[])",
        old_keys,
    )
    await db.execute(
        "update ride_outbox set sent_at = now() - interval '2 days' where ride_id = any($1)",
        old_ids[:3],
    )
    await prune_once(db, settings)
    keys = await db.fetch(
        "select idempotency_key from ride_idempotency where idempotency_key like $1",
        f"ret-%{tag}%",
    )
    assert {r["idempotency_key"] for r in keys} == {fresh_key}
    events = await db.fetch(
        "select ride_id from ride_outbox where ride_id = any($1)", [*old_ids, uuid.UUID(fresh_ride)]
    )
    assert {r["ride_id"] for r in events} == {*old_ids[3:], uuid.UUID(fresh_ride)}
    rides = await db.fetchval("select count(*) from rides where ride_id = any($1)", old_ids)
    assert rides == len(old_ids)

    # the expired key is free again: a new ride, not a replay; the fresh key still replays
    again = await post_ride(backend, old_keys[0])
    assert again.json()["ride_id"] != old_rides[0]
    assert "idempotent-replayed" not in again.headers
    replay = await post_ride(backend, fresh_key)
    assert replay.json()["ride_id"] == fresh_ride
    assert replay.headers.get("idempotent-replayed") == "true"
