"""Request and response bodies of the classifier API (the public contract, versioned /v1)."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from services.common.fields import JsonRequest, JsonUuid
from services.common.pgtext import NOT_BLANK_PATTERN, PgText

MAX_TOP_K = 50
_B64 = r"[\t\n\r ]*[A-Za-z0-9+/_-]"
_PAD = r"[\t\n\r ]*="
#: Base64 as the service decodes it (``api._decode_base64``): standard or URL-safe, padding
#: optional, line breaks and spaces anywhere, an optional ``data:...,`` prefix.
IMAGE_BASE64_PATTERN = (
    rf"^(?:data:[^,]*,)?(?:(?:{_B64}){{4}})*"
    rf"(?:(?:{_B64}){{2}}(?:{_PAD}){{0,2}}|(?:{_B64}){{3}}(?:{_PAD})?)?"
    r"[\t\n\r ]*$"
)


def something_to_classify(image: dict[str, Any]) -> Any:
    """The JSON Schema rule "a title, a description or an image" (text that is not blank)."""
    text = {"type": "string", "pattern": NOT_BLANK_PATTERN}
    return [
        {"required": ["title"], "properties": {"title": text}},
        {"required": ["description"], "properties": {"description": text}},
        {"required": ["image"], "properties": {"image": image}},
    ]


class ClassifyRequest(JsonRequest):
    """A product to classify: text and/or an image (base64 of the file's bytes); at least one
    of a title, a description (not blank) or an image."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": something_to_classify({"type": "string", "minLength": 1}),
            "examples": [
                {
                    "title": "Sonix wireless noise cancelling headphones",
                    "description": "Over ear headphones with 40mm drivers.",
                    "top_k": 3,
                }
            ],
        },
    )

    title: PgText = Field(default="", max_length=10_000)
    description: PgText = Field(default="", max_length=10_000)
    image: str | None = Field(
        default=None,
        json_schema_extra={"pattern": IMAGE_BASE64_PATTERN},
        description="Base64 (standard or URL-safe) of a JPEG/PNG/WebP/... file; bytes that are "
        "no image are a 415.",
    )
    top_k: int | None = Field(default=None, ge=1, le=MAX_TOP_K)


class CategoryScore(BaseModel):
    category: str
    probability: float


class ModelRef(BaseModel):
    name: str
    version: str


class Classification(BaseModel):
    prediction_id: UUID
    category: str
    probability: float
    top_k: list[CategoryScore]
    model: ModelRef


class FeedbackRequest(JsonRequest):
    model_config = ConfigDict(extra="forbid")

    prediction_id: JsonUuid
    true_category: PgText = Field(min_length=1, max_length=500)


class Feedback(BaseModel):
    prediction_id: UUID
    true_category: str
    correct: bool
    model: ModelRef


RunStatus = Literal["queued", "running", "succeeded", "rejected", "failed"]


class RetrainingRun(BaseModel):
    """One row of ``classifier_retraining_runs`` (times as ISO 8601 text, as stored)."""

    run_id: UUID
    model_name: str
    status: RunStatus
    reason: str = Field(description="alert or manual")
    trigger: str = Field(description="What started its job: the trigger's name.")
    alert: dict[str, Any] | None = Field(description="The alert that asked for it.")
    job_name: str | None
    serving_version: str | None
    new_version: str | None
    metrics: dict[str, Any] | None
    error: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None


class RetrainingRuns(BaseModel):
    active: RetrainingRun | None = Field(description="The queued or running run, if any.")
    runs: list[RetrainingRun] = Field(description="Newest first.")


class AlertCounts(BaseModel):
    received: int
    matched: int = Field(description="Alerts of the notification that ask for retraining.")


class RetrainingAction(BaseModel):
    """What a notification or a start by hand did (only the fields that apply are sent)."""

    action: Literal["started", "already_running", "ignored"]
    alerts: AlertCounts | None = Field(default=None, description="POST /v1/alerts only.")
    run: RetrainingRun | None = None
    url: str | None = Field(default=None, description="The run's status URL (also Location).")
