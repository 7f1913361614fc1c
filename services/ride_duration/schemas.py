"""Request and response bodies of the ride-duration API (the public contract, versioned /v1)."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from services.domain.taxi.times import PickupDatetime

MAX_BATCH_RIDES = 1000

LocationId = Annotated[int, Field(ge=1, le=265, description="NYC TLC taxi zone id (1-265).")]


class Ride(BaseModel):
    """One ride to predict, in NYC TLC terms. Times without a zone are New York local time."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "pickup_datetime": "2024-03-14T08:30:00",
                    "pickup_location_id": 161,
                    "dropoff_location_id": 236,
                    "trip_distance": 2.4,
                    "passenger_count": 1,
                }
            ]
        },
    )

    pickup_datetime: PickupDatetime
    pickup_location_id: LocationId
    dropoff_location_id: LocationId
    trip_distance: float = Field(gt=0, le=500, allow_inf_nan=False, description="Miles.")
    passenger_count: int = Field(default=1, ge=1, le=9)
    vendor_id: int | None = Field(default=None, ge=1, le=7, description="TLC VendorID.")
    ratecode_id: Literal[1, 2, 3, 4, 5, 6, 99] | None = Field(
        default=None, description="TLC RatecodeID: 1-6 or 99; default 1 (standard)."
    )
    payment_type: int | None = Field(
        default=None, ge=0, le=6, description="TLC payment_type 0-6; default 1 (credit card)."
    )
    user_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="The rider: A/B experiments assign variants sticky by this id.",
    )


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rides: list[Ride] = Field(min_length=1, max_length=MAX_BATCH_RIDES)


class ModelRef(BaseModel):
    name: str
    version: str
    variant: str = Field(description="The routing table's variant that answered.")


class Prediction(BaseModel):
    prediction_id: UUID
    duration_minutes: float
    model: ModelRef


class BatchPrediction(BaseModel):
    predictions: list[Prediction]
    model: ModelRef


class Outcome(BaseModel):
    """The truth of one prediction: the ride's actual duration, known once it completed."""

    model_config = ConfigDict(extra="forbid")

    prediction_id: UUID
    actual_minutes: float = Field(gt=0, le=1440, allow_inf_nan=False)


class OutcomeBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcomes: list[Outcome] = Field(min_length=1, max_length=MAX_BATCH_RIDES)


class OutcomesAccepted(BaseModel):
    accepted: int
