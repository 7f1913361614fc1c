"""Request and response bodies of the classifier API (the public contract, versioned /v1)."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from services.common.pgtext import PgText

MAX_TOP_K = 50


class ClassifyRequest(BaseModel):
    """A product to classify: text and/or an image (base64 of the file's bytes)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "title": "Sonix wireless noise cancelling headphones",
                    "description": "Over ear headphones with 40mm drivers.",
                    "top_k": 3,
                }
            ]
        },
    )

    title: PgText = Field(default="", max_length=10_000)
    description: PgText = Field(default="", max_length=10_000)
    image: str | None = Field(
        default=None, description="Base64 (standard or URL-safe) of a JPEG/PNG/WebP/... file."
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


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prediction_id: UUID
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
