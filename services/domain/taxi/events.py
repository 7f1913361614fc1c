"""The ride events on JetStream: the one contract between the backend and the workers.

The backend writes an event's JSON into its outbox in the transaction of the ride (or of a
telemetry update); the relay publishes it with ``seq`` (the outbox sequence, increasing in commit
order) added. Workers parse it with :class:`RideEvent` and write results keyed by
(ride, kind, model version), replacing a value only with one from a higher ``seq``.

    event = RideEvent.model_validate_json(msg.data)
    event.ride.trip_distance, event.telemetry  # None for rides.requested
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

RESULT_UNITS: dict[str, str] = {
    "initial_duration": "minutes",
    "duration": "minutes",
    "sensor_duration": "minutes",
    "tip": "USD",
    "cost": "USD",
}
"""Result kinds and their units."""


class EventRide(BaseModel):
    """The ride as the workers need it (New York local pickup time, TLC fields)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    pickup_datetime: datetime
    pickup_location_id: int
    dropoff_location_id: int
    trip_distance: float
    passenger_count: int
    payment_type: int


class EventTelemetry(BaseModel):
    """Progress of the ride when the event was made."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    elapsed_minutes: float
    distance_covered: float
    speed_mph: float


class RideEvent(BaseModel):
    """One event of subject ``rides.requested`` or ``rides.telemetry``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    type: Literal["ride.requested", "ride.telemetry"]
    event_id: UUID
    ride_id: UUID
    occurred_at: datetime
    ride: EventRide
    initial_duration_minutes: float | None = None
    #: What the ride's answer knew of the chain: the pickup place (location) and the traffic
    #: speed there (sensor); the sensor-duration worker asks for what is missing.
    latitude: float | None = None
    longitude: float | None = None
    traffic_speed_mph: float | None = None
    telemetry: EventTelemetry | None = None
    seq: int = Field(default=0, ge=0, description="Outbox sequence (set by the relay).")
