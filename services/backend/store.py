"""SQL of the backend: rides, outbox, telemetry and results (asyncpg, one transaction per write).

Every function takes the pool, runs inside :func:`services.common.db.database_errors` (so an
outage is a 503/504 of the error tree, never a 500) and gives each query a deadline. The outbox
events are :class:`~services.domain.taxi.events.RideEvent` instances, serialized by the model
the workers parse them with (:func:`ride_event`), so writer and reader cannot drift.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import asyncpg
import orjson

from services.backend.chain import RideAnswer
from services.backend.schemas import DownstreamData, RideRequest, Telemetry
from services.common.db import database_errors
from services.common.errors import DatabaseUnavailable, NotFound
from services.common.jetstream import RIDE_REQUESTED, RIDE_TELEMETRY
from services.domain.taxi.events import EventRide, EventTelemetry, RideEvent
from services.domain.taxi.times import new_york_local

# The ride and its outbox event in ONE statement (atomic on its own: one round trip without a
# key, where BEGIN / two INSERTs / COMMIT took four).
_INSERT_RIDE_AND_EVENT = """
with ride as (
    insert into rides (ride_id, request_id, user_id, pickup_datetime, pickup_location_id,
        dropoff_location_id, trip_distance, passenger_count, payment_type,
        initial_duration_minutes, initial_model_name, initial_model_version, initial_reason,
        downstream, initial_uses_sensor)
    values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::jsonb, $18)
    returning ride_id
)
insert into ride_outbox (event_id, ride_id, subject, payload)
select $15::uuid, ride_id, $16::text, $17::jsonb from ride
"""
_CLAIM_KEY = """
insert into ride_idempotency (idempotency_key, request_hash, ride_id) values ($1, $2, $3)
on conflict (idempotency_key) do nothing
returning ride_id
"""
_SELECT_KEY = "select ride_id, request_hash from ride_idempotency where idempotency_key = $1"
_INSERT_OUTBOX = """
insert into ride_outbox (event_id, ride_id, subject, payload) values ($1, $2, $3, $4::jsonb)
"""
_SELECT_RIDE = "select * from rides where ride_id = $1"
_SELECT_RESULTS = """
select kind, model_name, model_version, value, source_seq, updated_at
from ride_results where ride_id = $1 order by created_at, kind, model_version
"""


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """The caller's ``Idempotency-Key`` and the hash of the request it came with."""

    key: str
    request_hash: str


@dataclass(frozen=True, slots=True)
class StoredKey:
    """The ride a key already names, and the hash of the request that made it."""

    ride_id: uuid.UUID
    request_hash: str


def ride_event(
    kind: Literal["ride.requested", "ride.telemetry"],
    *,
    event_id: uuid.UUID,
    ride_id: uuid.UUID,
    ride: EventRide,
    initial_duration_minutes: float | None,
    telemetry: Telemetry | None = None,
    chain: RideAnswer | None = None,
) -> str:
    """The outbox JSON of one ride event, occurring now (``seq`` is the relay's to add)."""
    event = RideEvent(
        type=kind,
        event_id=event_id,
        ride_id=ride_id,
        occurred_at=datetime.now(UTC),
        ride=ride,
        initial_duration_minutes=initial_duration_minutes,
        latitude=None if chain is None else _number(chain.location, "latitude"),
        longitude=None if chain is None else _number(chain.location, "longitude"),
        traffic_speed_mph=None if chain is None else _number(chain.sensor, "speed_mph"),
        telemetry=None
        if telemetry is None
        else EventTelemetry.model_validate(telemetry.model_dump()),
    )
    return event.model_dump_json(exclude={"seq"})


def _number(data: DownstreamData, key: str) -> float | None:
    """A number a downstream answered (None: absent or not a number)."""
    value = None if data.data is None else data.data.get(key)
    return float(value) if isinstance(value, int | float) else None


def _event_ride(fields: asyncpg.Record | dict[str, Any]) -> EventRide:
    """The event's ride from the ride's row (or the same columns of a new ride)."""
    return EventRide.model_validate(dict(fields))


async def insert_ride(
    pool: asyncpg.Pool,
    *,
    ride_id: uuid.UUID,
    ride: RideRequest,
    request_id: str | None,
    answer: RideAnswer,
    idempotency: IdempotencyKey | None,
    timeout_s: float,
) -> StoredKey | None:
    """Store the ride and its ``rides.requested`` outbox event in ONE transaction (one statement).

    With an idempotency key, the key is claimed first in the same transaction: when another
    request already holds it (committed, or committing concurrently: the insert waits for it),
    nothing is written and the ride it names is returned instead. None: this ride was stored.
    """
    pickup = new_york_local(ride.pickup_datetime)
    initial = answer.initial
    downstream = {"location": answer.location, "sensor": answer.sensor}
    model = initial.model
    event_id = uuid.uuid4()
    payload = ride_event(
        "ride.requested",
        event_id=event_id,
        ride_id=ride_id,
        ride=_event_ride({**ride.model_dump(), "pickup_datetime": pickup}),
        initial_duration_minutes=initial.duration_minutes,
        chain=answer,
    )
    values = (
        ride_id,
        request_id,
        ride.user_id,
        pickup,
        ride.pickup_location_id,
        ride.dropoff_location_id,
        ride.trip_distance,
        ride.passenger_count,
        ride.payment_type,
        initial.duration_minutes,
        None if model is None else model.name,
        None if model is None else model.version,
        initial.reason,
        orjson.dumps(
            {name: data.model_dump(mode="json") for name, data in downstream.items()}
        ).decode(),
        event_id,
        RIDE_REQUESTED,
        payload,
        initial.uses_sensor,
    )
    async with database_errors("insert_ride"):
        if idempotency is None:
            await pool.execute(_INSERT_RIDE_AND_EVENT, *values, timeout=timeout_s)
            return None
        async with pool.acquire(timeout=timeout_s) as conn, conn.transaction():
            claimed = await conn.fetchval(
                _CLAIM_KEY,
                idempotency.key,
                idempotency.request_hash,
                ride_id,
                timeout=timeout_s,
            )
            if claimed is None:
                row = await conn.fetchrow(_SELECT_KEY, idempotency.key, timeout=timeout_s)
                if row is not None:  # (None only if that row was deleted meanwhile)
                    return StoredKey(row["ride_id"], row["request_hash"])
                raise DatabaseUnavailable("idempotency key vanished while claimed; retry")
            await conn.execute(_INSERT_RIDE_AND_EVENT, *values, timeout=timeout_s)
    return None


async def find_key(pool: asyncpg.Pool, key: str, *, timeout_s: float) -> StoredKey | None:
    """The ride an idempotency key already names, or None."""
    async with database_errors("find_idempotency_key"):
        row = await pool.fetchrow(_SELECT_KEY, key, timeout=timeout_s)
    return None if row is None else StoredKey(row["ride_id"], row["request_hash"])


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
            payload = ride_event(
                "ride.telemetry",
                event_id=event_id,
                ride_id=ride_id,
                ride=_event_ride(row),
                initial_duration_minutes=row["initial_duration_minutes"],
                telemetry=telemetry,
            )
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
                payload,
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
