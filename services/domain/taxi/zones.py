"""NYC TLC taxi zone table (LocationID 1..265) for training and serving.

Each zone carries its borough (the real TLC assignment of ``taxi_zone_lookup.csv``), an airport
flag (1 = EWR Newark, 132 = JFK, 138 = LaGuardia) and a *synthetic* centroid ``(x, y)`` in miles.
The centroids are not the real coordinates: they are derived deterministically (sha256 of the
zone id) inside a rough per-borough area, with Manhattan zones ordered south to north along the
island, so that distances between zones are plausible (Midtown-JFK ~ 15 mi, same-borough trips
short). Zones 264 ("Unknown") and 265 ("N/A" / outside NYC) have borough ``Unknown``, no
centroid of their own (0, 0) and ``known = False``.

Pure numpy/stdlib; the arrays are indexed by LocationID (row 0 is an unused "unknown" row, so
out-of-range ids can be mapped to 0 safely).
"""

from __future__ import annotations

import hashlib
import math
from typing import Final

import numpy as np
import numpy.typing as npt

N_ZONES: Final = 265
"""Zone ids are 1..N_ZONES."""

BOROUGHS: Final[tuple[str, ...]] = (
    "Unknown",
    "Manhattan",
    "Brooklyn",
    "Queens",
    "Bronx",
    "Staten Island",
    "EWR",
)
"""Borough names; a zone's borough code is its index in this tuple."""

UNKNOWN, MANHATTAN, BROOKLYN, QUEENS, BRONX, STATEN_ISLAND, EWR = range(len(BOROUGHS))

EWR_ZONE: Final = 1
JFK_ZONE: Final = 132
LGA_ZONE: Final = 138
AIRPORT_ZONES: Final = frozenset({EWR_ZONE, JFK_ZONE, LGA_ZONE})
UNKNOWN_ZONES: Final = frozenset({264, 265})

# fmt: off
# Manhattan zones ordered roughly south -> north (drives the synthetic y coordinate).
_MANHATTAN_SOUTH_TO_NORTH: Final[tuple[int, ...]] = (
    103, 104, 105, 12, 13, 88, 87, 261, 209, 231, 45, 232, 125, 211, 144, 148, 114, 249, 113,
    79, 4, 158, 224, 234, 107, 90, 68, 246, 186, 164, 100, 170, 137, 233, 162, 161, 230, 48, 50,
    163, 229, 142, 143, 202, 141, 140, 237, 239, 43, 236, 263, 262, 238, 24, 151, 75, 166, 41,
    74, 194, 152, 42, 116, 244, 120, 243, 127, 128, 153,
)
_BROOKLYN: Final[tuple[int, ...]] = (
    11, 14, 17, 21, 22, 25, 26, 29, 33, 34, 35, 36, 37, 39, 40, 49, 52, 54, 55, 61, 62, 63, 65,
    66, 67, 71, 72, 76, 77, 80, 85, 89, 91, 97, 106, 108, 111, 112, 123, 133, 149, 150, 154,
    155, 165, 177, 178, 181, 188, 189, 190, 195, 210, 217, 222, 225, 227, 228, 255, 256, 257,
)
_QUEENS: Final[tuple[int, ...]] = (
    2, 7, 8, 9, 10, 15, 16, 19, 27, 28, 30, 38, 53, 56, 57, 64, 70, 73, 82, 83, 86, 92, 93, 95,
    96, 98, 101, 102, 117, 121, 122, 124, 129, 130, 131, 132, 134, 135, 138, 139, 145, 146, 157,
    160, 171, 173, 175, 179, 180, 191, 192, 193, 196, 197, 198, 201, 203, 205, 207, 215, 216,
    218, 219, 223, 226, 252, 253, 258, 260,
)
_BRONX: Final[tuple[int, ...]] = (
    3, 18, 20, 31, 32, 46, 47, 51, 58, 59, 60, 69, 78, 81, 94, 119, 126, 136, 147, 159, 167,
    168, 169, 174, 182, 183, 184, 185, 199, 200, 208, 212, 213, 220, 235, 240, 241, 242, 247,
    248, 250, 254, 259,
)
_STATEN_ISLAND: Final[tuple[int, ...]] = (
    5, 6, 23, 44, 84, 99, 109, 110, 115, 118, 156, 172, 176, 187, 204, 206, 214, 221, 245, 251,
)
# fmt: on

