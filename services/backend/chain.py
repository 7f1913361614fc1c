"""POST /v1/rides' answer within one budget: the base duration at once, and the call chain
location -> sensor -> sensor-aware duration when it fits.

The deployment-architectures document's app needs an answer in 2 s, and its chain of dependent
calls (location ~0.5 s, then sensor ~2 s with the location, then the prediction with both) does
not fit. So the backend runs, from the moment the request arrives::

    ride-duration(ride) ───────────────────────────────────────────────► base duration
    location(pickup zone) ──► sensor(lat, lng, time) ──► ride-duration(ride + traffic speed)
                                                                       ► sensor-aware duration

all within the ride's budget: ``BACKEND_REQUEST_BUDGET_S`` (or the caller's shorter
``X-Request-Budget-Ms``) less ``BACKEND_WRITE_RESERVE_S`` for the database write. Each call gets
``min(its own timeout, what is left)`` and tells the callee what is left (the budget header), so
a service never works on a call its caller has given up on. The answer carries the sensor-aware
duration when the chain finished in time, else the base one (``uses_sensor`` says which), and a
reason for each part that did not arrive (``timeout``, ``unavailable``, ``not_configured``). The
sensor-aware duration then follows on the streaming path: the ``sensor-duration`` worker finishes
the chain from the ride's event (:mod:`services.workers.handlers`) and writes result
``sensor_duration``, pushed over SSE.

Each call is measured once (``modelfleet_dependency_request_duration_seconds`` and
``modelfleet_fanout_calls_total{downstream,outcome}``, :mod:`services.backend.fanout`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from services.backend.fanout import Call, Outcome, call_within, not_configured
from services.backend.schemas import DownstreamData, InitialDuration, ModelRef, RideRequest
from services.backend.settings import BackendSettings, Downstream
from services.common.deadline import remaining_s
from services.common.http import JsonClient
from services.domain.taxi.times import new_york_local

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RideAnswer:
    """What POST /v1/rides answers and stores: the duration and what each downstream gave."""

    initial: InitialDuration
    location: DownstreamData
    sensor: DownstreamData
    #: The sensor's traffic speed the answer used (None: the base model answered).
    traffic_speed_mph: float | None = None


def prediction_body(ride: RideRequest, traffic_speed_mph: float | None = None) -> dict[str, Any]:
    """ride-duration's request for a ride (with the sensor's traffic speed when known)."""
    body: dict[str, Any] = {
        "pickup_datetime": new_york_local(ride.pickup_datetime).isoformat(),
        "pickup_location_id": ride.pickup_location_id,
        "dropoff_location_id": ride.dropoff_location_id,
        "trip_distance": ride.trip_distance,
        "passenger_count": ride.passenger_count,
        "payment_type": ride.payment_type,
        "user_id": ride.user_id,  # the sticky key of ride-duration's A/B experiments
    }
    if traffic_speed_mph is not None:
        body["traffic_speed_mph"] = traffic_speed_mph
    return body


def _get(
    client: JsonClient, target: Downstream, path: str, params: dict[str, str] | None
) -> Call[dict[str, Any]]:
    url, name = f"{target.url}{path}", target.name

    async def run() -> dict[str, Any]:
        return await client.get_json(url, timeout_s=target.timeout_s, name=name, params=params)

    return Call(f"http:{name}", "get", run, target.timeout_s)


def _predict(client: JsonClient, target: Downstream, body: dict[str, Any]) -> Call[dict[str, Any]]:
    url = f"{target.url}/v1/predict"

    async def run() -> dict[str, Any]:
        return await client.post_json(url, body, timeout_s=target.timeout_s, name=target.name)

    return Call(f"http:{target.name}", "predict", run, target.timeout_s)


def duration_of(outcome: Outcome[dict[str, Any]]) -> InitialDuration:
    """A ride-duration outcome as ``initial_duration`` (a bad answer: unavailable)."""
    data = outcome.value
    if data is not None:
        try:
            return InitialDuration(
                duration_minutes=float(data["duration_minutes"]),
                model=ModelRef(
                    name=str(data["model"]["name"]), version=str(data["model"]["version"])
                ),
                reason=None,
            )
        except (KeyError, TypeError, ValueError):
            log.warning("ride-duration answered an unexpected body")
    return InitialDuration(
        duration_minutes=None, model=None, reason=outcome.reason or "unavailable"
    )


def data_of(outcome: Outcome[dict[str, Any]]) -> DownstreamData:
    """A location/sensor outcome: ``{"data": object|null, "reason": ...}``."""
    return DownstreamData(data=outcome.value, reason=outcome.reason)


def _traffic_speed(sensor: Outcome[dict[str, Any]]) -> float | None:
    data = sensor.value
    if data is None:
        return None
    speed = data.get("speed_mph")
    return float(speed) if isinstance(speed, int | float) and speed > 0 else None


def ride_budget_s(settings: BackendSettings) -> float:
    """Seconds the downstream calls may take: the request's budget less the write's reserve."""
    budget = settings.request_budget_s
    caller = remaining_s()
    if caller is not None:
        budget = min(budget, caller)
    return max(0.0, budget - settings.write_reserve_s)


async def answer_ride(
    client: JsonClient, settings: BackendSettings, ride: RideRequest, *, budget_s: float
) -> RideAnswer:
    """The base duration and, when it fits in ``budget_s``, the chain (see the module)."""
    deadline = time.monotonic() + budget_s

    def left() -> float:
        return max(0.0, deadline - time.monotonic())

    rd = settings.downstream("ride-duration")
    base_task = asyncio.create_task(
        call_within("ride-duration", _predict(client, rd, prediction_body(ride)), left())
    )
    location_target, sensor_target = settings.downstream("location"), settings.downstream("sensor")
    sensor: Outcome[dict[str, Any]] | None = None
    aware: Outcome[dict[str, Any]] | None = None
    speed: float | None = None
    try:
        if location_target.url is None:
            location: Outcome[dict[str, Any]] = not_configured("location")
        else:
            path = f"/v1/zones/{ride.pickup_location_id}"
            call = _get(client, location_target, path, None)
            location = await call_within("location", call, left())
        if sensor_target.url is None:
            sensor = not_configured("sensor")
        else:
            place = location.value
            if place is None:
                # Without the place the sensor cannot be asked: the location's reason is its own
                # (not configured, timed out or failed before the sensor could start).
                sensor = Outcome(None, location.reason or "unavailable")
            else:
                params = {
                    "latitude": str(place.get("latitude")),
                    "longitude": str(place.get("longitude")),
                    "at": new_york_local(ride.pickup_datetime).isoformat(),
                }
                call = _get(client, sensor_target, "/v1/traffic", params)
                sensor = await call_within("sensor", call, left())
                speed = _traffic_speed(sensor)
                if speed is not None:
                    aware_call = _predict(client, rd, prediction_body(ride, speed))
                    aware = await call_within("ride-duration-sensor", aware_call, left())
        base = await base_task
    finally:
        base_task.cancel()
    aware_duration = None if aware is None else duration_of(aware)
    if aware_duration is not None and aware_duration.duration_minutes is not None:
        initial = aware_duration.model_copy(update={"uses_sensor": True})
    else:
        initial = duration_of(base)
        speed = None
    assert sensor is not None
    return RideAnswer(initial, data_of(location), data_of(sensor), speed)
