"""Ride times as the TLC records hold them: New York local time without a zone.

A request may send a time with a zone or without one (then it is New York local time already).
:data:`PickupDatetime` is the request field: a time New York local time cannot hold (e.g.
``0001-01-01T00:00+14:00``, which falls before year 1 once converted) is a 422, not a 500 later.

    new_york_local(datetime(2024, 3, 14, 12, 30, tzinfo=UTC))  # 2024-03-14 08:30 (naive)
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import AfterValidator

NEW_YORK = ZoneInfo("America/New_York")


def new_york_local(moment: datetime) -> datetime:
    """TLC times are New York local time without a zone: convert aware times to that."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(NEW_YORK).replace(tzinfo=None)


def _convertible(moment: datetime) -> datetime:
    try:
        new_york_local(moment)
    except OverflowError as exc:
        raise ValueError("the time is out of range once converted to New York time") from exc
    return moment


PickupDatetime = Annotated[datetime, AfterValidator(_convertible)]
"""A pickup time (with a zone, or New York local without one) that New York time can hold."""
