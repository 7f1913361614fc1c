"""Ride features: THE feature code shared by ride-duration training and serving.

``ride_features`` turns trip request fields (numpy arrays, one element per ride) into the float32
matrix the ride-duration model takes as its ``features`` input, in the column order of
``FEATURE_NAMES``. Training (models/ride_duration) and the ride-duration service both call it, so
the model always sees exactly the features it was trained on.

Conventions:
- ``pickup_datetime`` is local New York time (as in the TLC files), any ``datetime64`` unit.
- Zone ids outside 1..263 (including 264/265 "Unknown") map to the unknown zone (borough 0,
  centroid (0, 0), not an airport).
- Optional fields have defaults: ``passenger_count=1``, ``ratecode_id=1`` (standard rate),
  ``payment_type=1`` (credit card); ``None`` (or NaN elements) take the default.
- ``trip_distance`` is in miles (the trip's planned or metered distance); NaN or negative -> 0.

Two entry points, one definition: ``ride_features`` (vectorized numpy, for training, batch
scoring and batched requests) and ``ride_feature_row`` (plain Python for one ride, ~10x cheaper
than numpy on 1-element arrays, for the online path). Both read the same tables and constants,
and a test checks they agree exactly on random rides.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Final

import numpy as np
import numpy.typing as npt

from services.domain.taxi.zones import (
    MANHATTAN,
    N_ZONES,
    ZONE_AIRPORT,
    ZONE_BOROUGH,
    ZONE_XY,
)

FEATURE_NAMES: Final[tuple[str, ...]] = (
    "trip_distance",
    "log_trip_distance",
    "hour",
    "hour_sin",
    "hour_cos",
    "day_of_week",
    "is_weekend",
    "is_morning_rush",
    "is_evening_rush",
    "is_night",
    "pickup_borough",
    "dropoff_borough",
    "pickup_airport",
    "dropoff_airport",
    "pickup_x",
    "pickup_y",
    "dropoff_x",
    "dropoff_y",
    "centroid_distance",
    "distance_ratio",
    "same_zone",
    "same_borough",
    "both_manhattan",
    "passenger_count",
    "ratecode_id",
    "payment_type",
)
"""Column names of the feature matrix, in order."""

N_FEATURES: Final = len(FEATURE_NAMES)

SENSOR_FEATURE: Final = "traffic_speed_mph"
"""The sensor-aware model's extra last column: the sensor's traffic speed at pickup (mph)."""
N_SENSOR_FEATURES: Final = N_FEATURES + 1


def with_traffic(x: npt.NDArray[np.float32], speed_mph: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """The sensor-aware model's input: ``x`` (n, N_FEATURES) and the traffic speed per row."""
    speed = np.asarray(speed_mph, dtype=np.float32).reshape(-1, 1)
    return np.hstack([x.astype(np.float32, copy=False), speed])


DEFAULT_PASSENGER_COUNT: Final = 1
DEFAULT_RATECODE_ID: Final = 1
"""TLC RatecodeID 1 = standard rate (2 = JFK flat fare, 3 = Newark, 4 = Nassau/Westchester,
5 = negotiated, 6 = group ride)."""
DEFAULT_PAYMENT_TYPE: Final = 1
"""TLC payment_type 1 = credit card (2 = cash, 3 = no charge, 4 = dispute)."""

MORNING_RUSH_HOURS: Final = (7, 10)
"""Weekday morning rush: 07:00 <= t < 10:00."""
EVENING_RUSH_HOURS: Final = (16, 20)
"""Weekday evening rush: 16:00 <= t < 20:00."""
NIGHT_HOURS: Final = (0, 6)
"""Night (any day): 00:00 <= t < 06:00."""

_SECONDS_PER_DAY: Final = 86_400
_TWO_PI_OVER_24: Final = 2.0 * np.pi / 24.0
_MIN_CENTROID_DISTANCE: Final = 0.5  # miles; keeps distance_ratio finite for same-zone trips

FloatArray = npt.NDArray[np.float32]

