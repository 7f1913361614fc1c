"""What each worker computes from a ride event, and its idempotent write.

- ``tip``: Triton ``tip_amount`` on the ride's features -> result kind ``tip`` (USD, >= 0).
- ``cost``: Triton ``total_amount`` -> kind ``cost`` (USD, >= 0).
- ``sensor-duration``: finishes the chain the backend's budget cut short
  (:mod:`services.backend.chain`): the pickup place (from the event, else the location service),
  the traffic there at pickup time (from the event, else the sensor service), then Triton
  ``ride_duration_sensor`` -> kind ``sensor_duration`` (minutes). A ride from or to no known
  place (zones 264/265) has none. A location or sensor outage redelivers the event, like a
  Triton one.
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
from services.common.http import JsonClient
from services.common.jetstream import RIDE_REQUESTED
from services.common.metrics import observe_dependency
from services.common.triton import TritonClient
from services.domain.taxi import features, zones
from services.domain.taxi.events import RideEvent
from services.workers.consumer import Handler
from services.workers.settings import WorkerSettings

FloatMatrix = npt.NDArray[np.float32]
KINDS: Final = ("tip", "cost", "dynamic-duration", "sensor-duration")
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


async def traffic_speed(event: RideEvent, http: JsonClient, settings: WorkerSettings) -> float:
    """The traffic speed at the ride's pickup place and time: the event's, else the sensor's
    (asked at the event's place, else at the location service's)."""
    if event.traffic_speed_mph is not None:
        return event.traffic_speed_mph
    latitude, longitude = event.latitude, event.longitude
    if latitude is None or longitude is None:
        zone = event.ride.pickup_location_id
        with observe_dependency("http:location", "get"):
            place = await http.get_json(
                f"{settings.location_url}/v1/zones/{zone}",
                timeout_s=settings.location_timeout_s,
                name="location",
            )
        latitude, longitude = float(place["latitude"]), float(place["longitude"])
    params = {
        "latitude": str(latitude),
        "longitude": str(longitude),
        "at": event.ride.pickup_datetime.isoformat(),
    }
    with observe_dependency("http:sensor", "get"):
        reading = await http.get_json(
            f"{settings.sensor_url}/v1/traffic",
            timeout_s=settings.sensor_timeout_s,
            name="sensor",
            params=params,
        )
    return float(reading["speed_mph"])


def make_worker(
    kind: str,
    *,
    triton: TritonClient,
    pool: asyncpg.Pool,
    settings: WorkerSettings,
    http: JsonClient | None = None,
) -> WorkerSpec:
    """The subject and handler of worker ``kind`` (one of ``KINDS``); ``http``: the client of
    the sensor-duration worker's location and sensor calls."""
    timeout = settings.database_timeout_s

    async def predict(model: str, x: FloatMatrix) -> tuple[float, str]:
        result = await triton.infer(model, {"features": x}, outputs=[model_output[model]])
        return float(result.outputs[model_output[model]].reshape(-1)[0]), result.model_version

    model_output = {
        settings.tip_model: "tip_amount",
        settings.cost_model: "total_amount",
        settings.duration_model: "duration_minutes",
        settings.sensor_model: "duration_minutes",
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

    async def sensor_duration(event: RideEvent) -> bool:
        ride = event.ride
        if not (
            zones.ZONE_KNOWN[min(ride.pickup_location_id, zones.N_ZONES)]
            and zones.ZONE_KNOWN[min(ride.dropoff_location_id, zones.N_ZONES)]
        ):
            return False  # no place to read traffic at: the base duration is all there is
        if http is None:
            raise RuntimeError("the sensor-duration worker needs an HTTP client")
        speed = await traffic_speed(event, http, settings)
        minutes, version = await predict(
            settings.sensor_model, features.with_traffic(feature_row(event), [speed])
        )
        return await write_result(
            pool,
            event,
            kind="sensor_duration",
            model=settings.sensor_model,
            version=version,
            value=max(minutes, MIN_DURATION_MINUTES),
            timeout_s=timeout,
        )

    if kind == "tip":
        return WorkerSpec(RIDE_REQUESTED, amount("tip", settings.tip_model))
    if kind == "cost":
        return WorkerSpec(RIDE_REQUESTED, amount("cost", settings.cost_model))
    if kind == "sensor-duration":
        return WorkerSpec(RIDE_REQUESTED, sensor_duration)
    if kind == "dynamic-duration":
        return WorkerSpec("rides.*", dynamic_duration)  # rides.requested and rides.telemetry
    raise ValueError(f"unknown worker {kind!r}; known: {', '.join(KINDS)}")
