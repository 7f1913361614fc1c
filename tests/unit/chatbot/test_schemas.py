"""The chat request contract: what is refused with 422 before any work is done."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.chatbot.schemas import ChatRequest


def test_question_is_trimmed() -> None:
    assert ChatRequest(question="  cheapest laptop?  ").question == "cheapest laptop?"


@pytest.mark.parametrize(
    "body",
    [
        {"question": "   "},
        {"question": "a\x00b"},  # Postgres text cannot hold NUL: refused, never a 500
        {"question": "q", "filters": {"source": "web"}},
        {"question": "q", "top_k": 0},
        {"question": "q", "unknown": 1},
    ],
)
def test_invalid_requests_are_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ChatRequest.model_validate(body)
