"""The city's congestion model: pure, seeded, the live factor's spread, and the places table."""

from __future__ import annotations

import numpy as np
import pytest

from services.domain.taxi import places, traffic, zones


def test_the_live_factor_is_a_pure_function_with_the_configured_spread() -> None:
    slots = np.arange(50_000)
    boroughs = np.full(slots.shape, zones.MANHATTAN)
    first = traffic.live_factor(boroughs, slots)
    assert np.array_equal(first, traffic.live_factor(boroughs, slots))  # no hidden state
    assert np.log(first).std() == pytest.approx(traffic.LIVE_SIGMA, abs=0.01)
    assert first.min() >= traffic.LIVE_RANGE[0] and first.max() <= traffic.LIVE_RANGE[1]
    # hour to hour and borough to borough the factors are independent
    assert abs(np.corrcoef(np.log(first[:-1]), np.log(first[1:]))[0, 1]) < 0.03
    queens = traffic.live_factor(np.full(slots.shape, zones.QUEENS), slots)
    assert abs(np.corrcoef(np.log(first), np.log(queens))[0, 1]) < 0.03


def test_traffic_follows_the_hour_the_zone_and_the_live_factor() -> None:
    at = np.array(["2024-03-14T08:30", "2024-03-14T03:30"], dtype="datetime64[s]")
    rush, night = traffic.traffic_speed_mph(np.array([161, 161]), at)
    assert night > rush  # the time profile, whatever the live factor
    hours = traffic.hour_slots(at)
    borough = np.array([zones.MANHATTAN, zones.MANHATTAN])
    expected = (
        traffic.FREE_FLOW_MPH[zones.MANHATTAN]
        * traffic.time_speed_factor(np.array([8, 3]), np.array([False, False]))
        * traffic.ZONE_CONGESTION[161]
        * traffic.live_factor(borough, hours)
    )
    assert np.allclose([rush, night], expected)
    assert traffic.conditions(rush, traffic.FREE_FLOW_MPH[zones.MANHATTAN]) in {
        "free",
        "moderate",
        "heavy",
        "jammed",
    }


def test_every_known_zone_is_its_own_nearest_place() -> None:
    for zone in range(1, zones.N_ZONES + 1):
        if zones.ZONE_KNOWN[zone]:
            assert places.nearest_zone(*places.zone_lat_lng(zone)) == zone
        else:
            with pytest.raises(ValueError):
                places.zone_lat_lng(zone)
    latitude, longitude = places.zone_lat_lng(132)  # JFK, south-east of Manhattan
    assert latitude < places.zone_lat_lng(161)[0] and longitude > places.zone_lat_lng(161)[1]
