"""Settings of `modelfleet rollout` (environment ``MODELFLEET_ROLLOUT_*``).

settings = RolloutSettings()          # MODELFLEET_ROLLOUT_STATE_DIR, ..._PROMETHEUS_URL ...
settings.state_dir                    # where each rollout's state file lives
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class RolloutSettings(BaseSettings):
    """Defaults a spec file may override (its ``prometheus`` block)."""

    model_config = SettingsConfigDict(env_prefix="MODELFLEET_ROLLOUT_", extra="ignore", frozen=True)

    state_dir: Path | None = Field(
        default=None,
        description="One <name>.json state file per rollout; None: $MODELFLEET_HOME/rollouts.",
    )
    prometheus_url: str = Field(default="http://127.0.0.1:9090", description="Prometheus API.")
    prometheus_timeout_s: float = Field(default=5.0, gt=0, description="Deadline of one query.")
    http_timeout_s: float = Field(default=5.0, gt=0, description="Deadline of an admin API call.")
    actor: str = Field(
        default="rollout-controller", description="x-modelfleet-actor of routing table writes."
    )
    admin_token: SecretStr | None = Field(
        default=None, description="Bearer token for the model services' admin API, if required."
    )
    kube_in_cluster: bool = Field(
        default=False, description="Use the pod's ServiceAccount (else the kubeconfig)."
    )
    kubeconfig: Path | None = Field(
        default=None, description="kubeconfig file; None: $KUBECONFIG or ~/.kube/config."
    )
    poll_interval_s: float = Field(
        default=1.0, gt=0, description="How often a pause looks for an abort or promote."
    )
