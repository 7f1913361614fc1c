"""Settings of the ride-duration service (env prefix ``RIDE_DURATION_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.ride_duration.routing.settings import ModelServiceSettings


class RideDurationSettings(ModelServiceSettings):
    """Environment -> settings for ride-duration; shared names (DATABASE_URL ...) unprefixed."""

    model_config = SettingsConfigDict(env_prefix="RIDE_DURATION_")

    service_name: str = "ride-duration"
    triton_model: str = Field(default="ride_duration", description="Triton model to serve.")
    sensor_model: str = Field(
        default="ride_duration_sensor",
        description="Triton model of rides sent with the sensor's traffic speed.",
    )
    coalesce_requests: bool = Field(
        default=True, description="Group concurrent requests into one Triton call."
    )
    coalesce_max_rows: int = Field(default=256, ge=1, le=1024)
    coalesce_max_in_flight: int = Field(default=2, ge=1, le=64)
    prediction_log: bool = Field(
        default=True, description="Record every prediction in Postgres (background, batched)."
    )
    prediction_log_flush_interval_s: float = Field(default=0.2, gt=0)
    prediction_log_max_buffered: int = Field(default=50_000, ge=100)
    outcome_window_s: float = Field(
        default=3600.0, gt=0, description="Per-variant MAE/RMSE over outcomes this recent."
    )
    outcome_refresh_s: float = Field(
        default=5.0, gt=0, description="How often the per-variant MAE/RMSE gauges are recomputed."
    )
