"""Request and response bodies of the classifier API (the public contract, versioned /v1)."""

from __future__ import annotations

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
