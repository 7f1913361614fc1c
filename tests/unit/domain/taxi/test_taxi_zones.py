"""Unit tests of the NYC TLC zone table."""

from __future__ import annotations

import numpy as np

from services.domain.taxi import zones


def test_every_zone_has_the_expected_borough() -> None:
    counts = {name: len(zones.zone_ids(name)) for name in zones.BOROUGHS}
    assert counts == {
        "Unknown": 2,
        "Manhattan": 69,
        "Brooklyn": 61,
        "Queens": 69,
        "Bronx": 43,
        "Staten Island": 20,
        "EWR": 1,
    }
    assert sum(counts.values()) == zones.N_ZONES


def test_known_zones_and_airports() -> None:
    assert zones.borough_of(1) == "EWR"
    assert zones.borough_of(132) == "Queens"  # JFK
    assert zones.borough_of(138) == "Queens"  # LaGuardia
    assert zones.borough_of(161) == "Manhattan"  # Midtown Center
    assert zones.borough_of(61) == "Brooklyn"
    assert zones.borough_of(264) == zones.borough_of(265) == zones.borough_of(999) == "Unknown"
    assert set(np.flatnonzero(zones.ZONE_AIRPORT).tolist()) == {1, 132, 138}
    assert not zones.ZONE_KNOWN[[0, 264, 265]].any()
    assert zones.ZONE_KNOWN[1:264].all()


def test_centroids_give_plausible_distances() -> None:
    midtown, jfk, lga, ewr = 161, 132, 138, 1
    assert 9 < zones.centroid_distance(midtown, jfk) < 16
    assert 4 < zones.centroid_distance(midtown, lga) < 9
    assert 8 < zones.centroid_distance(midtown, ewr) < 15
    manhattan = zones.zone_ids("Manhattan")
    xy = zones.ZONE_XY[manhattan]
    spread = np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)).max()
    assert 10 < spread < 16  # the island is ~13 miles long
    assert not zones.ZONE_XY.flags.writeable
