"""Settings shared by every service: the one place configuration enters the code.

Configuration flows one way: environment -> a settings class -> the app factory. Each service
subclasses :class:`ServiceSettings` with its own ``env_prefix`` (``RIDE_DURATION_`` ...). The
names every service shares have no prefix (each declared with :func:`shared`): ``DATABASE_URL``,
``NATS_URL``, ``TRITON_GRPC_URL`` and the ``AUTH_*`` settings of :mod:`services.common.security`.
Secrets are ``SecretStr``: a password inside ``DATABASE_URL`` is moved to ``database_password``
when the settings are read, so ``database_url`` can be logged and the password never is.

    class RideDurationSettings(ServiceSettings):
        model_config = SettingsConfigDict(env_prefix="RIDE_DURATION_")
        model_name: str = "ride_duration"

    settings = RideDurationSettings()  # reads the environment once, fails fast when invalid
"""

from __future__ import annotations

from typing import Any, Final, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_LATENCY_BUDGET_S: Final = 0.25
"""The p99 request duration a service is held to unless it says otherwise."""

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


def shared(env: str, default: Any, **field: Any) -> Any:
    """A setting every service shares: read from ``env`` exactly, never with a service prefix.

    The field's own (lower-case) name stays accepted too, as a keyword argument of the settings
    class; ``field`` takes :func:`pydantic.Field`'s constraints and description.
    """
    return Field(default, validation_alias=AliasChoices(env, env.lower()), **field)


