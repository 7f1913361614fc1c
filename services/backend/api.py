"""HTTP routes of backend: create a ride, read it, stream its results, post telemetry.

``POST /v1/rides`` asks ride-duration for the initial duration within its budget
(``BACKEND_RIDE_DURATION_TIMEOUT_S``): when the call misses it the ride is still accepted, with
``duration_minutes: null`` and a reason. The ride and its ``rides.requested`` event are written in
one transaction (transactional outbox); the relay publishes the event.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
from fastapi import APIRouter, Request
from starlette.responses import StreamingResponse

from services.backend import store
from services.backend.metrics import RIDES_CREATED, SSE_STREAMS, TELEMETRY_ACCEPTED
from services.backend.notify import ResultNotifier
from services.backend.relay import OutboxRelay
from services.backend.schemas import (
    RideCreated,
    RideRequest,
    RideView,
    Telemetry,
    TelemetryAccepted,
    new_york_local,
)
from services.backend.settings import BackendSettings
from services.common.deps import PoolDep
from services.common.errors import ModelfleetError, NotFound
from services.common.fastroute import JsonResponse
from services.common.logging import outgoing_headers, request_id_var
from services.common.metrics import observe_dependency
from services.common.taxi.events import RESULT_UNITS

router = APIRouter(prefix="/v1", tags=["rides"])
log = logging.getLogger(__name__)

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such ride (problem+json)"},
    422: {"description": "Invalid input, problem+json naming each field"},
    503: {"description": "The database is unavailable (Retry-After)"},
    504: {"description": "The database missed its deadline"},
}


async def initial_duration(
    client: httpx.AsyncClient, settings: BackendSettings, ride: RideRequest
) -> dict[str, Any]:
    """ride-duration's prediction within budget, or ``duration_minutes: None`` and a reason."""
    body = {
        "pickup_datetime": new_york_local(ride.pickup_datetime).isoformat(),
        "pickup_location_id": ride.pickup_location_id,
        "dropoff_location_id": ride.dropoff_location_id,
        "trip_distance": ride.trip_distance,
        "passenger_count": ride.passenger_count,
        "payment_type": ride.payment_type,
    }
    reason = "unavailable"
    try:
        with observe_dependency("http:ride-duration", "predict"):
            async with asyncio.timeout(settings.ride_duration_timeout_s):
                response = await client.post("/v1/predict", json=body, headers=outgoing_headers())
        if response.status_code == 200:
            data = response.json()
            return {
                "duration_minutes": float(data["duration_minutes"]),
                "model": {
                    "name": str(data["model"]["name"]),
                    "version": str(data["model"]["version"]),
                },
                "reason": None,
            }
        reason = "timeout" if response.status_code == 504 else "unavailable"
        log.warning("ride-duration answered %d", response.status_code)
    except (TimeoutError, httpx.TimeoutException):
        reason = "timeout"
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        log.warning("ride-duration call failed: %r", exc)
    return {"duration_minutes": None, "model": None, "reason": reason}


def _initial_of(row: Any) -> dict[str, Any]:
    minutes = row["initial_duration_minutes"]
    return {
        "duration_minutes": None if minutes is None else round(float(minutes), 2),
        "model": None
        if row["initial_model_name"] is None
        else {"name": row["initial_model_name"], "version": row["initial_model_version"]},
        "reason": row["initial_reason"],
    }


def _result_of(row: Any) -> dict[str, Any]:
    return {
        "kind": row["kind"],
        "value": round(float(row["value"]), 2),
        "unit": RESULT_UNITS.get(row["kind"], ""),
        "model": {"name": row["model_name"], "version": row["model_version"]},
        "at": row["updated_at"].isoformat(),
    }


def _ride_of(row: Any) -> dict[str, Any]:
    return {
        "user_id": row["user_id"],
        "pickup_datetime": row["pickup_datetime"].isoformat(),
        "pickup_location_id": row["pickup_location_id"],
        "dropoff_location_id": row["dropoff_location_id"],
        "trip_distance": round(float(row["trip_distance"]), 4),
        "passenger_count": row["passenger_count"],
        "payment_type": row["payment_type"],
    }


