"""SQL of the backend: rides, outbox, telemetry and results (asyncpg, one transaction per write).

Every function takes the pool, runs inside :func:`services.common.db.database_errors` (so an
outage is a 503/504 of the error tree, never a 500) and gives each query a deadline.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from services.backend.schemas import RideRequest, Telemetry, new_york_local
from services.common.db import database_errors
from services.common.errors import NotFound
from services.common.jetstream import RIDE_REQUESTED, RIDE_TELEMETRY

_INSERT_RIDE = """
insert into rides (ride_id, request_id, user_id, pickup_datetime, pickup_location_id,
    dropoff_location_id, trip_distance, passenger_count, payment_type,
    initial_duration_minutes, initial_model_name, initial_model_version, initial_reason)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
returning created_at
"""
_INSERT_OUTBOX = """
insert into ride_outbox (event_id, ride_id, subject, payload) values ($1, $2, $3, $4::jsonb)
"""
_SELECT_RIDE = "select * from rides where ride_id = $1"
_SELECT_RESULTS = """
select kind, model_name, model_version, value, updated_at
from ride_results where ride_id = $1 order by created_at, kind, model_version
"""


def _event_ride(row: asyncpg.Record | dict[str, Any]) -> dict[str, Any]:
    return {
        "pickup_datetime": row["pickup_datetime"].isoformat(),
        "pickup_location_id": row["pickup_location_id"],
        "dropoff_location_id": row["dropoff_location_id"],
        "trip_distance": float(row["trip_distance"]),
        "passenger_count": row["passenger_count"],
        "payment_type": row["payment_type"],
    }


async def insert_ride(
    pool: asyncpg.Pool,
    *,
    ride_id: uuid.UUID,
    ride: RideRequest,
    request_id: str | None,
    initial: dict[str, Any],
    timeout_s: float,
) -> datetime:
    """Store the ride and its ``rides.requested`` outbox event in ONE transaction."""
    pickup = new_york_local(ride.pickup_datetime)
    model = initial.get("model") or {}
    event_id = uuid.uuid4()
    fields = {
        "pickup_datetime": pickup,
        "pickup_location_id": ride.pickup_location_id,
        "dropoff_location_id": ride.dropoff_location_id,
        "trip_distance": ride.trip_distance,
        "passenger_count": ride.passenger_count,
        "payment_type": ride.payment_type,
    }
    payload = {
        "type": "ride.requested",
        "event_id": str(event_id),
        "ride_id": str(ride_id),
        "occurred_at": datetime.now(UTC).isoformat(),
        "ride": _event_ride(fields),
        "initial_duration_minutes": initial.get("duration_minutes"),
    }
    async with database_errors("insert_ride"):
        async with pool.acquire(timeout=timeout_s) as conn, conn.transaction():
            created_at: datetime = await conn.fetchval(
                _INSERT_RIDE,
                ride_id,
                request_id,
                ride.user_id,
                pickup,
                ride.pickup_location_id,
                ride.dropoff_location_id,
                ride.trip_distance,
                ride.passenger_count,
                ride.payment_type,
                initial.get("duration_minutes"),
                model.get("name"),
                model.get("version"),
                initial.get("reason"),
                timeout=timeout_s,
            )
            await conn.execute(
                _INSERT_OUTBOX,
                event_id,
                ride_id,
                RIDE_REQUESTED,
                orjson.dumps(payload).decode(),
                timeout=timeout_s,
            )
    return created_at


async def insert_telemetry(
    pool: asyncpg.Pool, *, ride_id: uuid.UUID, telemetry: Telemetry, timeout_s: float
) -> uuid.UUID:
    """Store a telemetry update and its ``rides.telemetry`` event in ONE transaction."""
    event_id = uuid.uuid4()
    async with database_errors("insert_telemetry"):
        async with pool.acquire(timeout=timeout_s) as conn, conn.transaction():
            row = await conn.fetchrow(_SELECT_RIDE, ride_id, timeout=timeout_s)
            if row is None:
                raise NotFound(f"ride {ride_id} does not exist")
            payload = {
                "type": "ride.telemetry",
                "event_id": str(event_id),
                "ride_id": str(ride_id),
                "occurred_at": datetime.now(UTC).isoformat(),
                "ride": _event_ride(row),
                "initial_duration_minutes": row["initial_duration_minutes"],
                "telemetry": telemetry.model_dump(),
            }
            await conn.execute(
                "insert into ride_telemetry (event_id, ride_id, elapsed_minutes, "
                "distance_covered, speed_mph) values ($1, $2, $3, $4, $5)",
                event_id,
                ride_id,
                telemetry.elapsed_minutes,
                telemetry.distance_covered,
                telemetry.speed_mph,
                timeout=timeout_s,
            )
            await conn.execute(
                _INSERT_OUTBOX,
                event_id,
                ride_id,
                RIDE_TELEMETRY,
                orjson.dumps(payload).decode(),
                timeout=timeout_s,
            )
    return event_id


async def fetch_ride(
    pool: asyncpg.Pool, ride_id: uuid.UUID, *, timeout_s: float
) -> asyncpg.Record | None:
    """The ride's row, or None."""
    async with database_errors("fetch_ride"):
        row: asyncpg.Record | None = await pool.fetchrow(_SELECT_RIDE, ride_id, timeout=timeout_s)
    return row


async def fetch_results(
    pool: asyncpg.Pool, ride_id: uuid.UUID, *, timeout_s: float
) -> list[asyncpg.Record]:
    """The worker results of a ride so far (one row per kind and model version)."""
    async with database_errors("fetch_results"):
        rows: list[asyncpg.Record] = await pool.fetch(_SELECT_RESULTS, ride_id, timeout=timeout_s)
    return rows
