"""Settings of the backend service (env prefix ``BACKEND_``; shared names unprefixed).

Each downstream the backend calls (ride-duration, location, sensor) is one URL and one deadline,
read from ``BACKEND_<NAME>_URL`` and ``BACKEND_<NAME>_TIMEOUT_S``: the names the Helm chart,
``make up`` and the docs use, so the pair stays two flat settings. Each half is declared with one
type (:data:`DownstreamUrl` carries the URL check, :data:`DownstreamTimeout` the deadline's
bounds), and the pair is read as one value:

    target = settings.downstream("location")   # Downstream("location", url or None, timeout_s)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, ValidationInfo
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings

DownstreamName = Literal["ride-duration", "location", "sensor"]


@dataclass(frozen=True, slots=True)
class Downstream:
    """One downstream: its name, its URL (None: not configured) and the deadline of a call."""

    name: DownstreamName
    url: str | None
    timeout_s: float


def _url_check(*, optional: bool) -> Callable[[str | None, ValidationInfo], str | None]:
    """An http(s) URL without its trailing slash; ``optional``: unset or empty is None."""

    def check(value: str | None, info: ValidationInfo) -> str | None:
        if value is None or (value == "" and optional):
            return None
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            name = f"BACKEND_{(info.field_name or '').upper()}"
            raise ValueError(f"{name} must look like http://host:port[/path]")
        return value.rstrip("/")

    return check


RequiredUrl = Annotated[str, BeforeValidator(_url_check(optional=False))]
"""The base URL of a downstream the backend always calls."""
DownstreamUrl = Annotated[str | None, BeforeValidator(_url_check(optional=True))]
"""The URL of an optional downstream: unset or empty means not configured."""
DownstreamTimeout = Annotated[float, Field(gt=0, le=10)]
"""The deadline of one call to a downstream, in seconds."""


def _optional_url(service: str) -> Any:
    """The field of an optional downstream's base URL."""
    return Field(
        default=None,
        description=f"Base URL of the {service} service (the chain, services/backend/chain.py); "
        f"unset or empty: the answer's `{service}` is null with reason not_configured.",
    )


def _deadline(default_s: float, call: str) -> Any:
    """The field of a downstream call's deadline."""
    return Field(default=default_s, description=f"Deadline of the {call} call.")


class BackendSettings(ServiceSettings):
    """Environment -> settings for backend; shared names (DATABASE_URL ...) unprefixed."""

    model_config = SettingsConfigDict(env_prefix="BACKEND_")

    service_name: str = "backend"
    ride_duration_url: RequiredUrl = Field(
        default="http://127.0.0.1:8001", description="Base URL of the ride-duration service."
    )
    ride_duration_timeout_s: DownstreamTimeout = _deadline(0.5, "initial-duration")
    location_url: DownstreamUrl = _optional_url("location")
    location_timeout_s: DownstreamTimeout = _deadline(1.0, "location")
    sensor_url: DownstreamUrl = _optional_url("sensor")
    sensor_timeout_s: DownstreamTimeout = _deadline(2.0, "sensor")
    request_budget_s: float = Field(
        default=2.0,
        gt=0,
        le=30,
        description="Budget of POST /v1/rides (a caller's shorter X-Request-Budget-Ms wins): "
        "the base duration and the location -> sensor -> duration chain within it.",
    )
    write_reserve_s: float = Field(
        default=0.2,
        ge=0,
        le=5,
        description="Part of the budget kept for the database write after the downstream calls.",
    )
    outbox_stats_interval_s: float = Field(
        default=5.0, gt=0, description="How often the outbox backlog gauges are refreshed."
    )
    relay: bool = Field(default=True, description="Run the outbox relay in this process.")
    relay_batch_size: int = Field(default=256, ge=1, le=5000)
    relay_idle_interval_s: float = Field(
        default=0.5, gt=0, description="Outbox poll interval when nothing woke the relay."
    )
    relay_publish_timeout_s: float = Field(default=2.0, gt=0, description="PubAck deadline.")
    relay_retry_max_s: float = Field(default=2.0, gt=0, description="Cap of the error backoff.")
    sse_recheck_interval_s: float = Field(
        default=2.0, gt=0, description="SSE re-reads results this often even without a NOTIFY."
    )
    sse_max_duration_s: float = Field(default=900.0, gt=0, description="SSE stream lifetime.")
    idempotency_key_ttl_s: float = Field(
        default=86400.0, ge=1, description="How long an Idempotency-Key is honoured."
    )
    outbox_retention_s: float = Field(
        default=604800.0, ge=1, description="How long a published outbox event is kept."
    )
    prune_interval_s: float = Field(
        default=60.0, gt=0, description="How often expired keys and old events are deleted."
    )
    prune_batch_size: int = Field(
        default=5000, ge=1, le=100_000, description="Rows deleted per table per transaction."
    )

    def designed_latency_s(self) -> float:
        """POST /v1/rides may wait for the chain up to its budget, then writes the ride."""
        return self.request_budget_s + self.write_reserve_s

    def downstream(self, name: DownstreamName) -> Downstream:
        """The URL and deadline of ``name`` as one value (what a call to it needs)."""
        match name:
            case "ride-duration":
                return Downstream(name, self.ride_duration_url, self.ride_duration_timeout_s)
            case "location":
                return Downstream(name, self.location_url, self.location_timeout_s)
            case "sensor":
                return Downstream(name, self.sensor_url, self.sensor_timeout_s)
