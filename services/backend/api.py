"""HTTP routes of backend: create a ride, read it, stream its results, post telemetry.

``POST /v1/rides`` answers within one budget (:mod:`services.backend.chain`): the base duration
from ride-duration, and the location -> sensor -> sensor-aware duration chain when it fits; a
part that misses leaves its field null with a reason, the ride is still accepted, and the
sensor-aware duration follows as a result. The ride, its ``rides.requested`` event and its
``Idempotency-Key`` are written in one transaction (transactional outbox); the relay publishes
the event. A retry with the same key and body gets the original answer
(``Idempotent-Replayed: true``), another body a 409.

``GET /v1/rides/{id}/events`` gives every event an id (:mod:`services.backend.sse`); a client
reconnecting with ``Last-Event-ID`` gets only what changed since.

Handlers take the app's :class:`~services.backend.state.BackendState` and return the response
models of :mod:`services.backend.schemas` (the 201 of a ride sets ``Location`` on FastAPI's
``Response``); the SSE frames are their ``model_dump(mode="json")``, each event documented with
its model (:func:`services.common.sse.openapi_content`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

import asyncpg
import orjson
from fastapi import APIRouter, Header, Response
from starlette.responses import StreamingResponse

from services.backend import sse, store
from services.backend.chain import answer_ride, ride_budget_s
from services.backend.metrics import (
    IDEMPOTENT_REPLAYS,
    RIDES_CREATED,
    SSE_STREAMS,
    TELEMETRY_ACCEPTED,
)
from services.backend.schemas import (
    DownstreamData,
    InitialDuration,
    ModelRef,
    RideCreated,
    RideLinks,
    RideRequest,
    RideResult,
    RideView,
    Telemetry,
    TelemetryAccepted,
)
from services.backend.state import StateDep
from services.common.errors import Conflict, ModelfleetError, NotFound
from services.common.logging import request_id_var
from services.common.security import require_scope
from services.common.sse import KEEP_ALIVE, MEDIA_TYPE, event_stream, openapi_content
from services.domain.taxi.events import RESULT_UNITS

router = APIRouter(prefix="/v1", tags=["rides"])
log = logging.getLogger(__name__)

REPLAYED_HEADER = "Idempotent-Replayed"
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such ride (problem+json)"},
    422: {"description": "Invalid input, problem+json naming each field"},
    503: {"description": "The database is unavailable (Retry-After)"},
    504: {"description": "The database missed its deadline"},
}


def _header_doc(description: str, *, required: bool = False) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": {"type": "string"}}


def request_hash(ride: RideRequest) -> str:
    """The hash an Idempotency-Key is bound to: the validated request, canonical JSON."""
    canonical = orjson.dumps(ride.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def _stored_initial(row: asyncpg.Record) -> InitialDuration:
    minutes = row["initial_duration_minutes"]
    return InitialDuration(
        duration_minutes=None if minutes is None else round(float(minutes), 2),
        model=None
        if row["initial_model_name"] is None
        else ModelRef(name=row["initial_model_name"], version=row["initial_model_version"]),
        reason=row["initial_reason"],
        uses_sensor=row["initial_uses_sensor"],
    )


def _stored_downstream(row: asyncpg.Record) -> dict[str, DownstreamData]:
    """``location`` and ``sensor`` as stored with the ride (rides before 0002: not_configured)."""
    stored = orjson.loads(row["downstream"]) if row["downstream"] else {}
    absent = {"data": None, "reason": "not_configured"}
    return {
        name: DownstreamData.model_validate(stored.get(name, absent))
        for name in ("location", "sensor")
    }


def _result_of(row: asyncpg.Record) -> RideResult:
    return RideResult(
        kind=row["kind"],
        value=round(float(row["value"]), 2),
        unit=RESULT_UNITS.get(row["kind"], ""),
        model=ModelRef(name=row["model_name"], version=row["model_version"]),
        at=row["updated_at"],
    )


def _ride_of(row: asyncpg.Record) -> RideRequest:
    return RideRequest(
        user_id=row["user_id"],
        pickup_datetime=row["pickup_datetime"],
        pickup_location_id=row["pickup_location_id"],
        dropoff_location_id=row["dropoff_location_id"],
        trip_distance=round(float(row["trip_distance"]), 4),
        passenger_count=row["passenger_count"],
        payment_type=row["payment_type"],
    )


def _created(
    response: Response,
    ride_id: uuid.UUID,
    initial: InitialDuration,
    downstream: dict[str, DownstreamData],
    *,
    replayed: bool = False,
) -> RideCreated:
    """The 201's body; ``Location`` (and ``Idempotent-Replayed``: a replay) go on ``response``."""
    location = f"/v1/rides/{ride_id}"
    response.headers["Location"] = location
    if replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return RideCreated(
        ride_id=ride_id,
        initial_duration=initial,
        location=downstream["location"],
        sensor=downstream["sensor"],
        links=RideLinks(self=location, events=f"{location}/events"),
    )


