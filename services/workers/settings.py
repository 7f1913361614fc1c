"""Settings of the streaming workers (env prefix ``WORKERS_``; shared names unprefixed)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class WorkerSettings(ServiceSettings):
    """Environment -> settings for every worker kind (the kind comes from the command line)."""

    model_config = SettingsConfigDict(env_prefix="WORKERS_")

    service_name: str = "worker"
    database_pool_max_size: int = Field(default=4, ge=1)
    tip_model: str = Field(default="tip_amount", description="Triton model of the tip worker.")
    cost_model: str = Field(default="total_amount", description="Triton model of the cost worker.")
    duration_model: str = Field(
        default="ride_duration", description="Triton model of the dynamic-duration worker."
    )
    sensor_model: str = Field(
        default="ride_duration_sensor",
        description="Triton model of the sensor-duration worker (features + traffic speed).",
    )
    location_url: str = Field(
        default="http://127.0.0.1:8004", description="Base URL of the location service."
    )
    location_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="Deadline of the location call.",
    )
    sensor_url: str = Field(
        default="http://127.0.0.1:8005", description="Base URL of the sensor service."
    )
    sensor_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=60,
        description="Deadline of the sensor call.",
    )
    fetch_batch: int = Field(default=32, ge=1, le=1000, description="Messages per pull.")
    fetch_timeout_s: float = Field(default=1.0, gt=0, description="Long-poll of one pull.")
    ack_wait_s: float = Field(
        default=10.0, gt=0, description="Unacked messages are redelivered after this."
    )
    max_deliveries: int = Field(
        default=5, ge=1, description="A failing (not dependency-down) event is dead-lettered then."
    )
    retry_delay_s: float = Field(default=0.2, gt=0, description="First redelivery delay.")
    retry_delay_max_s: float = Field(default=3.0, gt=0, description="Cap of redelivery delays.")
    lag_interval_s: float = Field(default=2.0, gt=0, description="Consumer-lag gauge refresh.")
