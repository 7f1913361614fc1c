"""The backend's answers are its response models, and their JSON is what the API always sent
(times as ``isoformat()`` writes them, rounded values); its outbox events are RideEvents."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.responses import Response

from services.backend.api import _created, _result_of, _ride_of, _stored_downstream, _stored_initial
from services.backend.relay import event_body
from services.backend.schemas import (
    EXAMPLE_RIDE,
    DownstreamData,
    InitialDuration,
    ModelRef,
    RideRequest,
)
from services.backend.store import _event_ride, ride_event
from services.domain.taxi.events import RideEvent

AT = datetime(2024, 3, 14, 12, 30, 5, 123456, tzinfo=UTC)
ROW: dict[str, Any] = {
    "user_id": "u-1",
    "pickup_datetime": datetime(2024, 3, 14, 8, 30),
    "pickup_location_id": 161,
    "dropoff_location_id": 236,
    "trip_distance": 2.4000000953674316,  # a real column read back
    "passenger_count": 1,
    "payment_type": 1,
    "initial_duration_minutes": 14.250000953674316,
    "initial_model_name": "ride_duration",
    "initial_model_version": "3",
    "initial_reason": None,
    "initial_uses_sensor": True,
    "downstream": '{"location": {"data": {"zone": 161}, "reason": null}}',
    "created_at": AT,
}


def test_a_result_is_sent_as_before() -> None:
    row = {
        "kind": "tip",
        "value": 2.3456,
        "model_name": "tip_amount",
        "model_version": "1",
        "updated_at": AT,
    }
    assert _result_of(row).model_dump(mode="json") == {  # type: ignore[arg-type]
        "kind": "tip",
        "value": 2.35,
        "unit": "USD",
        "model": {"name": "tip_amount", "version": "1"},
        "at": "2024-03-14T12:30:05.123456+00:00",
    }


def test_a_stored_ride_is_sent_as_before() -> None:
    assert _ride_of(ROW).model_dump(mode="json") == {  # type: ignore[arg-type]
        "user_id": "u-1",
        "pickup_datetime": "2024-03-14T08:30:00",
        "pickup_location_id": 161,
        "dropoff_location_id": 236,
        "trip_distance": 2.4,
        "passenger_count": 1,
        "payment_type": 1,
    }
    assert _stored_initial(ROW).model_dump(mode="json") == {  # type: ignore[arg-type]
        "duration_minutes": 14.25,
        "model": {"name": "ride_duration", "version": "3"},
        "reason": None,
        "uses_sensor": True,
    }
    downstream = _stored_downstream(ROW)  # type: ignore[arg-type]
    assert {name: data.model_dump(mode="json") for name, data in downstream.items()} == {
        "location": {"data": {"zone": 161}, "reason": None},
        "sensor": {"data": None, "reason": "not_configured"},  # not stored: not configured
    }


def test_created_is_the_model_with_its_location_on_the_response() -> None:
    ride_id = uuid.uuid4()
    initial = InitialDuration(duration_minutes=None, model=None, reason="timeout")
    absent = DownstreamData(data=None, reason="not_configured")
    response = Response()
    created = _created(
        response, ride_id, initial, {"location": absent, "sensor": absent}, replayed=True
    )
    assert response.headers["location"] == f"/v1/rides/{ride_id}"
    assert response.headers["idempotent-replayed"] == "true"
    assert created.model_dump(mode="json") == {
        "ride_id": str(ride_id),
        "initial_duration": {
            "duration_minutes": None,
            "model": None,
            "reason": "timeout",
            "uses_sensor": False,
        },
        "location": {"data": None, "reason": "not_configured"},
        "sensor": {"data": None, "reason": "not_configured"},
        "links": {"self": f"/v1/rides/{ride_id}", "events": f"/v1/rides/{ride_id}/events"},
    }


def test_a_requested_event_is_the_ride_event_the_workers_parse() -> None:
    event_id, ride_id = uuid.uuid4(), uuid.uuid4()
    ride = RideRequest.model_validate(
        {
            **EXAMPLE_RIDE,
            "trip_distance": 2.4000000953674316,
            "pickup_datetime": "2024-03-14T12:30Z",
        }
    )
    payload = ride_event(
        "ride.requested",
        event_id=event_id,
        ride_id=ride_id,
        ride=_event_ride({**ride.model_dump(), "pickup_datetime": datetime(2024, 3, 14, 8, 30)}),
        initial_duration_minutes=None,
    )
    stored = orjson.loads(payload)
    assert "seq" not in stored  # the relay adds it
    assert stored["ride"] == {
        "pickup_datetime": "2024-03-14T08:30:00",
        "pickup_location_id": 161,
        "dropoff_location_id": 236,
        "trip_distance": 2.4000000953674316,
        "passenger_count": 1,
        "payment_type": 1,
    }
    assert stored["initial_duration_minutes"] is None and stored["telemetry"] is None
    event = RideEvent.model_validate_json(event_body(payload, 9))
    assert (event.type, event.event_id, event.ride_id, event.seq) == (
        "ride.requested",
        event_id,
        ride_id,
        9,
    )
    assert event.ride.pickup_datetime == datetime(2024, 3, 14, 8, 30)
    assert event.occurred_at.tzinfo is not None


def test_a_telemetry_event_carries_the_stored_ride_and_the_progress() -> None:
    from services.backend.schemas import Telemetry

    telemetry = Telemetry(elapsed_minutes=12.0, distance_covered=1.5, speed_mph=9.0)
    payload = ride_event(
        "ride.telemetry",
        event_id=uuid.uuid4(),
        ride_id=uuid.uuid4(),
        ride=_event_ride(ROW),
        initial_duration_minutes=ROW["initial_duration_minutes"],
        telemetry=telemetry,
    )
    event = RideEvent.model_validate_json(event_body(payload, 10))
    assert event.telemetry is not None
    assert event.telemetry.model_dump() == telemetry.model_dump()
    assert event.ride.trip_distance == ROW["trip_distance"]
    assert event.initial_duration_minutes == ROW["initial_duration_minutes"]
    assert orjson.loads(payload)["telemetry"] == {
        "elapsed_minutes": 12.0,
        "distance_covered": 1.5,
        "speed_mph": 9.0,
    }


def test_model_ref_is_name_and_version() -> None:
    assert ModelRef(name="m", version="1").model_dump() == {"name": "m", "version": "1"}