#: Centroid distance (float32 miles) between every pair of zone table rows.
_CENTROID_DISTANCE: Final[npt.NDArray[np.float32]] = np.sqrt(
    ((ZONE_XY[:, None, :] - ZONE_XY[None, :, :]) ** 2).sum(axis=2)
).astype(np.float32)

# The same tables as Python lists, for the one-row path (indexing numpy scalars is slow).
_BOROUGH_LIST: Final[list[int]] = ZONE_BOROUGH.tolist()
_AIRPORT_LIST: Final[list[float]] = ZONE_AIRPORT.tolist()
_XY_LIST: Final[list[list[float]]] = ZONE_XY.tolist()
_CENTROID_DISTANCE_LIST: Final[list[list[float]]] = _CENTROID_DISTANCE.tolist()
_EPOCH: Final = datetime(1970, 1, 1)
_ONE_SECOND: Final = timedelta(seconds=1)


def _as_float(values: npt.ArrayLike | None, n: int, default: float) -> npt.NDArray[np.float64]:
    if values is None:
        return np.full(n, default, dtype=np.float64)
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.shape[0] != n:
        raise ValueError(f"expected {n} values, got {arr.shape[0]}")
    if np.isnan(arr).any():
        arr = np.where(np.isnan(arr), default, arr)
    return arr


def _zone_index(values: npt.ArrayLike, n: int) -> npt.NDArray[np.intp]:
    arr = np.asarray(values).reshape(-1)
    if arr.shape[0] != n:
        raise ValueError(f"expected {n} zone ids, got {arr.shape[0]}")
    if arr.dtype.kind == "f":
        arr = np.nan_to_num(arr, nan=0.0)
    idx = arr.astype(np.intp, copy=False)
    # Out-of-range ids -> 0 (the unknown row of the zone table).
    return np.where((idx >= 1) & (idx <= N_ZONES), idx, 0)


