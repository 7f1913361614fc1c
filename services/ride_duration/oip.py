"""ride-duration under the Open Inference Protocol v2: its tensors and their mapping to rides.

The public model is the one the service serves (``RIDE_DURATION_TRITON_MODEL``, ``ride_duration``);
the generic routes are :func:`services.common.oip.oip_router`. One row per ride, each input
``[N]`` (or ``[N, 1]``), the fields of ``POST /v1/predict/batch``'s rides:

    pickup_datetime BYTES (ISO 8601 text, as /v1)   pickup_location_id, dropoff_location_id INT*
    trip_distance FP32/FP64                         passenger_count, vendor_id, ratecode_id,
    user_id BYTES (optional, sticky A/B routing)    payment_type INT* (optional)

An unversioned request is ``POST /v1/predict/batch`` itself (:func:`.api.predict_batch`): each
ride routed on its own by the routing table (canary/A-B weights, segments, shadow), the variant
metrics, the prediction log, the same validation (a bad ride is a 400 naming its input
and row). ``/versions/{v}/infer`` pins the served variant of the routing table that answers
version ``v`` (a variant with Triton's default version answers Triton's newest READY version);
it is answered through the same routed call (metrics, shadow, the stable fallback) and logged
the same way. Outputs, one value per ride: ``duration_minutes`` FP64 (the /v1 value),
``prediction_id``, ``model_version`` and ``variant`` BYTES.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from pydantic import ValidationError

from services.common.errors import DependencyError
from services.common.oip import (
    InferenceRequest,
    Inferred,
    InputSpec,
    MetadataTensor,
    OipModel,
    Rows,
    bad_request,
    newest_ready_version,
    oip_router,
    output,
    text_of,
    unknown_version,
)
from services.ride_duration import api
from services.ride_duration.routing.table import SERVED_ROLES, Route, Snapshot
from services.ride_duration.schemas import MAX_BATCH_RIDES, BatchRequest
from services.ride_duration.state import RideDurationState

INPUTS = (
    InputSpec("pickup_datetime", "bytes", "BYTES"),
    InputSpec("pickup_location_id", "int", "INT32"),
    InputSpec("dropoff_location_id", "int", "INT32"),
    InputSpec("trip_distance", "float", "FP64"),
    InputSpec("passenger_count", "int", "INT32", required=False),
    InputSpec("vendor_id", "int", "INT32", required=False),
    InputSpec("ratecode_id", "int", "INT32", required=False),
    InputSpec("payment_type", "int", "INT32", required=False),
    InputSpec("user_id", "bytes", "BYTES", required=False),
)
OUTPUTS = (
    MetadataTensor(name="duration_minutes", datatype="FP64", shape=[-1]),
    MetadataTensor(name="prediction_id", datatype="BYTES", shape=[-1]),
    MetadataTensor(name="model_version", datatype="BYTES", shape=[-1]),
    MetadataTensor(name="variant", datatype="BYTES", shape=[-1]),
)
_TEXT_INPUTS = frozenset(spec.name for spec in INPUTS if spec.kind == "bytes")


def batch_of(rows: Rows) -> BatchRequest:
    """The rides of the rows, validated as ``POST /v1/predict/batch`` validates its body."""
    rides: list[dict[str, Any]] = []
    for i in range(rows.count):
        ride: dict[str, Any] = {}
        for name, values in rows.values.items():
            value = values[i]
            ride[name] = text_of(value, name=name, row=i) if name in _TEXT_INPUTS else value
        rides.append(ride)
    try:
        return BatchRequest.model_validate_json(orjson.dumps({"rides": rides}))
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False)[:5]:
            loc = err.get("loc", ())
            if len(loc) >= 3 and loc[0] == "rides":
                problems.append(f"input {loc[2]!r} row {loc[1]}: {err.get('msg')}")
            else:
                problems.append(f"{'.'.join(str(p) for p in loc)}: {err.get('msg')}")
        raise bad_request("; ".join(problems)) from exc


async def served_routes(state: RideDurationState, snapshot: Snapshot) -> dict[str, Route]:
    """{version: the served variant answering it} for the public model (stable first)."""
    model = state.predictor.model
    routes = sorted(
        (r for r in snapshot.routes.values() if r.role in SERVED_ROLES and r.model == model),
        key=lambda r: r.role != "stable",
    )
    newest = (
        await newest_ready_version(state.triton, model)
        if any(not r.version for r in routes)
        else None
    )
    served: dict[str, Route] = {}
    for route in routes:
        version = route.version or newest
        if version:
            served.setdefault(version, route)
    return dict(sorted(served.items(), key=lambda item: int(item[0])))


class RideDurationOip(OipModel[RideDurationState]):
    """The service's model under /v2, answered by the /v1 prediction path."""

    state_type = RideDurationState
    inputs = INPUTS
    outputs = OUTPUTS
    max_rows = MAX_BATCH_RIDES

    def name(self, state: RideDurationState) -> str:
        return state.predictor.model

    async def versions(self, state: RideDurationState) -> list[str]:
        return list(await served_routes(state, state.routing.snapshot))

    async def ready(self, state: RideDurationState, version: str) -> bool:
        if version:
            return await state.triton.model_ready(state.predictor.model, version)
        try:
            await state.predictor.ready()
        except DependencyError:
            return False
        return True

    async def infer(
        self, state: RideDurationState, request: InferenceRequest, rows: Rows, version: str
    ) -> Inferred:
        batch = batch_of(rows)
        if version:
            predictions = await self._pinned(state, batch, version)
        else:
            predictions = (await api.predict_batch(state, batch))["predictions"]
        return Inferred(
            model_version=predictions[0]["model"]["version"],
            outputs=[
                output("duration_minutes", "FP64", [p["duration_minutes"] for p in predictions]),
                output("prediction_id", "BYTES", [p["prediction_id"] for p in predictions]),
                output("model_version", "BYTES", [p["model"]["version"] for p in predictions]),
                output("variant", "BYTES", [p["model"]["variant"] for p in predictions]),
            ],
        )

    async def _pinned(
        self, state: RideDurationState, batch: BatchRequest, version: str
    ) -> list[api.PredictionBody]:
        """Every ride to the variant serving ``version``, through the routed call and the log."""
        snapshot = state.routing.snapshot
        served = await served_routes(state, snapshot)
        route = served.get(version)
        if route is None:
            raise unknown_version(state.predictor.model, version, list(served))
        rides = batch.rides
        answered = await state.routing._answer(snapshot, route, rides)
        ids = [uuid.uuid4() for _ in rides]
        model = api._model(answered)
        api._record(
            state.prediction_log,
            ids=ids,
            rides=rides,
            minutes=answered.values,
            models=[model] * len(rides),
        )
        return [
            {"prediction_id": str(i), "duration_minutes": value, "model": model}
            for i, value in zip(ids, answered.values, strict=True)
        ]


router = oip_router(
    RideDurationOip(), tag="ride-duration: OIP v2", max_body_bytes=api.PREDICT_MAX_BODY_BYTES
)
