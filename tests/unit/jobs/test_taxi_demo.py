"""What `modelfleet demo taxi` counts from what it saw: lost rides, rides posted during the outage,
the time to recover, and whether the story happened as told (services/jobs/taxi_demo.py).

The run against a real stack is tests/integration/test_demos.py."""

from __future__ import annotations

import pytest

from services import cli
from services.jobs.taxi_demo import Outage, Ride, TaxiDemoResult, demo_rides


def ride(posted_at: float, *, accepted: bool = True, complete_at: float | None = None) -> Ride:
    return Ride(
        key=f"k{posted_at}",
        body={},
        posted_at=posted_at,
        first_status=201 if accepted else 503,
        ride_id="r" if accepted else None,
        complete_at=complete_at,
    )


def outcome(*rides: Ride, back_at: float | None = 5.0) -> TaxiDemoResult:
    return TaxiDemoResult(rides=list(rides), outage=Outage(pid=1, killed_at=3.0, back_at=back_at))


def test_every_ride_complete_with_one_posted_in_the_outage_succeeds() -> None:
    result = outcome(
        ride(1.0, complete_at=1.5), ride(4.0, complete_at=6.0), ride(7.0, complete_at=7.4)
    )
    assert result.succeeded and result.shortfall == ""
    assert result.lost == 0
    assert [r.posted_at for r in result.during_outage] == [4.0]
    # the ride posted before NATS was back completed 6.0 - 3.0 s after the kill
    assert result.recovered_s == pytest.approx(3.0)


def test_a_ride_without_every_result_is_lost() -> None:
    result = outcome(ride(1.0, complete_at=1.5), ride(4.0), ride(7.0, complete_at=7.4))
    assert not result.succeeded
    assert result.lost == 1 and result.shortfall == "1 of 3 rides without every result"
    assert result.recovered_s is None  # a ride posted before NATS was back never completed


def test_a_ride_never_accepted_is_lost() -> None:
    result = outcome(
        ride(1.0, complete_at=1.5), ride(4.0, complete_at=6.0), ride(7.0, accepted=False)
    )
    assert not result.succeeded and result.lost == 1


def test_no_ride_during_the_outage_or_nats_not_back_is_not_the_story() -> None:
    quiet = outcome(ride(1.0, complete_at=1.5), ride(7.0, complete_at=7.4))
    assert not quiet.succeeded and "no ride was posted while NATS was down" in quiet.shortfall
    gone = outcome(ride(4.0, complete_at=4.5), back_at=None)
    assert not gone.succeeded and gone.shortfall == "NATS did not serve again"
    assert gone.recovered_s is None


def test_demo_rides_are_valid_requests_with_distinct_keys() -> None:
    rides = demo_rides(40, seed=15, run="abc")
    assert len(rides) == 40 and len({key for key, _ in rides}) == 40
    for _, body in rides:
        assert 1 <= body["pickup_location_id"] <= 265 and body["trip_distance"] > 0
        assert 1 <= body["passenger_count"] <= 9 and 0 <= body["payment_type"] <= 6


@pytest.mark.parametrize(
    "args", [["--seconds", "10", "--kill-at", "12"], ["--rate", "0"], ["--kill-at", "0"]]
)
def test_a_kill_outside_the_stream_or_no_rate_is_bad_input(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["demo", "taxi", *args]) == 2
    assert "need --rate > 0 and 0 < --kill-at" in capsys.readouterr().err
