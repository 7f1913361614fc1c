"""Settings of the batch-scoring job (env prefix ``SCORE_``; shared names without prefix).

SCORE_MODELS=ride_duration,tip_amount,total_amount SCORE_CHUNK_ROWS=2000 modelfleet score
"""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings

DEFAULT_MODELS = "ride_duration,tip_amount,total_amount"


class ScoreSettings(ServiceSettings):
    """Settings of ``modelfleet score`` (see docs/operations.md, batch scoring)."""

    model_config = SettingsConfigDict(env_prefix="SCORE_")

    service_name: str = "score"
    models: str = Field(
        default=DEFAULT_MODELS,
        description="Comma-separated Triton models to score every row with (taxi models).",
    )
    chunk_rows: int = Field(
        default=2000, ge=1, le=200_000, description="Rows per chunk (one transaction each)."
    )
    triton_batch_rows: int = Field(
        default=1024, ge=1, le=1024, description="Rows per Triton request (max_batch_size)."
    )
    concurrency: int = Field(
        default=4, ge=1, le=64, description="Triton requests in flight at once."
    )
    triton_timeout_s: float = Field(default=10.0, gt=0, description="Deadline of one Triton call.")
    database_timeout_s: float = Field(
        default=30.0, gt=0, description="Deadline of one query (a chunk write is one query)."
    )
    rides_settle_s: float = Field(
        default=10.0,
        ge=0,
        description="Rides created in the last N seconds wait for the next run (late commits).",
    )

    @field_validator("models")
    @classmethod
    def _check_models(cls, value: str) -> str:
        names = [name.strip() for name in value.split(",") if name.strip()]
        if not names or len(set(names)) != len(names):
            raise ValueError("SCORE_MODELS is a comma-separated list of distinct model names")
        return ",".join(names)

    @property
    def model_names(self) -> tuple[str, ...]:
        """``models`` as a tuple."""
        return tuple(self.models.split(","))