def ride_features(
    *,
    pickup_datetime: npt.ArrayLike,
    pickup_location_id: npt.ArrayLike,
    dropoff_location_id: npt.ArrayLike,
    trip_distance: npt.ArrayLike,
    passenger_count: npt.ArrayLike | None = None,
    ratecode_id: npt.ArrayLike | None = None,
    payment_type: npt.ArrayLike | None = None,
) -> FloatArray:
    """Feature matrix, float32 of shape (n, N_FEATURES), columns as in ``FEATURE_NAMES``.

    Every argument holds one element per ride (numpy arrays; lists work too). ``pickup_datetime``
    must be ``datetime64`` (or convertible, e.g. ISO strings). Optional fields: see the module
    docstring for their defaults.
    """
    seconds = np.asarray(pickup_datetime, dtype="datetime64[s]").reshape(-1).astype(np.int64)
    n = seconds.shape[0]
    distance = _as_float(trip_distance, n, 0.0)
    distance = np.maximum(distance, 0.0)
    pu = _zone_index(pickup_location_id, n)
    do = _zone_index(dropoff_location_id, n)

    second_of_day = seconds % _SECONDS_PER_DAY
    hour = second_of_day / 3600.0
    whole_hour = second_of_day // 3600
    day_of_week = (seconds // _SECONDS_PER_DAY + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    weekend = day_of_week >= 5
    weekday = ~weekend

    pu_borough = ZONE_BOROUGH[pu]
    do_borough = ZONE_BOROUGH[do]
    pu_xy = ZONE_XY[pu]
    do_xy = ZONE_XY[do]
    centroid_distance = _CENTROID_DISTANCE[pu, do]

    out = np.empty((n, N_FEATURES), dtype=np.float32)
    out[:, 0] = distance
    out[:, 1] = np.log1p(distance)
    out[:, 2] = hour
    angle = hour * _TWO_PI_OVER_24
    out[:, 3] = np.sin(angle)
    out[:, 4] = np.cos(angle)
    out[:, 5] = day_of_week
    out[:, 6] = weekend
    out[:, 7] = (
        weekday & (whole_hour >= MORNING_RUSH_HOURS[0]) & (whole_hour < MORNING_RUSH_HOURS[1])
    )
    out[:, 8] = (
        weekday & (whole_hour >= EVENING_RUSH_HOURS[0]) & (whole_hour < EVENING_RUSH_HOURS[1])
    )
    out[:, 9] = (whole_hour >= NIGHT_HOURS[0]) & (whole_hour < NIGHT_HOURS[1])
    out[:, 10] = pu_borough
    out[:, 11] = do_borough
    out[:, 12] = ZONE_AIRPORT[pu]
    out[:, 13] = ZONE_AIRPORT[do]
    out[:, 14:16] = pu_xy
    out[:, 16:18] = do_xy
    out[:, 18] = centroid_distance
    out[:, 19] = distance / np.maximum(centroid_distance, _MIN_CENTROID_DISTANCE)
    out[:, 20] = (pu == do) & (pu != 0)
    out[:, 21] = (pu_borough == do_borough) & (pu_borough != 0)
    out[:, 22] = (pu_borough == MANHATTAN) & (do_borough == MANHATTAN)
    out[:, 23] = _as_float(passenger_count, n, DEFAULT_PASSENGER_COUNT)
    out[:, 24] = _as_float(ratecode_id, n, DEFAULT_RATECODE_ID)
    out[:, 25] = _as_float(payment_type, n, DEFAULT_PAYMENT_TYPE)
    return out


def _zone_row(zone: int) -> int:
    return zone if 1 <= zone <= N_ZONES else 0


def ride_feature_row(
    *,
    pickup_datetime: datetime,
    pickup_location_id: int,
    dropoff_location_id: int,
    trip_distance: float,
    passenger_count: int | None = None,
    ratecode_id: int | None = None,
    payment_type: int | None = None,
) -> list[float]:
    """The features of one ride, equal to ``ride_features`` on 1-element arrays.

    ``pickup_datetime`` is naive New York local time. Returns N_FEATURES floats (make them a
    float32 array for the model).
    """
    seconds = (pickup_datetime.replace(tzinfo=None) - _EPOCH) // _ONE_SECOND
    distance = trip_distance if trip_distance == trip_distance else 0.0  # NaN -> 0
    distance = max(distance, 0.0)
    pu = _zone_row(pickup_location_id)
    do = _zone_row(dropoff_location_id)
    second_of_day = seconds % _SECONDS_PER_DAY
    hour = second_of_day / 3600.0
    whole_hour = second_of_day // 3600
    day_of_week = (seconds // _SECONDS_PER_DAY + 3) % 7
    weekday = day_of_week < 5
    angle = hour * _TWO_PI_OVER_24
    pu_borough = _BOROUGH_LIST[pu]
    do_borough = _BOROUGH_LIST[do]
    centroid_distance = _CENTROID_DISTANCE_LIST[pu][do]
    return [
        distance,
        math.log1p(distance),
        hour,
        math.sin(angle),
        math.cos(angle),
        float(day_of_week),
        float(not weekday),
        float(weekday and MORNING_RUSH_HOURS[0] <= whole_hour < MORNING_RUSH_HOURS[1]),
        float(weekday and EVENING_RUSH_HOURS[0] <= whole_hour < EVENING_RUSH_HOURS[1]),
        float(NIGHT_HOURS[0] <= whole_hour < NIGHT_HOURS[1]),
        float(pu_borough),
        float(do_borough),
        _AIRPORT_LIST[pu],
        _AIRPORT_LIST[do],
        *_XY_LIST[pu],
        *_XY_LIST[do],
        centroid_distance,
        distance / max(centroid_distance, _MIN_CENTROID_DISTANCE),
        float(pu == do and pu != 0),
        float(pu_borough == do_borough and pu_borough != 0),
        float(pu_borough == MANHATTAN and do_borough == MANHATTAN),
        float(DEFAULT_PASSENGER_COUNT if passenger_count is None else passenger_count),
        float(DEFAULT_RATECODE_ID if ratecode_id is None else ratecode_id),
        float(DEFAULT_PAYMENT_TYPE if payment_type is None else payment_type),
    ]
