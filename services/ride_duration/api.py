"""HTTP routes of ride-duration: predict one ride, predict a batch, record outcomes, list the
model versions.

The two prediction endpoints are hot: :func:`predict` and :func:`predict_batch` are declared
once with :meth:`~services.common.fastroute.ServiceRouter.json_route`, which serves them as fast
routes and declares their FastAPI operations (the OpenAPI contract). They return TypedDicts of
the response models' shape (:class:`PredictionBody`), built without a second validation;
tests/unit/ride_duration/test_api_shapes.py checks them against the models. Every prediction is
routed through the service's routing table (:mod:`services.ride_duration.routing`): the variant
that answered is in the response and in the prediction log.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypedDict

from services.common.buffered_writer import BufferedCopyWriter
from services.common.errors import NotFound
from services.common.fastroute import ServiceRouter
from services.common.logging import request_id_var
from services.common.model_versions import add_models_route
from services.common.security import require_scope
from services.domain.taxi.times import new_york_local
from services.ride_duration.routing.live import Answered
from services.ride_duration.schemas import (
    BatchPrediction,
    BatchRequest,
    OutcomeBatch,
    OutcomesAccepted,
    Prediction,
    Ride,
    SensorRide,
)
from services.ride_duration.state import RideDurationState, StateDep

router = ServiceRouter(prefix="/v1", tags=["ride-duration"])

PREDICTION_LOG_COLUMNS = (
    "prediction_id",
    "created_at",
    "request_id",
    "model_name",
    "model_version",
    "pickup_datetime",
    "pickup_location_id",
    "dropoff_location_id",
    "trip_distance",
    "passenger_count",
    "duration_minutes",
    "variant",
    "user_id",
)

_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"description": "Invalid ride(s), problem+json naming each field"},
    503: {"description": "Triton or the model is unavailable (Retry-After)"},
    504: {"description": "Triton missed its deadline"},
}


def _record(
    log: BufferedCopyWriter | None,
    *,
    ids: list[uuid.UUID],
    rides: Sequence[Ride],
    minutes: Sequence[float],
    models: Sequence[ModelRefBody],
) -> None:
    if log is None:
        return
    now = datetime.now(UTC)
    request_id = request_id_var.get()
    for prediction_id, ride, value, model in zip(ids, rides, minutes, models, strict=True):
        log.add(
            (
                prediction_id,
                now,
                request_id,
                model["name"],
                model["version"],
                new_york_local(ride.pickup_datetime),
                ride.pickup_location_id,
                ride.dropoff_location_id,
                ride.trip_distance,
                ride.passenger_count,
                value,
                model["variant"],
                ride.user_id,
            )
        )


#: The variant name of answers from the sensor-aware model (a ride with traffic_speed_mph).
SENSOR_VARIANT = "sensor"

#: The fast routes' body limit (a batch of 1,000 rides is about 200 KB).
PREDICT_MAX_BODY_BYTES = 4 * 1024 * 1024


class ModelRefBody(TypedDict):
    """:class:`~services.ride_duration.schemas.ModelRef` as the handlers build it."""

    name: str
    version: str
    variant: str


class PredictionBody(TypedDict):
    """:class:`~services.ride_duration.schemas.Prediction` as the handlers build it."""

    prediction_id: str
    duration_minutes: float
    model: ModelRefBody


class BatchPredictionBody(TypedDict):
    """:class:`~services.ride_duration.schemas.BatchPrediction` as the handlers build it."""

    predictions: list[PredictionBody]
    model: ModelRefBody


def _model(answered: Answered) -> ModelRefBody:
    return {
        "name": answered.route.model,
        "version": answered.version,
        "variant": answered.route.name,
    }


@router.json_route(
    "POST",
    "/predict",
    body=SensorRide,
    response_model=Prediction,
    scope="read",
    max_body_bytes=PREDICT_MAX_BODY_BYTES,
    summary="Predict the duration of one ride",
    responses=_ERRORS,
)
async def predict(state: RideDurationState, ride: SensorRide) -> PredictionBody:
    """POST /v1/predict: one ride, routed by its ``user_id``; with the sensor's traffic speed,
    answered by the sensor-aware model (variant ``sensor``, outside the routing table)."""
    if ride.traffic_speed_mph is not None:
        minutes, version = await state.predictor.predict_with_traffic(
            ride, ride.traffic_speed_mph, model=state.settings.sensor_model
        )
        model: ModelRefBody = {
            "name": state.settings.sensor_model,
            "version": version,
            "variant": SENSOR_VARIANT,
        }
        values = [minutes]
    else:
        answered = await state.routing.serve((ride,), key=ride.user_id, request=ride)
        model, values = _model(answered), answered.values
    prediction_id = uuid.uuid4()
    _record(
        state.prediction_log,
        ids=[prediction_id],
        rides=(ride,),
        minutes=values,
        models=(model,),
    )
    return {
        "prediction_id": str(prediction_id),
        "duration_minutes": values[0],
        "model": model,
    }


@router.json_route(
    "POST",
    "/predict/batch",
    body=BatchRequest,
    response_model=BatchPrediction,
    scope="read",
    max_body_bytes=PREDICT_MAX_BODY_BYTES,
    summary="Predict the durations of up to 1,000 rides in one call",
    description="The predictions come in the order of the rides. Each ride is routed on its "
    "own (its `user_id`) and gets a new `prediction_id`: rides have no key of their own, so the "
    "same ride twice in a batch is two predictions (two rows of the prediction log). One invalid "
    "ride rejects the whole batch (422 naming `rides.<i>.<field>`).",
    responses=_ERRORS,
)
async def predict_batch(state: RideDurationState, body: BatchRequest) -> BatchPredictionBody:
    """POST /v1/predict/batch: each ride routed on its own; one call per variant."""
    rides = body.rides
    pairs = await state.routing.serve_each(rides, [ride.user_id for ride in rides])
    ids = [uuid.uuid4() for _ in rides]
    minutes = [value for value, _ in pairs]
    models: dict[int, ModelRefBody] = {}
    for _, answered in pairs:
        if id(answered) not in models:
            models[id(answered)] = _model(answered)
    ride_models = [models[id(answered)] for _, answered in pairs]
    _record(state.prediction_log, ids=ids, rides=rides, minutes=minutes, models=ride_models)
    predictions: list[PredictionBody] = []
    for prediction_id, value, model in zip(ids, minutes, ride_models, strict=True):
        predictions.append(
            {"prediction_id": str(prediction_id), "duration_minutes": value, "model": model}
        )
    return {"predictions": predictions, "model": predictions[0]["model"]}


@router.post(
    "/outcomes",
    response_model=OutcomesAccepted,
    summary="Record the actual durations of predicted rides (per-variant MAE/RMSE)",
    description="Stores each outcome in the request's transaction: all of the batch or "
    "nothing. A `prediction_id` stored before is replaced (the last request wins); within one "
    "batch each `prediction_id` appears at most once: a repeat is a 422 whose `errors` name "
    "every repeat (`outcomes.<i>.prediction_id`, type `duplicate`, the message says where the "
    "id came first), and nothing of the batch is written.",
    responses={
        422: {
            "description": "Invalid outcome(s), or a prediction_id twice in the batch: "
            "problem+json naming each field (`outcomes.<i>.prediction_id` for a repeat)"
        },
        404: {"description": "The prediction log is off: outcomes cannot be matched"},
        503: {"description": "Postgres is unavailable"},
    },
    dependencies=[require_scope("write")],
)
async def record_outcomes(body: OutcomeBatch, state: StateDep) -> OutcomesAccepted:
    if state.outcomes is None:
        raise NotFound("outcomes need the prediction log (RIDE_DURATION_PREDICTION_LOG=true)")
    return OutcomesAccepted(accepted=await state.outcomes.record(body.outcomes))


add_models_route(router, model_of=lambda state: state.predictor.model)
