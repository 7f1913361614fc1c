"""Where the zones are on a map: each zone's centroid as latitude / longitude, and back.

The zone table (:mod:`services.domain.taxi.zones`) places centroids in miles from an origin at
the south tip of Manhattan (x east, y north). Here they become WGS 84 degrees around the real
origin (the Battery, 40.7033 N 74.0170 W) with the local scale (69.0 miles per degree of
latitude, 69.17 x cos(latitude) per degree of longitude): plausible New York coordinates for a
synthetic city, not the real TLC centroids.

    latitude, longitude = zone_lat_lng(161)
    nearest_zone(latitude, longitude)   # -> 161
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np

from services.domain.taxi.zones import N_ZONES, ZONE_KNOWN, ZONE_XY

ORIGIN_LATITUDE: Final = 40.7033
ORIGIN_LONGITUDE: Final = -74.0170
MILES_PER_DEGREE_LATITUDE: Final = 69.0
MILES_PER_DEGREE_LONGITUDE: Final = 69.17 * math.cos(math.radians(ORIGIN_LATITUDE))
LATITUDE_RANGE: Final = (40.3, 41.1)
"""Latitudes of the city and its surroundings (the sensor's bounds)."""
LONGITUDE_RANGE: Final = (-74.5, -73.5)
"""Longitudes of the city and its surroundings (the sensor's bounds)."""

_KNOWN_IDS: Final = np.flatnonzero(ZONE_KNOWN).astype(np.int64)
_KNOWN_XY: Final = ZONE_XY[_KNOWN_IDS].astype(np.float64)


def zone_lat_lng(zone: int) -> tuple[float, float]:
    """The centroid of a known zone (1..263) as (latitude, longitude), rounded to 6 decimals."""
    if not (1 <= zone <= N_ZONES and ZONE_KNOWN[zone]):
        raise ValueError(f"zone {zone} has no place (Unknown)")
    x, y = (float(v) for v in ZONE_XY[zone])
    return (
        round(ORIGIN_LATITUDE + y / MILES_PER_DEGREE_LATITUDE, 6),
        round(ORIGIN_LONGITUDE + x / MILES_PER_DEGREE_LONGITUDE, 6),
    )


def nearest_zone(latitude: float, longitude: float) -> int:
    """The known zone whose centroid is nearest to a point."""
    x = (longitude - ORIGIN_LONGITUDE) * MILES_PER_DEGREE_LONGITUDE
    y = (latitude - ORIGIN_LATITUDE) * MILES_PER_DEGREE_LATITUDE
    squared = (_KNOWN_XY[:, 0] - x) ** 2 + (_KNOWN_XY[:, 1] - y) ** 2
    return int(_KNOWN_IDS[int(np.argmin(squared))])
