"""Request and response bodies of the backend API (the public contract, versioned /v1).

The handlers build and return these models (FastAPI serializes them), so what is sent is what
the OpenAPI schema says. Times the database stamps (:data:`Timestamp`) are sent as
``datetime.isoformat()`` writes them (``+00:00``, as the API always sent them).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

from services.common.fields import JsonRequest
from services.domain.taxi.times import PickupDatetime

#: The smallest trip distance a ride keeps: it is stored, and sent back, to 4 decimals.
MIN_TRIP_DISTANCE = 0.0001
LocationId = Annotated[int, Field(ge=1, le=265, description="NYC TLC taxi zone id (1-265).")]
ResultKind = Literal["initial_duration", "duration", "sensor_duration", "tip", "cost"]
Timestamp = Annotated[
    datetime,
    PlainSerializer(datetime.isoformat, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
"""A time the database stamped, sent in ``isoformat()`` (``2024-03-14T12:30:00+00:00``)."""


EXAMPLE_RIDE: dict[str, Any] = {
    "user_id": "u-123",
    "pickup_datetime": "2024-03-14T08:30:00",
    "pickup_location_id": 161,
    "dropoff_location_id": 236,
    "trip_distance": 2.4,
    "passenger_count": 1,
    "payment_type": 1,
}
"""A valid ride request: the OpenAPI example (and the tests' base ride)."""


class RideRequest(JsonRequest):
    """A ride request. Times without a zone are New York local time."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE_RIDE]})

    user_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:@-]+$")
    pickup_datetime: PickupDatetime
    pickup_location_id: LocationId
    dropoff_location_id: LocationId
    trip_distance: float = Field(
        ge=MIN_TRIP_DISTANCE,
        le=500,
        allow_inf_nan=False,
        description="Miles; kept to 4 decimals (so at least 0.0001).",
    )
    passenger_count: int = Field(default=1, ge=1, le=9)
    payment_type: int = Field(
        default=1, ge=0, le=6, description="TLC payment_type 0-6 (1 card, 2 cash)."
    )


class Telemetry(JsonRequest):
    """Progress of a ride during the trip."""

    model_config = ConfigDict(extra="forbid")

    elapsed_minutes: float = Field(ge=0, le=600, allow_inf_nan=False)
    distance_covered: float = Field(ge=0, le=500, allow_inf_nan=False, description="Miles.")
    speed_mph: float = Field(ge=0, le=150, allow_inf_nan=False, description="Current speed.")


class ModelRef(BaseModel):
    name: str
    version: str


Reason = Literal["timeout", "unavailable", "not_configured"]


class InitialDuration(BaseModel):
    """The web-service prediction: a value, or null and why."""

    duration_minutes: float | None
    model: ModelRef | None
    reason: Reason | None = None
    uses_sensor: bool = Field(
        default=False,
        description="true: the sensor-aware model answered (the chain fit the budget); false: "
        "the base model did, and the sensor-aware duration follows as result sensor_duration.",
    )


class DownstreamData(BaseModel):
    """What the location or sensor service answered in budget, or null and why."""

    data: dict[str, Any] | None
    reason: Reason | None = None


class RideLinks(BaseModel):
    self: str = Field(description="The ride: GET it for its results so far.")
    events: str = Field(description="Its results as Server-Sent Events.")


class RideCreated(BaseModel):
    ride_id: UUID
    initial_duration: InitialDuration
    location: DownstreamData
    sensor: DownstreamData
    links: RideLinks


class RideResult(BaseModel):
    kind: ResultKind
    value: float
    unit: str
    model: ModelRef
    at: Timestamp


class RideView(BaseModel):
    ride_id: UUID
    created_at: Timestamp
    ride: RideRequest
    initial_duration: InitialDuration
    location: DownstreamData
    sensor: DownstreamData
    results: list[RideResult]


class TelemetryAccepted(BaseModel):
    event_id: UUID
    ride_id: UUID
