"""Traffic in the synthetic city: the one congestion model trips are drawn from and sensors read.

The trip generator (models/ride_duration/data.py) slows each trip by the traffic at its pickup
and dropoff; the sensor service (services/city/sensor.py) reports the same traffic for a place
and a time. So a sensor reading carries real signal about a trip's duration, part of which no
request field can give: the *live* factor.

A zone's traffic speed at a time is

    FREE_FLOW_MPH[borough] x time_factor(hour, weekend) x ZONE_CONGESTION[zone] x live(borough, t)

- ``time_factor``: the weekday / weekend profile by hour (rush hours slow, nights fast): what the
  hour of a request already tells a model;
- ``ZONE_CONGESTION``: fixed per zone (Midtown slowest), what the zone id tells a model;
- ``live(borough, hour slot)``: the day's traffic (incidents, weather, events), a seeded lognormal
  factor per borough and hour, the same for every caller and every run, known to no request
  field: only a sensor (or hindsight) sees it.

Everything is a pure function of its inputs (a hash, not a random stream), vectorised over numpy
arrays for training and cheap on one value for the service.

    speed = traffic_speed_mph(np.array([161]), np.array(["2024-03-14T08:30"], "datetime64[s]"))
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from services.domain.taxi.zones import (
    BRONX,
    BROOKLYN,
    EWR,
    MANHATTAN,
    N_ZONES,
    QUEENS,
    STATEN_ISLAND,
    UNKNOWN,
    ZONE_BOROUGH,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

WORLD_SEED: Final = 20_240_101
"""The seed of the city (also the trip generator's world seed): traffic never changes with a run."""
LIVE_SIGMA: Final = 0.2
"""Spread (lognormal sigma) of the live factor."""
LIVE_RANGE: Final = (0.55, 1.6)
"""The live factor is clipped to this range (no city stops, none is empty)."""
MIDTOWN_ZONES: Final = (48, 50, 100, 161, 162, 163, 164, 170, 186, 230, 233, 229, 68, 90, 234)

FREE_FLOW_MPH: Final = np.array(
    [18.0, 14.0, 20.0, 24.0, 22.0, 28.0, 30.0]  # indexed by borough code (zones.BOROUGHS)
)
"""Speed of a borough's streets with no traffic, by borough code."""

# fmt: off
_WEEKDAY_PROFILE: Final = np.array(
    [1.45, 1.5, 1.5, 1.5, 1.45, 1.35, 1.1, 0.78, 0.68, 0.74, 0.85, 0.84,
     0.82, 0.82, 0.8, 0.72, 0.66, 0.64, 0.68, 0.8, 0.92, 1.0, 1.1, 1.25]
)
_WEEKEND_PROFILE: Final = np.array(
    [1.3, 1.35, 1.4, 1.45, 1.5, 1.5, 1.5, 1.45, 1.35, 1.2, 1.05, 0.95,
     0.9, 0.88, 0.88, 0.9, 0.92, 0.92, 0.9, 0.9, 0.95, 1.0, 1.05, 1.15]
)
# fmt: on

_BOROUGH_CODES: Final = (UNKNOWN, MANHATTAN, BROOKLYN, QUEENS, BRONX, STATEN_ISLAND, EWR)
assert len(FREE_FLOW_MPH) == max(_BOROUGH_CODES) + 1


def time_speed_factor(hour: IntArray, weekend: npt.NDArray[np.bool_]) -> FloatArray:
    """The hour-of-day speed factor (weekday or weekend profile)."""
    return np.where(weekend, _WEEKEND_PROFILE[hour], _WEEKDAY_PROFILE[hour])


def _zone_congestion() -> FloatArray:
    rng = np.random.default_rng([WORLD_SEED, 1])
    congestion = np.clip(rng.lognormal(0.0, 0.12, size=N_ZONES + 1), 0.75, 1.3)
    congestion[list(MIDTOWN_ZONES)] *= 0.72
    congestion.setflags(write=False)
    return congestion


ZONE_CONGESTION: Final[FloatArray] = _zone_congestion()
"""Speed multiplier per zone id (0..265), fixed for the city; Midtown is the slowest."""


def _splitmix64(keys: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """A well-mixed 64-bit hash of each key (splitmix64's finaliser)."""
    with np.errstate(over="ignore"):
        z = keys + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _unit(keys: npt.NDArray[np.uint64]) -> FloatArray:
    """A uniform number in (0, 1) per key."""
    return ((_splitmix64(keys) >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)


def hour_slots(at: npt.NDArray[np.datetime64]) -> IntArray:
    """Hours since the epoch of local times (the live factor's time step)."""
    return at.astype("datetime64[h]").astype(np.int64)


_LIVE_SALT: Final = np.uint64((WORLD_SEED << 40) % (1 << 64))


def live_factor(borough: IntArray, slot: IntArray) -> FloatArray:
    """The day's traffic of a borough in an hour slot: lognormal(0, LIVE_SIGMA), clipped."""
    base = (slot.astype(np.uint64) * np.uint64(8) + borough.astype(np.uint64)) * np.uint64(2)
    base = base + _LIVE_SALT
    u1, u2 = _unit(base), _unit(base + np.uint64(1))
    normal = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)  # Box-Muller
    return np.asarray(np.clip(np.exp(LIVE_SIGMA * normal), *LIVE_RANGE), dtype=np.float64)


def traffic_speed_mph(zone: IntArray, at: npt.NDArray[np.datetime64]) -> FloatArray:
    """The traffic speed in a zone at a local time (see the module docstring)."""
    zone = np.clip(np.asarray(zone, dtype=np.int64), 0, N_ZONES)
    borough = ZONE_BOROUGH[zone].astype(np.int64)
    hours = at.astype("datetime64[h]")
    hour = (hours.astype(np.int64) % 24).astype(np.int64)
    dow = (at.astype("datetime64[D]").astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    factor = time_speed_factor(hour, dow >= 5)
    live = live_factor(borough, hour_slots(at))
    return np.asarray(FREE_FLOW_MPH[borough] * factor * ZONE_CONGESTION[zone] * live)


def conditions(speed_mph: float, free_flow_mph: float) -> str:
    """A word for a speed against its free flow: free, moderate, heavy or jammed."""
    ratio = speed_mph / free_flow_mph
    if ratio >= 0.9:
        return "free"
    if ratio >= 0.65:
        return "moderate"
    if ratio >= 0.45:
        return "heavy"
    return "jammed"
