"""Unit tests of worker pieces that need no server: features of an event, kinds, delays."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import numpy as np
import pytest

from services.domain.taxi import features
from services.domain.taxi.events import EventRide, EventTelemetry, RideEvent
from services.workers.app import create_worker_app
from services.workers.consumer import PullConsumer
from services.workers.handlers import feature_row
from services.workers.settings import WorkerSettings

EVENT = RideEvent(
    type="ride.telemetry",
    event_id=uuid.uuid4(),
    ride_id=uuid.uuid4(),
    occurred_at=datetime(2024, 3, 14, 12, 30),
    ride=EventRide(
        pickup_datetime=datetime(2024, 3, 14, 8, 30),
        pickup_location_id=161,
        dropoff_location_id=236,
        trip_distance=6.0,
        passenger_count=2,
        payment_type=2,
    ),
    telemetry=EventTelemetry(elapsed_minutes=30.0, distance_covered=1.0, speed_mph=2.0),
    seq=7,
)


def test_feature_row_is_the_shared_feature_code() -> None:
    x = feature_row(EVENT)
    assert x.shape == (1, features.N_FEATURES) and x.dtype == np.float32
    want = features.ride_features(
        pickup_datetime=np.array(["2024-03-14T08:30:00"], dtype="datetime64[s]"),
        pickup_location_id=[161],
        dropoff_location_id=[236],
        trip_distance=[6.0],
        passenger_count=[2],
        payment_type=[2],
    )
    np.testing.assert_array_equal(x, want)


def test_feature_row_moves_on_in_the_trip() -> None:
    later = feature_row(EVENT, distance=5.0, minutes_later=30.0)
    moved = EVENT.ride.model_copy(
        update={"pickup_datetime": EVENT.ride.pickup_datetime + timedelta(minutes=30)}
    )
    want = feature_row(EVENT.model_copy(update={"ride": moved}), distance=5.0)
    np.testing.assert_array_equal(later, want)
    assert later[0, features.FEATURE_NAMES.index("trip_distance")] == 5.0


def test_unknown_worker_kind_fails_before_start() -> None:
    with pytest.raises(KeyError):
        create_worker_app("surge", WorkerSettings(log_json=False))


def test_redelivery_delays_grow_and_are_capped() -> None:
    settings = WorkerSettings(retry_delay_s=0.2, retry_delay_max_s=3.0)

    async def handler(_event: RideEvent) -> bool:
        return True

    consumer = PullConsumer(name="t", subject="rides.requested", handler=handler, settings=settings)
    assert 0.2 <= consumer._delay(1) <= 0.4
    assert all(1.5 <= consumer._delay(n) <= 3.0 for n in range(5, 30))
