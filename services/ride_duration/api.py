"""HTTP routes of ride-duration: predict one ride, predict a batch, list the model versions."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import ORJSONResponse

from services.common.buffered_writer import BufferedCopyWriter
from services.common.deps import TritonDep
from services.common.errors import TritonUnavailable
from services.common.logging import request_id_var
from services.ride_duration.predictor import DurationPredictor, local_naive
from services.ride_duration.schemas import (
    BatchPrediction,
    BatchRequest,
    ModelList,
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
)


async def get_predictor(request: Request) -> DurationPredictor:
    predictor: DurationPredictor = request.app.state.predictor
    return predictor


async def get_prediction_log(request: Request) -> BufferedCopyWriter | None:
    writer: BufferedCopyWriter | None = request.app.state.prediction_log
    return writer


PredictorDep = Annotated[DurationPredictor, Depends(get_predictor)]
PredictionLogDep = Annotated[BufferedCopyWriter | None, Depends(get_prediction_log)]


def _record(
    log: BufferedCopyWriter | None,
    *,
    ids: list[uuid.UUID],
    rides: list[Ride],
    minutes: list[float],
    model: str,
    version: str,
) -> None:
    if log is None:
        return
    now = datetime.now(UTC)
    request_id = request_id_var.get()
    for prediction_id, ride, value in zip(ids, rides, minutes, strict=True):
        log.add(
            (
                prediction_id,
                now,
                request_id,
                model,
                version,
                local_naive(ride.pickup_datetime),
                ride.pickup_location_id,
                ride.dropoff_location_id,
                ride.trip_distance,
                ride.passenger_count,
                value,
            )
        )


@router.post(
    "/predict",
    response_model=Prediction,
    summary="Predict the duration of one ride",
    responses={422: {"description": "Invalid ride (problem+json)"}, 503: {}, 504: {}},
)
async def predict(
    ride: Ride, predictor: PredictorDep, prediction_log: PredictionLogDep
) -> ORJSONResponse:
    minutes, version = await predictor.predict([ride])
    prediction_id = uuid.uuid4()
    _record(
        prediction_log,
        ids=[prediction_id],
        rides=[ride],
        minutes=minutes,
        model=predictor.model,
        version=version,
    )
    return ORJSONResponse(
        {
            "prediction_id": str(prediction_id),
            "duration_minutes": minutes[0],
            "model": {"name": predictor.model, "version": version},
        }
    )


@router.post(
    "/predict/batch",
    response_model=BatchPrediction,
    summary="Predict the durations of up to 1,000 rides in one call",
    responses={422: {"description": "Invalid rides (problem+json)"}, 503: {}, 504: {}},
)
async def predict_batch(
    body: BatchRequest, predictor: PredictorDep, prediction_log: PredictionLogDep
) -> ORJSONResponse:
    minutes, version = await predictor.predict(body.rides)
    ids = [uuid.uuid4() for _ in body.rides]
    _record(
        prediction_log,
        ids=ids,
        rides=body.rides,
        minutes=minutes,
        model=predictor.model,
        version=version,
    )
    model = {"name": predictor.model, "version": version}
    return ORJSONResponse(
        {
            "predictions": [
                {"prediction_id": str(i), "duration_minutes": m, "model": model}
                for i, m in zip(ids, minutes, strict=True)
            ],
            "model": model,
        }
    )


@router.get("/models", response_model=ModelList, summary="Model versions and their model cards")
async def list_models(predictor: PredictorDep, triton: TritonDep) -> ORJSONResponse:
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
    return ORJSONResponse({"models": models})
