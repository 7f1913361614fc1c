"""Settings of the location (``LOCATION_``) and sensor (``SENSOR_``) services.

Both stand in for remote APIs, so each answer waits a delay drawn from a lognormal distribution
(median ``LATENCY_S``, spread ``LATENCY_SIGMA``; the deployment-architectures document's 0.5 s
for location and 2 s for sensor) and fails with a 503 at ``FAILURE_RATE``. Set ``LATENCY_S=0``
for a fast city (tests, demos of the chain that fits its budget).
"""

from __future__ import annotations

import math
from typing import Final

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import DEFAULT_LATENCY_BUDGET_S, ServiceSettings

P99_Z: Final = 2.326
"""The standard normal's 99th percentile: a lognormal's p99 is its median x exp(P99_Z sigma)."""


class CityApiSettings(ServiceSettings):
    """What both simulated APIs have: their answer's latency distribution and failure rate."""

    latency_s: float = Field(
        default=0.5, ge=0, le=60, description="Median delay of an answer (lognormal), seconds."
    )
    latency_sigma: float = Field(
        default=0.25, ge=0, le=3, description="Spread of the delay: the lognormal's sigma."
    )
    failure_rate: float = Field(
        default=0.0, ge=0, le=1, description="Share of requests answered 503 (simulated outage)."
    )
    seed: int | None = Field(
        default=None, description="Seed of the delays and failures (None: a new one per start)."
    )

    def designed_latency_s(self) -> float:
        """The simulated delay's own p99: the lognormal's median x exp(2.326 sigma)."""
        return max(self.latency_s * math.exp(P99_Z * self.latency_sigma), DEFAULT_LATENCY_BUDGET_S)


class LocationSettings(CityApiSettings):
    """Environment -> settings for location (prefix ``LOCATION_``)."""

    model_config = SettingsConfigDict(env_prefix="LOCATION_")

    service_name: str = "location"


class SensorSettings(CityApiSettings):
    """Environment -> settings for sensor (prefix ``SENSOR_``)."""

    model_config = SettingsConfigDict(env_prefix="SENSOR_")

    service_name: str = "sensor"
    latency_s: float = Field(
        default=2.0, ge=0, le=60, description="Median delay of an answer (lognormal), seconds."
    )
