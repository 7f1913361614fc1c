"""What each worker computes from a ride event, and its idempotent write.

- ``tip``: Triton ``tip_amount`` on the ride's features -> result kind ``tip`` (USD, >= 0).
- ``cost``: Triton ``total_amount`` -> kind ``cost`` (USD, >= 0).
- ``dynamic-duration``: Triton ``ride_duration`` -> kind ``duration`` (minutes). On
  ``rides.requested`` it is the model's duration of the whole trip; on ``rides.telemetry`` it is
  elapsed minutes + the model's minutes for the remaining distance (pickup time moved on by the
  elapsed time), averaged with remaining distance / current speed when the car moves (> 1 mph).

The write (:func:`write_result`) is keyed by (ride, kind, model version): a higher outbox ``seq``
replaces the value, a redelivered or older event changes nothing. Features come from
:mod:`services.domain.taxi.features`, the module the models were trained with.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Final

import asyncpg
import numpy as np
import numpy.typing as npt

from services.common.db import database_errors
from services.common.jetstream import RIDE_REQUESTED
from services.common.triton import TritonClient
from services.domain.taxi import features
from services.domain.taxi.events import RideEvent
from services.workers.consumer import Handler
from services.workers.settings import WorkerSettings

FloatMatrix = npt.NDArray[np.float32]
KINDS: Final = ("tip", "cost", "dynamic-duration")
MIN_DURATION_MINUTES: Final = 1.0
MOVING_MPH: Final = 1.0
ARRIVED_MILES: Final = 0.05

_UPSERT = """
insert into ride_results (ride_id, kind, model_name, model_version, value, source_seq, event_id)
values ($1, $2, $3, $4, $5, $6, $7)
on conflict (ride_id, kind, model_version) do update
    set value = excluded.value, source_seq = excluded.source_seq,
        event_id = excluded.event_id, updated_at = now()
    where ride_results.source_seq < excluded.source_seq
"""


@dataclass(frozen=True)
class WorkerSpec:
    """The subject a worker consumes and the function that handles one event."""

    subject: str
    handler: Handler


def feature_row(
    event: RideEvent, *, distance: float | None = None, minutes_later: float = 0.0
) -> FloatMatrix:
    """The model input (1, N_FEATURES) of the event's ride (optionally moved on in the trip)."""
    ride = event.ride
    row = features.ride_feature_row(
        pickup_datetime=ride.pickup_datetime + timedelta(minutes=minutes_later),
        pickup_location_id=ride.pickup_location_id,
        dropoff_location_id=ride.dropoff_location_id,
        trip_distance=ride.trip_distance if distance is None else distance,
        passenger_count=ride.passenger_count,
        payment_type=ride.payment_type,
    )
    return np.asarray([row], dtype=np.float32)


async def write_result(
    pool: asyncpg.Pool,
    event: RideEvent,
    *,
    kind: str,
    model: str,
    version: str,
    value: float,
    timeout_s: float,
) -> bool:
    """Upsert one result (see the module docstring); True when a row was written or changed."""
    async with database_errors(f"write_{kind}"):
        status: str = await pool.execute(
            _UPSERT,
            event.ride_id,
            kind,
            model,
            version,
            round(value, 4),
            event.seq,
            event.event_id,
            timeout=timeout_s,
        )
    return status.endswith(" 1")


def make_worker(
    kind: str, *, triton: TritonClient, pool: asyncpg.Pool, settings: WorkerSettings
) -> WorkerSpec:
    """The subject and handler of worker ``kind`` (one of ``KINDS``)."""
    timeout = settings.database_timeout_s

    async def predict(model: str, x: FloatMatrix) -> tuple[float, str]:
        result = await triton.infer(model, {"features": x}, outputs=[model_output[model]])
        return float(result.outputs[model_output[model]].reshape(-1)[0]), result.model_version

    model_output = {
        settings.tip_model: "tip_amount",
        settings.cost_model: "total_amount",
        settings.duration_model: "duration_minutes",
    }

    def amount(kind: str, model: str) -> Handler:
        """The handler of a worker that writes the model's amount (USD, >= 0) for the ride."""

        async def handle(event: RideEvent) -> bool:
            value, version = await predict(model, feature_row(event))
            return await write_result(
                pool,
                event,
                kind=kind,
                model=model,
                version=version,
                value=max(value, 0.0),
                timeout_s=timeout,
            )

        return handle

    async def dynamic_duration(event: RideEvent) -> bool:
        telemetry = event.telemetry
        if telemetry is None:
            minutes, version = await predict(settings.duration_model, feature_row(event))
            value = max(minutes, MIN_DURATION_MINUTES)
        else:
            remaining = max(event.ride.trip_distance - telemetry.distance_covered, 0.0)
            row = feature_row(
                event,
                distance=max(remaining, ARRIVED_MILES),
                minutes_later=telemetry.elapsed_minutes,
            )
            minutes, version = await predict(settings.duration_model, row)
            if remaining <= ARRIVED_MILES:
                minutes = 0.0
            elif telemetry.speed_mph > MOVING_MPH:
                minutes = (minutes + remaining / telemetry.speed_mph * 60.0) / 2.0
            value = telemetry.elapsed_minutes + max(minutes, 0.0)
        return await write_result(
            pool,
            event,
            kind="duration",
            model=settings.duration_model,
            version=version,
            value=value,
            timeout_s=timeout,
        )

    if kind == "tip":
        return WorkerSpec(RIDE_REQUESTED, amount("tip", settings.tip_model))
    if kind == "cost":
        return WorkerSpec(RIDE_REQUESTED, amount("cost", settings.cost_model))
    if kind == "dynamic-duration":
        return WorkerSpec("rides.*", dynamic_duration)  # rides.requested and rides.telemetry
    raise ValueError(f"unknown worker {kind!r}; known: {', '.join(KINDS)}")
