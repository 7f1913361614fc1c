"""The rollout spec file: what to roll out, in which steps, and the gates between steps.

name: ride-duration-v2
target:                       # a model variant, through the service's admin API ...
  kind: routing
  url: http://127.0.0.1:8001
  candidate: {name: canary, model: ride_duration, model_version: 2}
# target: {kind: kubernetes, namespace: modelfleet, strategy: canary,
#          ingress: mf-modelfleet-ride-duration-canary,
#          stable_deployment: mf-modelfleet-ride-duration,
#          canary_deployment: mf-modelfleet-ride-duration-canary}
steps: [{weight: 0.05, pause_s: 60}, {weight: 0.25, pause_s: 60}, {weight: 1.0, pause_s: 60}]
gates:
  - name: canary error ratio
    query: sum(rate(modelfleet_variant_errors_total{variant="canary"}[1m]))
           / sum(rate(modelfleet_variant_requests_total{variant="canary"}[1m]))
    max: 0.01
    on_no_data: pass          # no errors at all: the numerator has no series

spec = load_spec(Path("rollout.yaml"))   # RolloutSpec, or SpecError naming each problem
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

NAME = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
K8S_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class SpecError(ValueError):
    """The spec file is missing, not YAML, or breaks a rule (the message names each)."""


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Candidate(_Closed):
    """The variant to roll out: a Triton model version (routing table ``variants`` entry)."""

    name: str = Field(default="canary", pattern=NAME)
    model: str = Field(min_length=1, max_length=128)
    model_version: int | None = Field(default=None, ge=1)
    role: Literal["canary", "shadow"] = Field(
        default="canary",
        description="canary: the weight is served; shadow: the weight is mirrored, never served.",
    )


class RoutingTarget(_Closed):
    """A model variant of a model service, driven through ``/v1/admin/routing``."""

    kind: Literal["routing"]
    url: str = Field(pattern=r"^https?://", description="The model service's base URL.")
    candidate: Candidate


class KubernetesTarget(_Closed):
    """Objects the chart rendered for a component (names as in `helm template`)."""

    kind: Literal["kubernetes"]
    namespace: str = Field(pattern=K8S_NAME)
    strategy: Literal["canary", "blueGreen"]
    ingress: str | None = Field(default=None, pattern=K8S_NAME, description="canary Ingress")
    stable_deployment: str | None = Field(default=None, pattern=K8S_NAME)
    canary_deployment: str | None = Field(default=None, pattern=K8S_NAME)
    service: str | None = Field(default=None, pattern=K8S_NAME, description="blueGreen Service")
    color: Literal["blue", "green"] | None = Field(
        default=None, description="blueGreen: the colour to switch the Service to."
    )

    @model_validator(mode="after")
    def _names_of_the_strategy(self) -> KubernetesTarget:
        needed = (
            ("ingress", "stable_deployment", "canary_deployment")
            if self.strategy == "canary"
            else ("service", "color")
        )
        missing = [field for field in needed if getattr(self, field) is None]
        if missing:
            raise ValueError(f"strategy {self.strategy} needs {', '.join(missing)}")
        return self


class Step(_Closed):
    """Send ``weight`` of the traffic to the candidate, then wait ``pause_s`` before the gates."""

    weight: float = Field(gt=0.0, le=1.0, allow_inf_nan=False)
    pause_s: float = Field(default=60.0, ge=0.0, le=86_400.0)


class Gate(_Closed):
    """A PromQL instant query whose value must stay within ``min`` / ``max``.

    A query returning several series is judged by its worst one (the highest against ``max``,
    the lowest against ``min``). No series, or NaN (0/0), is ``on_no_data``.
    """

    name: str = Field(min_length=1, max_length=100)
    query: str = Field(min_length=1, max_length=4000)
    max: float | None = Field(default=None, allow_inf_nan=False)
    min: float | None = Field(default=None, allow_inf_nan=False)
    on_no_data: Literal["fail", "pass"] = "fail"

    @model_validator(mode="after")
    def _a_threshold(self) -> Gate:
        if self.max is None and self.min is None:
            raise ValueError(f"gate {self.name!r} needs max or min")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise ValueError(f"gate {self.name!r}: min > max")
        return self


class PrometheusSpec(_Closed):
    """Overrides MODELFLEET_ROLLOUT_PROMETHEUS_URL / _TIMEOUT_S for this rollout."""

    url: str | None = Field(default=None, pattern=r"^https?://")
    timeout_s: float | None = Field(default=None, gt=0, le=60)


class RolloutSpec(_Closed):
    """One rollout: the candidate, its steps, the gates checked after each step's pause."""

    name: str = Field(pattern=NAME, description="Names the state file; one active per name.")
    target: Annotated[RoutingTarget | KubernetesTarget, Field(discriminator="kind")]
    steps: list[Step] = Field(min_length=1, max_length=20)
    gates: list[Gate] = Field(default_factory=list, max_length=20)
    prometheus: PrometheusSpec = PrometheusSpec()

    @model_validator(mode="after")
    def _steps_climb(self) -> RolloutSpec:
        weights = [step.weight for step in self.steps]
        if weights != sorted(weights) or len(set(weights)) != len(weights):
            raise ValueError(f"step weights must strictly increase, got {weights}")
        if isinstance(self.target, KubernetesTarget) and self.target.strategy == "blueGreen":
            if weights != [1.0]:
                raise ValueError("a blueGreen rollout is one step of weight 1.0 (the switch)")
        return self


def parse_spec(data: object) -> RolloutSpec:
    """A spec from parsed YAML/JSON, or SpecError listing every broken rule."""
    try:
        return RolloutSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'spec'}: {e['msg']}" for e in exc.errors()
        )
        raise SpecError(f"invalid rollout spec: {problems}") from exc


def load_spec(path: Path) -> RolloutSpec:
    """Read and validate a spec file."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SpecError(f"cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"{path} is not YAML: {exc}") from exc
    return parse_spec(data)
