"""Request fields that take exactly the JSON their OpenAPI schema describes.

A request model is a :class:`JsonRequest`: strict, so a number given as a string, a boolean
given as a number or an integer given as ``1.5`` is a 422 like any other value outside the
schema, in the fast routes (``model_validate_json``) and in FastAPI's (which validates the parsed
JSON as Python objects); ``3.0`` is the integer 3, as to a JSON Schema. JSON has no UUID or time
type: these fields take the text the schema names (and the Python value, for code that builds a
model):

    class Outcome(JsonRequest):
        model_config = ConfigDict(extra="forbid")
        prediction_id: JsonUuid
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    TypeAdapter,
    WithJsonSchema,
    model_validator,
)

_DATETIME_TEXT: TypeAdapter[datetime] = TypeAdapter(datetime)
_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _uuid(value: Any) -> Any:
    if isinstance(value, str):
        if _UUID.fullmatch(value) is None:
            raise ValueError("a UUID: 8-4-4-4-12 hex digits")
        return UUID(value)
    return value


def _datetime(value: Any) -> Any:
    if isinstance(value, str):
        if _RFC3339.fullmatch(value) is None:
            raise ValueError("an RFC 3339 time: 2026-11-23T19:00:00Z")
        return _DATETIME_TEXT.validate_strings(value)
    return value


def integral(value: Any) -> Any:
    """An integral JSON number (``3.0`` is the integer 3 to a JSON Schema) as an int."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class JsonRequest(BaseModel):
    """A request body: strict, and an integral number (``3.0``) is an integer, as JSON Schema
    reads it (a float field takes the int as it is)."""

    model_config = ConfigDict(strict=True)

    @model_validator(mode="before")
    @classmethod
    def _integral_numbers(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: integral(value) for key, value in data.items()}
        return data


JsonUuid = Annotated[
    UUID, BeforeValidator(_uuid), WithJsonSchema({"type": "string", "format": "uuid"})
]
"""A UUID, as text in JSON."""

JsonDatetime = Annotated[
    datetime,
    BeforeValidator(_datetime),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
"""An RFC 3339 time, as text in JSON."""
