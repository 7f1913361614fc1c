"""Settings shared by every service: the one place configuration enters the code.

Configuration flows one way: environment -> a settings class -> the app factory. Each service
subclasses :class:`ServiceSettings` with its own ``env_prefix`` (``RIDE_DURATION_`` ...). The
names every service shares have no prefix: ``DATABASE_URL``, ``NATS_URL``, ``TRITON_GRPC_URL``.

    class RideDurationSettings(ServiceSettings):
        model_config = SettingsConfigDict(env_prefix="RIDE_DURATION_")
        model_name: str = "ride_duration"

    settings = RideDurationSettings()  # reads the environment once, fails fast when invalid
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class ServiceSettings(BaseSettings):
    """Settings every service has. Subclass it per service and set ``env_prefix``."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    service_name: str = "modelfleet"
    environment: Literal["local", "test", "staging", "production"] = "local"
    log_level: LogLevel = "INFO"
    log_json: bool = True

    database_url: str = Field(
        default="postgresql://modelfleet@127.0.0.1:5433/modelfleet",
        validation_alias=AliasChoices("DATABASE_URL", "database_url"),
        description="PostgreSQL DSN (asyncpg). Shared by every service.",
    )
    database_pool_min_size: int = Field(default=1, ge=0)
    database_pool_max_size: int = Field(default=10, ge=1)
    database_timeout_s: float = Field(default=2.0, gt=0, description="Per-query deadline.")

    nats_url: str = Field(
        default="nats://127.0.0.1:4222",
        validation_alias=AliasChoices("NATS_URL", "nats_url"),
        description="NATS server URL(s), comma separated. Shared by every service.",
    )

    triton_grpc_url: str = Field(
        default="127.0.0.1:8101",
        validation_alias=AliasChoices("TRITON_GRPC_URL", "triton_grpc_url"),
        description="Triton gRPC endpoint host:port. Shared by every service.",
    )
    triton_timeout_s: float = Field(default=1.0, gt=0, description="Deadline of one Triton call.")
    triton_retries: int = Field(
        default=2, ge=0, le=5, description="Extra attempts on UNAVAILABLE only."
    )

    http_fast_routes: bool = Field(
        default=True,
        description="Serve the service's hot JSON endpoints beneath FastAPI's routing layer.",
    )
    startup_timeout_s: float = Field(
        default=30.0, gt=0, description="How long start-up waits for dependencies."
    )

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"postgresql", "postgres"} or not parts.hostname:
            raise ValueError(
                "DATABASE_URL must look like postgresql://user[:password]@host[:port]/db"
            )
        return value

    @field_validator("nats_url")
    @classmethod
    def _check_nats_url(cls, value: str) -> str:
        for url in value.split(","):
            if urlsplit(url.strip()).scheme not in {"nats", "tls", "ws", "wss"}:
                raise ValueError("NATS_URL must look like nats://host:port[,nats://host:port]")
        return value

    @field_validator("triton_grpc_url")
    @classmethod
    def _check_triton_url(cls, value: str) -> str:
        if "://" in value:
            raise ValueError("TRITON_GRPC_URL is host:port, without a scheme (e.g. triton:8001)")
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError("TRITON_GRPC_URL must be host:port (e.g. 127.0.0.1:8101)")
        return value
