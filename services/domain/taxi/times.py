"""Ride times as the TLC records hold them: New York local time without a zone.

A request may send a time with a zone or without one (then it is New York local time already).
:data:`PickupDatetime` is the request field: ISO 8601 as ``2024-03-14T08:30:00`` writes it
(seconds and up to 6 decimals optional; ``Z`` or ``±HH:MM`` optional), a real calendar date, in
the years 2000-2099 as written. Exactly what :data:`PICKUP_PATTERN` matches is accepted (the
OpenAPI document gives the pattern, so a client can check a time before it sends it); anything
else, a Unix time or a date alone included, is a 422.

    new_york_local(datetime(2024, 3, 14, 12, 30, tzinfo=UTC))  # 2024-03-14 08:30 (naive)
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BeforeValidator, TypeAdapter, WithJsonSchema

NEW_YORK = ZoneInfo("America/New_York")
PICKUP_YEARS = (2000, 2099)

_DAY_OF_MONTH = (
    r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"  # 31 days
    r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"  # 30 days
    r"|02-(?:0[1-9]|1[0-9]|2[0-8]))"
)
_LEAP_YEAR = r"20(?:[02468][048]|[13579][26])"  # 2000-2099: every fourth year, 2000 included
_TIME = r"T(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]{1,6})?)?"
_ZONE = r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?"
PICKUP_PATTERN = rf"^(?:20[0-9][0-9]-{_DAY_OF_MONTH}|{_LEAP_YEAR}-02-29){_TIME}{_ZONE}$"
_PICKUP = re.compile(PICKUP_PATTERN)
_TEXT: TypeAdapter[datetime] = TypeAdapter(datetime)


def new_york_local(moment: datetime) -> datetime:
    """TLC times are New York local time without a zone: convert aware times to that."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(NEW_YORK).replace(tzinfo=None)


def _written(value: Any) -> Any:
    """A JSON time only as :data:`PICKUP_PATTERN` writes it (parsed, for a strict model); a
    datetime (Python) as it is."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or _PICKUP.fullmatch(value) is None:
        raise ValueError("a time as 2024-03-14T08:30:00 (a zone Z or ±HH:MM optional) in 2000-2099")
    return _TEXT.validate_strings(value)


def _in_range(moment: datetime) -> datetime:
    first, last = PICKUP_YEARS
    if not first <= moment.year <= last:
        raise ValueError(f"the year must be {first}-{last}")
    return moment


PickupDatetime = Annotated[
    datetime,
    BeforeValidator(_written),
    AfterValidator(_in_range),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": PICKUP_PATTERN,
            "description": "Pickup time, ISO 8601 (`2024-03-14T08:30:00`; seconds and up to 6 "
            "decimals optional; a zone `Z` or `±HH:MM` optional, none: New York local time), "
            "a real date in the years 2000-2099.",
            "examples": ["2024-03-14T08:30:00", "2024-03-14T12:30:00Z"],
        }
    ),
]
"""A pickup time (with a zone, or New York local without one) in the years 2000-2099."""
