"""Settings of the dashboards service (env prefix ``DASHBOARDS_``).

    DASHBOARDS_PROMETHEUS_URL=http://127.0.0.1:9090 DASHBOARDS_NAMESPACE=local \
        uvicorn --factory services.dashboards.app:create_app
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings

PROJECT_ROOT = Path(__file__).resolve().parents[2]
#: Where scripts/ensure-tools installs the npm packages (uplot among them).
UPLOT_DIR = PROJECT_ROOT / ".venv" / "npm" / "node_modules" / "uplot"


class DashboardsSettings(ServiceSettings):
    """Environment -> settings for the dashboards page; shared names (AUTH_* ...) unprefixed."""

    model_config = SettingsConfigDict(env_prefix="DASHBOARDS_")

    service_name: str = "dashboards"

    prometheus_url: str = Field(
        default="http://127.0.0.1:9090", description="The Prometheus the panels' PromQL runs on."
    )
    prometheus_timeout_s: float = Field(
        default=5.0, gt=0, le=60, description="Deadline of one range query (client and server)."
    )
    folder: Path = Field(
        default=PROJECT_ROOT / "monitoring" / "dashboards",
        description="The dashboard JSON files (the ones the chart ships as ConfigMaps).",
    )
    uplot_dir: Path = Field(
        default=UPLOT_DIR, description="The npm package uplot (its dist/ files are served)."
    )
    namespace: str = Field(
        default=".*",
        description="The value of a `$namespace` template variable (the local stack: local).",
    )
    scrape_interval_s: float = Field(
        default=15.0,
        gt=0,
        description="Prometheus' scrape interval: the least step and the "
        "base of `$__rate_interval`.",
    )
    max_points: int = Field(default=240, ge=10, le=11_000, description="Points per series.")
    max_series: int = Field(default=50, ge=1, le=1_000, description="Series per panel shown.")

    @field_validator("prometheus_url")
    @classmethod
    def _check_prometheus_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("DASHBOARDS_PROMETHEUS_URL must look like http://host:port")
        return value.rstrip("/")

    @field_validator("folder")
    @classmethod
    def _check_folder(cls, value: Path) -> Path:
        if not value.is_dir() or not any(value.glob("*.json")):
            raise ValueError(f"DASHBOARDS_FOLDER {value} holds no dashboard (*.json)")
        return value
