"""Request and response bodies of the ride-duration API (the public contract, versioned /v1).

Batches: a key the client supplies appears at most once per batch. ``POST /v1/outcomes`` with
one ``prediction_id`` twice is a 422 naming each repeat (``outcomes.<i>.prediction_id``) and
nothing of the batch is written; rides of ``POST /v1/predict/batch`` have no key of their own
(every ride gets a new ``prediction_id``), so the same ride twice is two predictions.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Annotated, Literal, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from services.common.fields import JsonRequest, JsonUuid
from services.common.pgtext import PgText
from services.domain.taxi.times import PickupDatetime

MAX_BATCH_RIDES = 1000

Item = TypeVar("Item")


def reject_duplicates(
    title: str, items: Sequence[Item], *, field: str, key: str, key_of: Callable[[Item], Hashable]
) -> None:
    """Raise a ValidationError naming every repeat of a key in ``items`` (``field.<i>.key``).

    Raised inside a model validator, pydantic puts the request's location in front, so the
    422 problem+json's ``errors`` name ``outcomes.2.prediction_id`` like any other bad field.
    """
    first: dict[Hashable, int] = {}
    errors: list[InitErrorDetails] = []
    for index, item in enumerate(items):
        value = key_of(item)
        seen = first.setdefault(value, index)
        if seen != index:
            errors.append(
                InitErrorDetails(
                    type=PydanticCustomError(
                        "duplicate",
                        "{key} {value} is also at {field}.{first}: "
                        "each {key} at most once per batch",
                        {"key": key, "value": str(value), "field": field, "first": seen},
                    ),
                    loc=(field, index, key),
                    input=str(value),
                )
            )
    if errors:
        raise ValidationError.from_exception_data(title, errors)


LocationId = Annotated[int, Field(ge=1, le=265, description="NYC TLC taxi zone id (1-265).")]


class Ride(JsonRequest):
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
    user_id: PgText | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="The rider: A/B experiments assign variants sticky by this id.",
    )


class SensorRide(Ride):
    """A ride of POST /v1/predict: optionally with the traffic speed a sensor read at pickup."""

    traffic_speed_mph: float | None = Field(
        default=None,
        gt=0,
        le=100,
        allow_inf_nan=False,
        description="The sensor's traffic speed at pickup (mph): the sensor-aware model "
        "answers (variant `sensor`); absent: the routing table's variant does.",
    )


class BatchRequest(JsonRequest):
    model_config = ConfigDict(extra="forbid")

    rides: list[Ride] = Field(
        min_length=1,
        max_length=MAX_BATCH_RIDES,
        description="Each ride is predicted on its own, with a new prediction_id: the same ride "
        "twice is two predictions.",
    )


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


class Outcome(JsonRequest):
    """The truth of one prediction: the ride's actual duration, known once it completed."""

    model_config = ConfigDict(extra="forbid")

    prediction_id: JsonUuid
    actual_minutes: float = Field(gt=0, le=1440, allow_inf_nan=False)


class OutcomeBatch(JsonRequest):
    model_config = ConfigDict(extra="forbid")

    outcomes: list[Outcome] = Field(
        min_length=1,
        max_length=MAX_BATCH_RIDES,
        description="Each prediction_id at most once (a repeat is 422 naming "
        "outcomes.<i>.prediction_id); a later batch replaces a stored value.",
    )

    @model_validator(mode="after")
    def _one_outcome_per_prediction(self) -> OutcomeBatch:
        reject_duplicates(
            type(self).__name__,
            self.outcomes,
            field="outcomes",
            key="prediction_id",
            key_of=lambda outcome: outcome.prediction_id,
        )
        return self


class OutcomesAccepted(BaseModel):
    accepted: int
