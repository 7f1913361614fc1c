"""HTTP routes of ride-duration: predict one ride, predict a batch, record outcomes, list the
model versions.

The two prediction endpoints are hot: their handlers (:func:`predict_one`, :func:`predict_many`)
are served as fast routes (see :mod:`services.common.fastroute`) and declared as FastAPI routes
too, which define the OpenAPI contract and serve when fast routes are off. Every prediction is
routed through the service's routing table (:mod:`services.ride_duration.routing`): the variant that
answered is in the response and in the prediction log.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from starlette.datastructures import State

from services.common.deps import TritonDep
from services.common.errors import NotFound, TritonUnavailable
from services.common.fastroute import FastJsonRoute, JsonResponse
from services.common.logging import request_id_var
from services.common.security import require_scope
from services.domain.taxi.times import new_york_local
from services.ride_duration import outcomes
from services.ride_duration.buffered_writer import BufferedCopyWriter
from services.ride_duration.predictor import DurationPredictor
from services.ride_duration.routing.live import Answered, LiveRouting
from services.ride_duration.schemas import (
    BatchPrediction,
    BatchRequest,
    ModelList,
    OutcomeBatch,
    OutcomesAccepted,
    Prediction,
    Ride,
)

router = APIRouter(prefix="/v1", tags=["ride-duration"])

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
    answers: Sequence[Answered],
) -> None:
    if log is None:
        return
    now = datetime.now(UTC)
    request_id = request_id_var.get()
    for prediction_id, ride, value, answered in zip(ids, rides, minutes, answers, strict=True):
        log.add(
            (
                prediction_id,
                now,
                request_id,
                answered.route.model,
                answered.version,
                new_york_local(ride.pickup_datetime),
                ride.pickup_location_id,
                ride.dropoff_location_id,
                ride.trip_distance,
                ride.passenger_count,
                value,
                answered.route.name,
                ride.user_id,
            )
        )


def _model(answered: Answered) -> dict[str, str]:
    return {
        "name": answered.route.model,
        "version": answered.version,
        "variant": answered.route.name,
    }


async def predict_one(state: State, ride: Ride) -> dict[str, Any]:
    """Handler of POST /v1/predict."""
    routing: LiveRouting = state.routing
    answered = await routing.serve((ride,), key=ride.user_id, request=ride)
    prediction_id = uuid.uuid4()
    _record(
        state.prediction_log,
        ids=[prediction_id],
        rides=(ride,),
        minutes=answered.values,
        answers=(answered,),
    )
    return {
        "prediction_id": str(prediction_id),
        "duration_minutes": answered.values[0],
        "model": _model(answered),
    }


async def predict_many(state: State, body: BatchRequest) -> dict[str, Any]:
    """Handler of POST /v1/predict/batch (each ride routed on its own; one call per variant)."""
    routing: LiveRouting = state.routing
    rides = body.rides
    pairs = await routing.serve_each(rides, [ride.user_id for ride in rides])
    ids = [uuid.uuid4() for _ in rides]
    minutes = [value for value, _ in pairs]
    answers = [answered for _, answered in pairs]
    _record(state.prediction_log, ids=ids, rides=rides, minutes=minutes, answers=answers)
    models: dict[int, dict[str, str]] = {}
    predictions = []
    for prediction_id, value, answered in zip(ids, minutes, answers, strict=True):
        model = models.get(id(answered))
        if model is None:
            model = models[id(answered)] = _model(answered)
        predictions.append(
            {"prediction_id": str(prediction_id), "duration_minutes": value, "model": model}
        )
    return {"predictions": predictions, "model": predictions[0]["model"]}


FAST_ROUTES = (
    FastJsonRoute(method="POST", path="/v1/predict", body=Ride, handler=predict_one, scope="read"),
    FastJsonRoute(
        method="POST",
        path="/v1/predict/batch",
        body=BatchRequest,
        handler=predict_many,
        scope="read",
    ),
)


@router.post(
    "/predict",
    response_model=Prediction,
    summary="Predict the duration of one ride",
    responses=_ERRORS,
    dependencies=[require_scope("read")],
)
async def predict(ride: Ride, request: Request) -> JsonResponse:
    return JsonResponse(await predict_one(request.app.state, ride))


@router.post(
    "/predict/batch",
    response_model=BatchPrediction,
    summary="Predict the durations of up to 1,000 rides in one call",
    responses=_ERRORS,
    dependencies=[require_scope("read")],
)
async def predict_batch(body: BatchRequest, request: Request) -> JsonResponse:
    return JsonResponse(await predict_many(request.app.state, body))


@router.post(
    "/outcomes",
    response_model=OutcomesAccepted,
    summary="Record the actual durations of predicted rides (per-variant MAE/RMSE)",
    responses={
        422: {"description": "Invalid outcome(s), problem+json naming each field"},
        404: {"description": "The prediction log is off: outcomes cannot be matched"},
        503: {"description": "Postgres is unavailable"},
    },
    dependencies=[require_scope("write")],
)
async def record_outcomes(body: OutcomeBatch, request: Request) -> JsonResponse:
    state = request.app.state
    tracker: outcomes.OutcomeTracker | None = state.outcomes
    if tracker is None:
        raise NotFound("outcomes need the prediction log (RIDE_DURATION_PREDICTION_LOG=true)")
    accepted = await tracker.record(body.outcomes)
    return JsonResponse({"accepted": accepted})


@router.get(
    "/models",
    response_model=ModelList,
    summary="Model versions and their model cards",
    dependencies=[require_scope("read")],
)
async def list_models(request: Request, triton: TritonDep) -> JsonResponse:
    predictor: DurationPredictor = request.app.state.predictor
    index = await triton.repository_index()
    versions = [entry for entry in index if entry.name == predictor.model and entry.version]
    if not versions:
        raise TritonUnavailable(f"Triton has no version of model {predictor.model!r}")
    config = await triton.model_config(predictor.model)
    parameters: dict[str, Any] = config.get("parameters", {})
    models = []
    for entry in sorted(versions, key=lambda e: int(e.version) if e.version.isdigit() else 0):
        raw = parameters.get(f"model_card.v{entry.version}", {}).get("string_value")
        models.append(
            {
                "name": entry.name,
                "version": entry.version,
                "state": entry.state,
                "card": json.loads(raw) if raw else None,
            }
        )
    return JsonResponse({"models": models})
