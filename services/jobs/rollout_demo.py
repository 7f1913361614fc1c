"""`modelfleet demo rollout`: two canaries of ride-duration through `modelfleet rollout`, on a
running local stack (`make up`), gated by a real Prometheus scraping the service.

1. The stable variant is pinned to the version served now (a new version must not become the
   default by being the newest).
2. Load starts: rides with a known actual duration (synthetic trips, another seed than the
   training set); every answer's truth goes to ``POST /v1/outcomes``, so each variant has an
   MAE over the window.
3. A deliberately worse version (``models.ride_duration.variants``, underfit) is published and
   loaded into Triton, and rolled out 10% -> 50% -> 100%; its MAE gate fails at the first step
   and the controller rolls the table back by itself.
4. A better one is rolled out the same way and promoted.

Every request's answer is recorded with the step in force: the demo reports the observed
canary share per step, the answers after the abort (all stable) and after the promotion (all
the new version), and the failed requests (expected: none).

    outcome = run_rollout_demo(StackSettings(), say=print)
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from models.repository import BuildResult
from models.ride_duration.data import clean_trips, generate_trips
from models.ride_duration.variants import Quality, publish_candidate
from services.common.triton import TritonClient
from services.rollout.controller import Controller
from services.rollout.prometheus import PrometheusClient
from services.rollout.settings import RolloutSettings
from services.rollout.spec import RolloutSpec, RoutingTarget, parse_spec
from services.rollout.state import RolloutState, StateStore
from services.rollout.targets import RoutingTableTarget, Target
from services.stack.prometheus import LocalPrometheus
from services.stack.settings import StackSettings

MODEL = "ride_duration"
SERVICE = "ride-duration"
WEIGHTS = (0.1, 0.5, 1.0)
#: Distinct user ids of the load: the canary and A/B split sticky by user, so per rider.
RIDERS = 500
MAE = "modelfleet_variant_outcome_mae"


@dataclass
class DemoOutcome:
    """What the demo observed."""

    states: dict[str, RolloutState] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    stable_version: int = 0
    #: phase ("worse 10%", "worse aborted", ...) -> answering variant -> answers
    answers: dict[str, Counter[str]] = field(default_factory=dict)
    #: phase -> answering Triton version -> answers
    answered_versions: dict[str, Counter[str]] = field(default_factory=dict)
    requests: int = 0
    failed: list[str] = field(default_factory=list)


def _passengers(value: float) -> int:
    """TLC passenger_count (null or 0 in some rows) as the API's 1..9."""
    return 1 if math.isnan(value) else min(max(int(value), 1), 9)


def demo_rides(count: int, *, seed: int) -> list[tuple[dict[str, Any], float]]:
    """(request body, actual minutes) of ``count`` clean synthetic trips."""
    trips = clean_trips(generate_trips(count * 2, seed=seed)).head(count)
    return [
        (
            {
                "pickup_datetime": row.tpep_pickup_datetime.isoformat(),
                "pickup_location_id": int(row.PULocationID),
                "dropoff_location_id": int(row.DOLocationID),
                "trip_distance": float(row.trip_distance),
                "passenger_count": _passengers(row.passenger_count),
                "user_id": f"rider-{i % RIDERS}",
            },
            float(row.duration_minutes),
        )
        for i, row in enumerate(trips.itertuples())
    ]


class Load:
    """A thread sending rides and their outcomes until stopped; answers counted per phase."""

    def __init__(self, url: str, rides: list[tuple[dict[str, Any], float]], out: DemoOutcome):
        self.url, self.rides, self.out = url, rides, out
        self.phase = "start"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rollout-demo-load", daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        outcomes: list[dict[str, Any]] = []
        with httpx.Client(base_url=self.url, timeout=5.0) as http:
            i = 0
            while not self._stop.is_set():
                body, actual = self.rides[i % len(self.rides)]
                i += 1
                phase = self.phase
                self.out.requests += 1
                try:
                    response = http.post("/v1/predict", json=body)
                except httpx.HTTPError as exc:
                    self.out.failed.append(f"{phase}: {type(exc).__name__}")
                    continue
                if response.status_code != 200:
                    self.out.failed.append(f"{phase}: HTTP {response.status_code}")
                    continue
                answer = response.json()
                model = answer["model"]
                self.out.answers.setdefault(phase, Counter())[model["variant"]] += 1
                self.out.answered_versions.setdefault(phase, Counter())[model["version"]] += 1
                outcomes.append(
                    {"prediction_id": answer["prediction_id"], "actual_minutes": actual}
                )
                if len(outcomes) >= 20:
                    http.post("/v1/outcomes", json={"outcomes": outcomes})
                    outcomes = []


