"""The TypedDicts the hot handlers return have the response models' shape, field for field.

The fast routes send what the handlers return without validating it again, so a field added to
a response model (or a TypedDict) without the other would reach clients unnoticed: this test
compares the two recursively, and validates a built answer against the model.
"""

from __future__ import annotations

import typing
import uuid
from typing import Any, get_type_hints

import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel

from services.ride_duration import api
from services.ride_duration.schemas import BatchPrediction, ModelRef, Prediction

PAIRS: list[tuple[type[Any], type[BaseModel]]] = [
    (api.ModelRefBody, ModelRef),
    (api.PredictionBody, Prediction),
    (api.BatchPredictionBody, BatchPrediction),
]


def _nested(annotation: Any) -> Any:
    """The TypedDict or model inside ``list[X]`` / ``X | None``, else the annotation."""
    for arg in typing.get_args(annotation):
        if arg is not type(None):
            return _nested(arg)
    return annotation


def _mismatches(shape: type[Any], model: type[BaseModel], where: str) -> list[str]:
    hints = get_type_hints(shape)
    fields = model.model_fields
    out = [f"{where}.{name}: only in {shape.__name__}" for name in hints.keys() - fields.keys()]
    out += [f"{where}.{name}: only in {model.__name__}" for name in fields.keys() - hints.keys()]
    for name in hints.keys() & fields.keys():
        inner_model = _nested(fields[name].annotation)
        if isinstance(inner_model, type) and issubclass(inner_model, BaseModel):
            out += _mismatches(_nested(hints[name]), inner_model, f"{where}.{name}")
    return out


@pytest.mark.parametrize(("shape", "model"), PAIRS, ids=lambda p: p.__name__)
def test_typed_dict_has_the_fields_of_its_model(shape: type[Any], model: type[BaseModel]) -> None:
    assert _mismatches(shape, model, model.__name__) == []


def test_the_check_sees_a_missing_field() -> None:
    class Short(typing.TypedDict):
        name: str
        version: str

    assert _mismatches(Short, ModelRef, "ModelRef") == ["ModelRef.variant: only in ModelRef"]


def test_a_built_answer_validates_against_the_model() -> None:
    model: api.ModelRefBody = {"name": "ride_duration", "version": "3", "variant": "stable"}
    one: api.PredictionBody = {
        "prediction_id": str(uuid.uuid4()),
        "duration_minutes": 12.5,
        "model": model,
    }
    batch: api.BatchPredictionBody = {"predictions": [one, one], "model": model}
    assert Prediction.model_validate(one).model.variant == "stable"
    assert len(BatchPrediction.model_validate(batch).predictions) == 2


def test_handlers_are_declared_once_with_their_models() -> None:
    routes = {(r.method, r.path): r for r in api.router.fast_routes}
    assert set(routes) == {("POST", "/v1/predict"), ("POST", "/v1/predict/batch")}
    operations = {
        (method, route.path): route
        for route in api.router.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    }
    for (method, path), fast in routes.items():
        operation = operations[(method, path)]
        hints = get_type_hints(fast.handler)
        assert isinstance(hints["return"], type)  # a TypedDict, not Any
        assert operation.response_model in (Prediction, BatchPrediction)
        assert operation.name == fast.handler.__name__