# Rough area of each borough: centre (x, y) and half extents (miles); origin ~ lower Manhattan.
_AREAS: Final[dict[int, tuple[float, float, float, float]]] = {
    BROOKLYN: (2.5, -4.5, 3.5, 3.5),
    QUEENS: (9.0, 1.5, 4.5, 4.0),
    BRONX: (6.0, 12.0, 3.0, 2.5),
    STATEN_ISLAND: (-6.5, -9.0, 3.0, 3.0),
}
_FIXED_CENTROIDS: Final[dict[int, tuple[float, float]]] = {
    EWR_ZONE: (-6.0, 0.0),
    JFK_ZONE: (11.0, -4.5),
    LGA_ZONE: (9.5, 8.0),
}


def _unit(zone: int, salt: str) -> float:
    """Deterministic pseudo-random number in [0, 1) for a zone (independent of numpy's RNG)."""
    digest = hashlib.sha256(f"taxi-zone:{zone}:{salt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def _build() -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    borough = np.zeros(N_ZONES + 1, dtype=np.int8)
    xy = np.zeros((N_ZONES + 1, 2), dtype=np.float32)
    borough[EWR_ZONE] = EWR
    for ids, code in (
        (_MANHATTAN_SOUTH_TO_NORTH, MANHATTAN),
        (_BROOKLYN, BROOKLYN),
        (_QUEENS, QUEENS),
        (_BRONX, BRONX),
        (_STATEN_ISLAND, STATEN_ISLAND),
    ):
        borough[list(ids)] = code
    # Manhattan: a thin island running NNE, ~13 mi long, 2 mi wide.
    n_man = len(_MANHATTAN_SOUTH_TO_NORTH)
    for rank, zone in enumerate(_MANHATTAN_SOUTH_TO_NORTH):
        t = rank / (n_man - 1)
        along = 13.0 * t + 0.4 * (_unit(zone, "a") - 0.5)
        across = 2.0 * (_unit(zone, "b") - 0.5)
        angle = math.radians(29.0)  # the street grid is tilted ~29 degrees from true north
        xy[zone] = (
            along * math.sin(angle) + across * math.cos(angle),
            along * math.cos(angle) - across * math.sin(angle),
        )
    for code, (cx, cy, hx, hy) in _AREAS.items():
        for zone in np.flatnonzero(borough == code):
            z = int(zone)
            xy[z] = (cx + hx * (2.0 * _unit(z, "x") - 1.0), cy + hy * (2.0 * _unit(z, "y") - 1.0))
    for zone, point in _FIXED_CENTROIDS.items():
        xy[zone] = point
    airport = np.zeros(N_ZONES + 1, dtype=np.float32)
    airport[list(AIRPORT_ZONES)] = 1.0
    return borough, xy, airport


_TABLES = _build()
ZONE_BOROUGH: Final[npt.NDArray[np.int8]] = _TABLES[0]
ZONE_XY: Final[npt.NDArray[np.float32]] = _TABLES[1]
ZONE_AIRPORT: Final[npt.NDArray[np.float32]] = _TABLES[2]
"""Arrays indexed by LocationID (0..265): borough code, synthetic centroid (x, y) in miles,
airport flag (1.0/0.0). Row 0, 264 and 265 are the unknown zone."""

ZONE_KNOWN: Final[npt.NDArray[np.bool_]] = ZONE_BOROUGH != UNKNOWN
"""True for the zones with a real borough (1..263)."""

for _arr in (ZONE_BOROUGH, ZONE_XY, ZONE_AIRPORT, ZONE_KNOWN):
    _arr.setflags(write=False)


def borough_of(zone: int) -> str:
    """Borough name of a LocationID ("Unknown" for 264, 265 and out-of-range ids)."""
    if not 1 <= zone <= N_ZONES:
        return BOROUGHS[UNKNOWN]
    return BOROUGHS[int(ZONE_BOROUGH[zone])]


def zone_ids(borough: str) -> npt.NDArray[np.int64]:
    """All LocationIDs of a borough (by name, as in ``BOROUGHS``)."""
    code = BOROUGHS.index(borough)
    ids = np.flatnonzero(ZONE_BOROUGH == code)
    return ids[ids > 0].astype(np.int64)


def centroid_distance(zone_a: int, zone_b: int) -> float:
    """Straight-line distance in miles between two zones' synthetic centroids."""
    dx, dy = ZONE_XY[zone_a] - ZONE_XY[zone_b]
    return float(math.hypot(float(dx), float(dy)))