async def _replay(
    response: Response,
    pool: asyncpg.Pool,
    stored: store.StoredKey,
    digest: str,
    *,
    key: str,
    timeout_s: float,
) -> RideCreated:
    """The original answer of an Idempotency-Key, or 409 when it came with another body."""
    if stored.request_hash != digest:
        raise Conflict(
            f"Idempotency-Key {key!r} was used with a different request body",
            extra={"ride_id": str(stored.ride_id)},
        )
    row = await store.fetch_ride(pool, stored.ride_id, timeout_s=timeout_s)
    if row is None:  # the key's foreign key makes this impossible
        raise NotFound(f"ride {stored.ride_id} does not exist")
    IDEMPOTENT_REPLAYS.inc()
    return _created(
        response, stored.ride_id, _stored_initial(row), _stored_downstream(row), replayed=True
    )


@router.post(
    "/rides",
    status_code=201,
    response_model=RideCreated,
    summary="Request a ride: stored with its initial duration, results follow",
    responses={
        **_ERRORS,
        201: {
            "description": "The ride (a replay of an Idempotency-Key: the original answer)",
            "headers": {
                "Location": _header_doc("The ride: /v1/rides/{ride_id}.", required=True),
                REPLAYED_HEADER: _header_doc("`true`: the answer of an earlier request."),
            },
        },
        409: {"description": "The Idempotency-Key was used with another body (problem+json)"},
    },
    dependencies=[require_scope("write")],
)
async def create_ride(
    body: RideRequest,
    state: StateDep,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            pattern=IDEMPOTENCY_KEY_PATTERN,
            description="Retry-safe key (1-255 visible ASCII characters): the same key and "
            "body answer the original ride (header Idempotent-Replayed: true).",
        ),
    ] = None,
) -> RideCreated:
    settings, pool = state.settings, state.pool
    timeout_s = settings.database_timeout_s
    idempotency: store.IdempotencyKey | None = None
    if idempotency_key is not None:
        idempotency = store.IdempotencyKey(idempotency_key, request_hash(body))
        stored = await store.find_key(pool, idempotency_key, timeout_s=timeout_s)
        if stored is not None:
            return await _replay(
                response,
                pool,
                stored,
                idempotency.request_hash,
                key=idempotency_key,
                timeout_s=timeout_s,
            )
    answer = await answer_ride(state.http, settings, body, budget_s=ride_budget_s(settings))
    initial = answer.initial
    downstream = {"location": answer.location, "sensor": answer.sensor}
    ride_id = uuid.uuid4()
    stored = await store.insert_ride(
        pool,
        ride_id=ride_id,
        ride=body,
        request_id=request_id_var.get(),
        answer=answer,
        idempotency=idempotency,
        timeout_s=timeout_s,
    )
    if stored is not None:  # a concurrent request with the same key won
        assert idempotency is not None
        return await _replay(
            response,
            pool,
            stored,
            idempotency.request_hash,
            key=idempotency.key,
            timeout_s=timeout_s,
        )
    state.wake_relay()
    RIDES_CREATED.labels(initial.reason or "ok").inc()
    return _created(response, ride_id, initial, downstream)


