"""Request text stored in Postgres refuses NUL characters at validation (a 422, not a 500)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from services.chatbot.schemas import ChatRequest
from services.classifier.schemas import ClassifyRequest, FeedbackRequest
from services.ride_duration.routing.table import RoutingSpec

STABLE = {"name": "stable", "model": "ride_duration", "role": "stable", "weight": 1.0}


@pytest.mark.parametrize(
    ("model", "body", "field"),
    [
        (ClassifyRequest, {"title": "usb\x00cable"}, "title"),
        (ClassifyRequest, {"title": "cable", "description": "\x00"}, "description"),
        (FeedbackRequest, {"prediction_id": "00000000-0000-0000-0000-000000000001",
                           "true_category": "audio\x00"}, "true_category"),
        (RoutingSpec, {"expected_version": 0, "variants": [STABLE], "comment": "x\x00"}, "comment"),
        (RoutingSpec, {"expected_version": 0, "variants": [STABLE], "salt": "\x00"}, "salt"),
        (ChatRequest, {"question": "what\x00"}, "question"),
    ],
)  # fmt: skip
def test_a_nul_character_is_refused_naming_the_field(
    model: type[BaseModel], body: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    errors = caught.value.errors()
    assert [e["loc"][0] for e in errors] == [field]
    assert "NUL" in errors[0]["msg"]


def test_text_without_nul_passes_unchanged() -> None:
    body = ClassifyRequest.model_validate(
        {"title": "Sonix headphones \u00e9\u4e2d", "description": ""}
    )
    assert body.title == "Sonix headphones \u00e9\u4e2d"