@router.post(
    "/rides",
    status_code=201,
    response_model=RideCreated,
    summary="Request a ride: stored with its initial duration, results follow",
    responses=_ERRORS,
)
async def create_ride(body: RideRequest, request: Request, pool: PoolDep) -> JsonResponse:
    state = request.app.state
    settings: BackendSettings = state.settings
    initial = await initial_duration(state.http, settings, body)
    ride_id = uuid.uuid4()
    await store.insert_ride(
        pool,
        ride_id=ride_id,
        ride=body,
        request_id=request_id_var.get(),
        initial=initial,
        timeout_s=settings.database_timeout_s,
    )
    relay: OutboxRelay | None = state.relay
    if relay is not None:
        relay.wake()
    RIDES_CREATED.labels(initial["reason"] or "ok").inc()
    location = f"/v1/rides/{ride_id}"
    return JsonResponse(
        {
            "ride_id": str(ride_id),
            "initial_duration": initial,
            "links": {"self": location, "events": f"{location}/events"},
        },
        status_code=201,
        headers={"Location": location},
    )


@router.get("/rides/{ride_id}", response_model=RideView, summary="A ride and its results so far")
async def get_ride(ride_id: uuid.UUID, request: Request, pool: PoolDep) -> JsonResponse:
    timeout = request.app.state.settings.database_timeout_s
    row = await store.fetch_ride(pool, ride_id, timeout_s=timeout)
    if row is None:
        raise NotFound(f"ride {ride_id} does not exist")
    results = await store.fetch_results(pool, ride_id, timeout_s=timeout)
    return JsonResponse(
        {
            "ride_id": str(ride_id),
            "created_at": row["created_at"].isoformat(),
            "ride": _ride_of(row),
            "initial_duration": _initial_of(row),
            "results": [_result_of(r) for r in results],
        }
    )


def _sse(event: str, data: dict[str, Any], *, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"


@router.get(
    "/rides/{ride_id}/events",
    summary="Server-Sent Events: the initial duration, then each worker result as it lands",
    responses={**_ERRORS, 200: {"content": {"text/event-stream": {}}}},
)
async def ride_events(ride_id: uuid.UUID, request: Request, pool: PoolDep) -> StreamingResponse:
    settings: BackendSettings = request.app.state.settings
    notifier: ResultNotifier = request.app.state.notifier
    row = await store.fetch_ride(pool, ride_id, timeout_s=settings.database_timeout_s)
    if row is None:
        raise NotFound(f"ride {ride_id} does not exist")
    initial = _initial_of(row)

    async def stream() -> AsyncIterator[bytes]:
        SSE_STREAMS.inc()
        try:
            with notifier.subscribe(str(ride_id)) as woken:
                yield _sse("initial_duration", initial, event_id="initial_duration")
                seen: dict[tuple[str, str], tuple[float, str]] = {}
                ends = time.monotonic() + settings.sse_max_duration_s
                while time.monotonic() < ends:
                    woken.clear()
                    try:
                        rows = await store.fetch_results(
                            pool, ride_id, timeout_s=settings.database_timeout_s
                        )
                    except ModelfleetError:
                        rows = []  # database outage: keep the stream, look again later
                    for result in map(_result_of, rows):
                        key = (result["kind"], result["model"]["version"])
                        mark = (result["value"], result["at"])
                        if seen.get(key) != mark:
                            seen[key] = mark
                            yield _sse("result", result, event_id=f"{key[0]}:{key[1]}:{mark[1]}")
                    try:
                        await asyncio.wait_for(woken.wait(), settings.sse_recheck_interval_s)
                    except TimeoutError:
                        yield b": keep-alive\n\n"
        finally:
            SSE_STREAMS.dec()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.post(
    "/rides/{ride_id}/telemetry",
    status_code=202,
    response_model=TelemetryAccepted,
    summary="Progress during the trip (feeds the dynamic-duration worker)",
    responses=_ERRORS,
)
async def post_telemetry(
    ride_id: uuid.UUID, body: Telemetry, request: Request, pool: PoolDep
) -> JsonResponse:
    settings: BackendSettings = request.app.state.settings
    event_id = await store.insert_telemetry(
        pool, ride_id=ride_id, telemetry=body, timeout_s=settings.database_timeout_s
    )
    relay: OutboxRelay | None = request.app.state.relay
    if relay is not None:
        relay.wake()
    TELEMETRY_ACCEPTED.inc()
    return JsonResponse({"event_id": str(event_id), "ride_id": str(ride_id)}, status_code=202)