class ServiceSettings(BaseSettings):
    """Settings every service has. Subclass it per service and set ``env_prefix``."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    service_name: str = "modelfleet"
    environment: Literal["local", "test", "staging", "production"] = "local"
    log_level: LogLevel = "INFO"
    log_json: bool = True
    latency_budget_s: float | None = Field(
        default=None,
        gt=0,
        le=3600,
        description="p99 request duration this service is held to (exported as"
        " modelfleet_latency_budget_seconds; ModelfleetLatencyP99OverBudget). Unset: what the"
        " service's design gives (250 ms for most).",
    )

    database_url: str = shared(
        "DATABASE_URL",
        "postgresql://modelfleet@127.0.0.1:5433/modelfleet",
        description="PostgreSQL DSN (asyncpg). Shared by every service.",
    )
    database_password: SecretStr | None = shared(
        "DATABASE_PASSWORD",
        None,
        description="PostgreSQL password (taken out of DATABASE_URL when it holds one).",
    )
    database_pool_min_size: int = Field(default=1, ge=0)
    database_pool_max_size: int = Field(default=10, ge=1)
    database_timeout_s: float = Field(default=2.0, gt=0, description="Per-query deadline.")

    nats_url: str = shared(
        "NATS_URL",
        "nats://127.0.0.1:4222",
        description="NATS server URL(s), comma separated. Shared by every service.",
    )

    triton_grpc_url: str = shared(
        "TRITON_GRPC_URL",
        "127.0.0.1:8101",
        description="Triton gRPC endpoint host:port. Shared by every service.",
    )
    triton_http_url: str = shared(
        "TRITON_HTTP_URL",
        "http://127.0.0.1:8100",
        description="Triton HTTP endpoint http://host:port (inference with "
        "TRITON_INFER_TRANSPORT=http). Shared by every service.",
    )
    triton_infer_transport: Literal["grpc", "http"] = shared(
        "TRITON_INFER_TRANSPORT",
        "grpc",
        description="How inference calls reach Triton: grpc, or http (binary tensors over "
        "keep-alive HTTP/1.1, a quarter of the CPU per call; decision 53). Every other call "
        "is gRPC.",
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

    # -- security (services/common/security): AUTH_* shared, the abuse limits per service.
    auth_mode: Literal["none", "jwt"] = shared(
        "AUTH_MODE",
        "none",
        description="none: every route open (local); jwt: OIDC bearer tokens or API keys.",
    )
    auth_jwks_url: str = shared("AUTH_JWKS_URL", "")
    auth_issuer: str = shared("AUTH_ISSUER", "")
    auth_audience: str = shared("AUTH_AUDIENCE", "")
    auth_scope_prefix: str = shared(
        "AUTH_SCOPE_PREFIX",
        "modelfleet:",
        description="Token scopes are <prefix>read, <prefix>write, <prefix>admin.",
    )
    auth_leeway_s: float = shared(
        "AUTH_LEEWAY_S", 30.0, ge=0, le=300, description="Clock skew allowed on exp / nbf / iat."
    )
    auth_jwks_timeout_s: float = shared("AUTH_JWKS_TIMEOUT_S", 2.0, gt=0)
    auth_jwks_cache_s: float = shared("AUTH_JWKS_CACHE_S", 600.0, gt=0)
    auth_jwks_min_refresh_s: float = shared(
        "AUTH_JWKS_MIN_REFRESH_S",
        10.0,
        ge=0,
        description="At most one JWKS refresh per this many seconds for unknown key ids.",
    )
    auth_api_key_cache_s: float = shared(
        "AUTH_API_KEY_CACHE_S",
        5.0,
        ge=0,
        le=60,
        description="How long a verified API key is trusted without Postgres (revocation bound).",
    )
    auth_api_key_pepper: SecretStr = shared(
        "AUTH_API_KEY_PEPPER",
        SecretStr(""),
        description="HMAC key mixed into stored API key hashes (a Secret in the cluster).",
    )
    rate_limit_per_s: float = Field(
        default=0.0, ge=0, description="Requests per second per identity (token bucket); 0: off."
    )
    rate_limit_burst: int = Field(default=50, ge=1, description="Token bucket size per identity.")
    request_timeout_s: float = Field(
        default=30.0, gt=0, description="Deadline of a request until its response starts (504)."
    )
    max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="Request body limit of routes without their own."
    )
    cors_origins: str = Field(
        default="", description="Comma-separated origins allowed by CORS; empty: CORS off."
    )
    identity_metrics_top_n: int = Field(
        default=20, ge=0, le=1000, description="Identities with their own metric label."
    )

    @model_validator(mode="before")
    @classmethod
    def _password_out_of_url(cls, data: Any) -> Any:
        """Move a password in DATABASE_URL to ``database_password`` (a SecretStr)."""
        if not isinstance(data, dict):
            return data
        for key, value in data.items():
            if key.lower() != "database_url" or not isinstance(value, str):
                continue
            parts = urlsplit(value)
            if parts.password is None:
                break
            host = parts.hostname or ""
            host = f"[{host}]" if ":" in host else host
            netloc = f"{parts.username or ''}@{host}" + (f":{parts.port}" if parts.port else "")
            data = {**data, key: urlunsplit(parts._replace(netloc=netloc))}
            if not any(k.lower() == "database_password" for k in data):
                data["database_password"] = unquote(parts.password)
            break
        return data

    @model_validator(mode="after")
    def _check_auth(self) -> ServiceSettings:
        if self.auth_mode == "jwt":
            missing = [
                name
                for name, value in (
                    ("AUTH_JWKS_URL", self.auth_jwks_url),
                    ("AUTH_ISSUER", self.auth_issuer),
                    ("AUTH_AUDIENCE", self.auth_audience),
                )
                if not value
            ]
            if missing:
                raise ValueError(f"AUTH_MODE=jwt needs {', '.join(missing)}")
            parts = urlsplit(self.auth_jwks_url)
            loopback = parts.hostname in {"127.0.0.1", "localhost", "::1"}
            if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
                raise ValueError("AUTH_JWKS_URL must be https:// (http only on loopback)")
        return self

    @property
    def cors_origin_list(self) -> list[str]:
        """``cors_origins`` as a list (empty: CORS off)."""
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]

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

    def latency_budget(self) -> float:
        """The p99 request duration this service is held to: ``LATENCY_BUDGET_S``, else
        :meth:`designed_latency_s`."""
        return self.latency_budget_s or self.designed_latency_s()

    def designed_latency_s(self) -> float:
        """The p99 this service is designed for when ``LATENCY_BUDGET_S`` is unset; a service
        whose requests wait by design (a budgeted chain, a simulated remote API) overrides it."""
        return DEFAULT_LATENCY_BUDGET_S

    @field_validator("triton_grpc_url")
    @classmethod
    def _check_triton_url(cls, value: str) -> str:
        if "://" in value:
            raise ValueError("TRITON_GRPC_URL is host:port, without a scheme (e.g. triton:8001)")
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError("TRITON_GRPC_URL must be host:port (e.g. 127.0.0.1:8101)")
        return value

    @field_validator("triton_http_url")
    @classmethod
    def _check_triton_http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname or parts.path.strip("/"):
            raise ValueError("TRITON_HTTP_URL must look like http://host:port (e.g. triton:8000)")
        return value
