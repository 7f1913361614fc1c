"""Unit tests of backend pieces that need no server: settings, schemas, relay message body."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson
import pytest
from pydantic import ValidationError

from services.backend.relay import event_body
from services.backend.schemas import RideRequest
from services.backend.settings import BackendSettings
from services.domain.taxi.events import RideEvent
from services.domain.taxi.times import new_york_local


def test_event_body_adds_the_outbox_seq_and_parses_as_a_ride_event() -> None:
    payload = orjson.dumps(
        {
            "type": "ride.requested",
            "event_id": str(uuid.uuid4()),
            "ride_id": str(uuid.uuid4()),
            "occurred_at": "2024-03-14T12:30:00+00:00",
            "ride": {
                "pickup_datetime": "2024-03-14T08:30:00",
                "pickup_location_id": 161,
                "dropoff_location_id": 236,
                "trip_distance": 2.4,
                "passenger_count": 1,
                "payment_type": 1,
            },
            "initial_duration_minutes": None,
        }
    ).decode()
    event = RideEvent.model_validate_json(event_body(payload, 42))
    assert event.seq == 42 and event.telemetry is None and event.initial_duration_minutes is None
    assert event.ride.pickup_datetime == datetime(2024, 3, 14, 8, 30)


def test_aware_pickup_times_become_new_york_local() -> None:
    assert new_york_local(datetime(2024, 3, 14, 12, 30, tzinfo=UTC)) == datetime(2024, 3, 14, 8, 30)
    naive = datetime(2024, 3, 14, 8, 30)
    assert new_york_local(naive) is naive


def test_ride_request_defaults_and_limits() -> None:
    ride = RideRequest.model_validate(
        {
            "user_id": "u-1",
            "pickup_datetime": "2024-03-14T08:30:00",
            "pickup_location_id": 1,
            "dropoff_location_id": 265,
            "trip_distance": 0.1,
        }
    )
    assert (ride.passenger_count, ride.payment_type) == (1, 1)
    with pytest.raises(ValidationError):
        RideRequest.model_validate({**ride.model_dump(), "trip_distance": float("inf")})


def test_settings_fail_fast_on_a_bad_ride_duration_url() -> None:
    with pytest.raises(ValidationError, match="RIDE_DURATION_URL"):
        BackendSettings(ride_duration_url="ride-duration:8001")
    assert (
        BackendSettings(ride_duration_url="http://rd:8001/").ride_duration_url == "http://rd:8001"
    )


def test_location_and_sensor_urls_unset_or_empty_are_not_configured() -> None:
    assert BackendSettings(location_url="", sensor_url=None).location_url is None
    assert BackendSettings(sensor_url="").sensor_url is None
    assert BackendSettings(sensor_url="http://s:9/v1/x/").sensor_url == "http://s:9/v1/x"
    with pytest.raises(ValidationError, match="BACKEND_LOCATION_URL"):
        BackendSettings(location_url="location:80")
