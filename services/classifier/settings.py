"""Settings of the classifier service (env prefix ``CLASSIFIER_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class ClassifierSettings(ServiceSettings):
    """Environment -> settings for classifier; shared names (DATABASE_URL ...) unprefixed."""

    model_config = SettingsConfigDict(env_prefix="CLASSIFIER_")

    service_name: str = "classifier"
    triton_model: str = Field(default="classifier", description="Triton model to serve.")
    max_image_bytes: int = Field(
        default=2 * 1024 * 1024, ge=1024, description="Largest accepted image (decoded bytes)."
    )
    max_text_chars: int = Field(default=10_000, ge=100, description="Per text field.")
    default_top_k: int = Field(default=3, ge=1, le=50)
    quality_window: int = Field(
        default=500,
        ge=10,
        le=100_000,
        description="Rolling window: the last N labelled predictions per model version.",
    )