@router.get(
    "/rides/{ride_id}",
    response_model=RideView,
    summary="A ride and its results so far",
    responses={404: _ERRORS[404]},
    dependencies=[require_scope("read")],
)
async def get_ride(ride_id: uuid.UUID, state: StateDep) -> RideView:
    pool, timeout = state.pool, state.settings.database_timeout_s
    row = await store.fetch_ride(pool, ride_id, timeout_s=timeout)
    if row is None:
        raise NotFound(f"ride {ride_id} does not exist")
    results = await store.fetch_results(pool, ride_id, timeout_s=timeout)
    downstream = _stored_downstream(row)
    return RideView(
        ride_id=ride_id,
        created_at=row["created_at"],
        ride=_ride_of(row),
        initial_duration=_stored_initial(row),
        location=downstream["location"],
        sensor=downstream["sensor"],
        results=[_result_of(r) for r in results],
    )


@router.get(
    "/rides/{ride_id}/events",
    summary="Server-Sent Events: the initial duration, then each worker result as it lands",
    description="Each event has an id; reconnect with `Last-Event-ID` to get only the results "
    "that changed since that event (the initial duration is not sent again), then live ones.",
    response_class=StreamingResponse,
    responses={
        **_ERRORS,
        200: {
            "description": "The event stream: `initial_duration` (id `0`), then a `result` "
            "each time one lands or changes (id: every result seen so far)",
            "content": {
                MEDIA_TYPE: openapi_content(
                    {"initial_duration": InitialDuration, "result": RideResult}, ids=True
                )
            },
        },
    },
    dependencies=[require_scope("read")],
)
async def ride_events(
    ride_id: uuid.UUID,
    state: StateDep,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=sse.MAX_ID_CHARS,
            pattern=sse.ID_PATTERN,
            description="The id of the last event received: only what changed since is sent.",
        ),
    ] = None,
) -> StreamingResponse:
    settings, pool, notifier = state.settings, state.pool, state.notifier
    seen = sse.parse_cursor(last_event_id) if last_event_id is not None else None
    row = await store.fetch_ride(pool, ride_id, timeout_s=settings.database_timeout_s)
    if row is None:
        raise NotFound(f"ride {ride_id} does not exist")
    initial = _stored_initial(row).model_dump(mode="json")

    async def stream() -> AsyncIterator[bytes]:
        SSE_STREAMS.inc()
        try:
            with notifier.subscribe(str(ride_id)) as woken:
                cursor: sse.Cursor = {} if seen is None else dict(seen)
                if seen is None:
                    yield sse.frame("initial_duration", initial, event_id=sse.INITIAL_ID)
                ends = time.monotonic() + settings.sse_max_duration_s
                while time.monotonic() < ends:
                    woken.clear()
                    try:
                        rows = await store.fetch_results(
                            pool, ride_id, timeout_s=settings.database_timeout_s
                        )
                    except ModelfleetError:
                        rows = []  # database outage: keep the stream, look again later
                    for result in rows:
                        kind, version = result["kind"], result["model_version"]
                        if sse.is_newer(cursor, kind, version, result["source_seq"]):
                            cursor[(kind, version)] = result["source_seq"]
                            yield sse.frame(
                                "result",
                                _result_of(result).model_dump(mode="json"),
                                event_id=sse.format_cursor(cursor),
                            )
                    try:
                        await asyncio.wait_for(woken.wait(), settings.sse_recheck_interval_s)
                    except TimeoutError:
                        yield KEEP_ALIVE
        finally:
            SSE_STREAMS.dec()

    return event_stream(stream())


@router.post(
    "/rides/{ride_id}/telemetry",
    status_code=202,
    response_model=TelemetryAccepted,
    summary="Progress during the trip (feeds the dynamic-duration worker)",
    responses=_ERRORS,
    dependencies=[require_scope("write")],
)
async def post_telemetry(ride_id: uuid.UUID, body: Telemetry, state: StateDep) -> TelemetryAccepted:
    event_id = await store.insert_telemetry(
        state.pool, ride_id=ride_id, telemetry=body, timeout_s=state.settings.database_timeout_s
    )
    state.wake_relay()
    TELEMETRY_ACCEPTED.inc()
    return TelemetryAccepted(event_id=event_id, ride_id=ride_id)
