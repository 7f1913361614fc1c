"""Unit tests of the shared ride feature code."""

from __future__ import annotations

import numpy as np
import pytest

from services.domain.taxi.features import FEATURE_NAMES, N_FEATURES, ride_features

COL = {name: i for i, name in enumerate(FEATURE_NAMES)}


def _features(**overrides: object) -> np.ndarray:
    kwargs: dict[str, object] = {
        "pickup_datetime": np.array(["2024-03-04T08:30:00"], dtype="datetime64[us]"),  # Monday
        "pickup_location_id": np.array([161]),
        "dropoff_location_id": np.array([132]),
        "trip_distance": np.array([17.2]),
    }
    kwargs.update(overrides)
    return ride_features(**kwargs)


def test_shape_dtype_and_names() -> None:
    out = _features()
    assert out.shape == (1, N_FEATURES) and out.dtype == np.float32
    assert len(set(FEATURE_NAMES)) == N_FEATURES == len(FEATURE_NAMES)
    assert np.isfinite(out).all()


def test_known_values() -> None:
    row = _features()[0]
    assert row[COL["trip_distance"]] == pytest.approx(17.2)
    assert row[COL["log_trip_distance"]] == pytest.approx(np.log1p(17.2), rel=1e-6)
    assert row[COL["hour"]] == pytest.approx(8.5)
    assert row[COL["day_of_week"]] == 0 and row[COL["is_weekend"]] == 0
    assert row[COL["is_morning_rush"]] == 1 and row[COL["is_evening_rush"]] == 0
    assert row[COL["is_night"]] == 0
    assert row[COL["pickup_airport"]] == 0 and row[COL["dropoff_airport"]] == 1
    assert row[COL["pickup_borough"]] == 1 and row[COL["dropoff_borough"]] == 3
    assert row[COL["same_zone"]] == 0 and row[COL["both_manhattan"]] == 0
    # Defaults of the optional fields.
    assert row[COL["passenger_count"]] == 1
    assert row[COL["ratecode_id"]] == 1
    assert row[COL["payment_type"]] == 1


def test_time_flags() -> None:
    times = np.array(
        [
            "2024-03-04T08:30:00",  # Monday morning rush
            "2024-03-08T17:59:59",  # Friday evening rush
            "2024-03-09T08:30:00",  # Saturday: no rush hour
            "2024-03-10T03:00:00",  # Sunday night
            "2024-03-05T10:00:00",  # Tuesday, rush just over
        ],
        dtype="datetime64[s]",
    )
    n = len(times)
    out = _features(
        pickup_datetime=times,
        pickup_location_id=np.full(n, 236),
        dropoff_location_id=np.full(n, 236),
        trip_distance=np.full(n, 0.8),
    )
    assert out[:, COL["day_of_week"]].tolist() == [0, 4, 5, 6, 1]
    assert out[:, COL["is_weekend"]].tolist() == [0, 0, 1, 1, 0]
    assert out[:, COL["is_morning_rush"]].tolist() == [1, 0, 0, 0, 0]
    assert out[:, COL["is_evening_rush"]].tolist() == [0, 1, 0, 0, 0]
    assert out[:, COL["is_night"]].tolist() == [0, 0, 0, 1, 0]
    assert (out[:, COL["same_zone"]] == 1).all() and (out[:, COL["both_manhattan"]] == 1).all()
    np.testing.assert_allclose(
        out[:, COL["hour_sin"]] ** 2 + out[:, COL["hour_cos"]] ** 2, 1.0, rtol=1e-6
    )


def test_unknown_zones_nans_and_bad_values() -> None:
    out = _features(
        pickup_location_id=np.array([264]),
        dropoff_location_id=np.array([9999]),
        trip_distance=np.array([np.nan]),
        passenger_count=np.array([np.nan]),
        ratecode_id=np.array([2.0]),
        payment_type=np.array([2]),
    )[0]
    assert out[COL["pickup_borough"]] == 0 and out[COL["dropoff_borough"]] == 0
    assert out[COL["same_zone"]] == 0 and out[COL["same_borough"]] == 0
    assert out[COL["trip_distance"]] == 0
    assert out[COL["passenger_count"]] == 1
    assert out[COL["ratecode_id"]] == 2 and out[COL["payment_type"]] == 2
    assert np.isfinite(out).all()


def test_mismatched_lengths_are_rejected() -> None:
    with pytest.raises(ValueError):
        _features(pickup_location_id=np.array([1, 2]))


def test_single_row_equals_batch_row() -> None:
    rng = np.random.default_rng(0)
    n = 200
    start = np.datetime64("2024-01-01T00:00:00", "s").astype(np.int64)
    batch = {
        "pickup_datetime": (start + rng.integers(0, 90 * 86400, n)).astype("datetime64[s]"),
        "pickup_location_id": rng.integers(1, 266, n),
        "dropoff_location_id": rng.integers(1, 266, n),
        "trip_distance": rng.gamma(2.0, 2.0, n),
        "passenger_count": rng.integers(0, 7, n).astype(float),
        "ratecode_id": rng.choice([1.0, 2.0, 5.0], n),
        "payment_type": rng.integers(0, 5, n),
    }
    full = ride_features(**batch)
    for i in range(0, n, 17):
        single = ride_features(**{k: v[i : i + 1] for k, v in batch.items()})
        np.testing.assert_array_equal(single[0], full[i])


def test_row_function_equals_vectorized_on_random_rides() -> None:
    from datetime import datetime, timedelta

    from services.domain.taxi.features import ride_feature_row

    rng = np.random.default_rng(11)
    n = 5000
    seconds = rng.integers(1_500_000_000, 1_900_000_000, n)
    pu = rng.integers(-2, 270, n)  # includes out-of-range ids
    do = rng.integers(0, 266, n)
    distance = np.round(rng.exponential(3.0, n), 2)
    passengers = rng.integers(1, 7, n)
    vectorized = ride_features(
        pickup_datetime=seconds.astype("datetime64[s]"),
        pickup_location_id=pu,
        dropoff_location_id=do,
        trip_distance=distance,
        passenger_count=passengers,
        ratecode_id=np.full(n, 2),
        payment_type=np.full(n, 2),
    )
    rows = np.array(
        [
            ride_feature_row(
                pickup_datetime=datetime(1970, 1, 1) + timedelta(seconds=int(s)),
                pickup_location_id=int(a),
                dropoff_location_id=int(b),
                trip_distance=float(d),
                passenger_count=int(p),
                ratecode_id=2,
                payment_type=2,
            )
            for s, a, b, d, p in zip(seconds, pu, do, distance, passengers, strict=True)
        ],
        dtype=np.float32,
    )
    np.testing.assert_array_equal(rows, vectorized)
