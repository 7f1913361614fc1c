"""Feature matrix built by the service: the shared feature code, New York local time, defaults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np

from services.domain.taxi import features
from services.domain.taxi.times import new_york_local
from services.ride_duration.predictor import ride_feature_matrix
from services.ride_duration.schemas import Ride


def ride(**changes: object) -> Ride:
    base: dict[str, object] = {
        "pickup_datetime": datetime(2024, 3, 14, 8, 30),
        "pickup_location_id": 132,
        "dropoff_location_id": 236,
        "trip_distance": 17.5,
        "passenger_count": 2,
    }
    return Ride.model_validate({**base, **changes})


def test_aware_times_become_new_york_local() -> None:
    utc_moment = datetime(2024, 7, 1, 16, 0, tzinfo=UTC)
    assert new_york_local(utc_moment) == datetime(2024, 7, 1, 12, 0)  # EDT = UTC-4
    offset = datetime(2024, 1, 1, 10, 0, tzinfo=timezone(timedelta(hours=1)))
    assert new_york_local(offset) == datetime(2024, 1, 1, 4, 0)  # EST = UTC-5


def test_matrix_matches_the_shared_feature_code() -> None:
    rides = [ride(), ride(ratecode_id=2, payment_type=2, pickup_location_id=1)]
    matrix = ride_feature_matrix(rides)
    assert matrix.dtype == np.float32
    assert matrix.shape == (2, features.N_FEATURES)
    expected = features.ride_features(
        pickup_datetime=np.array(["2024-03-14T08:30", "2024-03-14T08:30"], dtype="datetime64[s]"),
        pickup_location_id=np.array([132, 1]),
        dropoff_location_id=np.array([236, 236]),
        trip_distance=np.array([17.5, 17.5]),
        passenger_count=np.array([2, 2]),
        ratecode_id=np.array([features.DEFAULT_RATECODE_ID, 2]),
        payment_type=np.array([features.DEFAULT_PAYMENT_TYPE, 2]),
    )
    np.testing.assert_array_equal(matrix, expected)


def test_one_ride_equals_its_row_in_a_batch() -> None:
    rides = [ride(trip_distance=float(d)) for d in (1, 5, 9)]
    batch = ride_feature_matrix(rides)
    np.testing.assert_array_equal(ride_feature_matrix([rides[1]])[0], batch[1])


def test_row_path_and_vectorized_path_agree_exactly() -> None:
    rng = np.random.default_rng(3)
    rides = [
        ride(
            pickup_datetime=datetime(2024, 1, 1) + timedelta(minutes=int(m)),
            pickup_location_id=int(pu),
            dropoff_location_id=int(do),
            trip_distance=float(d),
            ratecode_id=[1, 2, 5, None][i % 4],
            payment_type=[None, 1, 2, 0][i % 4],
        )
        for i, (m, pu, do, d) in enumerate(
            zip(
                rng.integers(0, 60 * 24 * 365, 200),
                rng.integers(1, 266, 200),
                rng.integers(1, 266, 200),
                rng.uniform(0.01, 60, 200),
                strict=True,
            )
        )
    ]
    vectorized = ride_feature_matrix(rides)  # 200 rides: the numpy path
    one_by_one = np.vstack([ride_feature_matrix([r]) for r in rides])  # the row path
    np.testing.assert_array_equal(one_by_one, vectorized)