class _PhaseTarget(RoutingTableTarget):
    """The routing target, telling the load which step is in force once it is."""

    def __init__(self, *args: Any, load: Load, quality: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._load, self._quality = load, quality

    def set_weight(self, weight: float, baseline: dict[str, Any]) -> str:
        done = super().set_weight(weight, baseline)
        self._load.phase = f"{self._quality} {weight:.0%}"
        return done

    def promote(self, baseline: dict[str, Any]) -> str:
        done = super().promote(baseline)
        self._load.phase = f"{self._quality} promoted"
        return done

    def rollback(self, baseline: dict[str, Any]) -> str:
        done = super().rollback(baseline)
        self._load.phase = f"{self._quality} aborted"
        return done


def rollout_spec(
    *, name: str, url: str, prometheus: str, version: int, pause_s: float
) -> RolloutSpec:
    """The demo's spec: 10% -> 50% -> 100%, gated on errors, p99 latency and MAE vs stable."""
    canary = f'service="{SERVICE}",variant="canary"'
    window = "30s"
    return parse_spec({
        "name": name,
        "target": {"kind": "routing", "url": url,
                   "candidate": {"name": "canary", "model": MODEL, "model_version": version}},
        "steps": [{"weight": w, "pause_s": pause_s} for w in WEIGHTS],
        "gates": [
            {"name": "canary error ratio", "max": 0.01, "on_no_data": "pass",
             "query": f"sum(rate(modelfleet_variant_errors_total{{{canary}}}[{window}])) / "
                      f"sum(rate(modelfleet_variant_requests_total{{{canary}}}[{window}]))"},
            {"name": "canary p99 latency (s)", "max": 1.0,
             "query": "histogram_quantile(0.99, sum by (le) (rate("
                      f"modelfleet_variant_latency_seconds_bucket{{{canary}}}[{window}])))"},
            {"name": "canary MAE / stable MAE", "max": 1.15,
             "query": f'max({MAE}{{{canary},model_version="{version}"}}) / '
                      f'max({MAE}{{service="{SERVICE}",variant="stable"}})'},
        ],
        "prometheus": {"url": prometheus, "timeout_s": 5},
    })  # fmt: skip


def pin_stable(http: httpx.Client) -> int:
    """Pin the stable variant to the newest READY version (the one served now); that version."""
    models = http.get("/v1/models").raise_for_status().json()["models"]
    ready = [int(m["version"]) for m in models if m["name"] == MODEL and m["state"] == "READY"]
    version = max(ready)
    current = http.get("/v1/admin/routing").raise_for_status().json()
    body = {"expected_version": current["version"], "comment": "demo: stable pinned",
            "variants": [{"name": "stable", "model": MODEL, "model_version": version,
                          "role": "stable", "weight": 1.0}]}  # fmt: skip
    http.put("/v1/admin/routing", json=body).raise_for_status()
    return version


def publish(settings: StackSettings, quality: Quality, *, seed: int, rows: int) -> BuildResult:
    """Train the candidate, write it as the next version and load it into the running Triton."""
    result = publish_candidate(
        settings.paths.model_repository, quality=quality, seed=seed, rows=rows
    )
    reload_model(settings)
    return result


def reload_model(settings: StackSettings) -> None:
    """Make the running Triton load ride_duration's versions as the repository has them now."""

    async def load() -> None:
        triton = TritonClient(settings.triton_grpc_url, timeout_s=5.0)
        try:
            await triton.load_model(MODEL)
        finally:
            await triton.close()

    asyncio.run(load())


def _controller(
    home: Path, prometheus: str, *, load: Load, quality: str, say: Callable[[str], None]
) -> Controller:
    """A controller whose routing target tells the load which step is in force."""
    settings = RolloutSettings(state_dir=home / "rollouts", poll_interval_s=0.5)

    def target_for(spec: RolloutSpec) -> Target:
        assert isinstance(spec.target, RoutingTarget)
        return _PhaseTarget(spec.target, settings, rollout=spec.name, load=load, quality=quality)

    return Controller(
        StateStore(home / "rollouts"),
        target_for=target_for,
        prometheus_for=lambda _: PrometheusClient(prometheus, timeout_s=5.0),
        report=say,
        poll_interval_s=settings.poll_interval_s,
    )


def run_rollout_demo(
    settings: StackSettings,
    *,
    say: Callable[[str], None],
    pause_s: float = 12.0,
    rows: int = 40_000,
    seed: int = 11,
) -> DemoOutcome:
    """The whole story against the running stack (see the module's docstring)."""
    out = DemoOutcome()
    url = f"http://{settings.host}:{settings.ride_duration_port}"
    home = settings.paths.home / "rollout-demo"
    with httpx.Client(base_url=url, timeout=10.0) as http:
        out.stable_version = pin_stable(http)
    say(f"stable pinned to {MODEL} v{out.stable_version}")
    targets = {SERVICE: f"{settings.host}:{settings.ride_duration_port}"}
    with (
        LocalPrometheus(home / "prometheus", targets) as prometheus,
        Load(url, demo_rides(3000, seed=seed + 1000), out) as load,
    ):
        say(f"prometheus {prometheus.url} scraping {SERVICE} every 1 s; load running")
        for quality in ("worse", "better"):
            say(f"training the {quality} candidate ({rows} rows) ...")
            version = publish(settings, quality, seed=seed, rows=rows).version
            out.versions[quality] = version
            say(f"{quality} candidate: {MODEL} v{version} loaded in Triton")
            spec = rollout_spec(
                name=f"demo-{quality}-v{version}",
                url=url,
                prometheus=prometheus.url,
                version=version,
                pause_s=pause_s,
            )
            controller = _controller(home, prometheus.url, load=load, quality=quality, say=say)
            out.states[quality] = controller.start(spec)
            threading.Event().wait(3.0)  # answers under the final table
    _summary(out, say)
    return out


def _summary(out: DemoOutcome, say: Callable[[str], None]) -> None:
    for phase, answers in out.answers.items():
        total = sum(answers.values())
        share = answers.get("canary", 0) / total if total else 0.0
        versions = dict(out.answered_versions.get(phase, {}))
        say(f"  {phase:18} {total:5} answers, canary share {share:6.1%}, versions {versions}")
    say(f"requests {out.requests}, failed {len(out.failed)}")
    for quality, state in out.states.items():
        say(f"{quality}: {state.status} ({state.reason})")
