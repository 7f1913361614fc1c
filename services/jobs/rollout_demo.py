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
5. The other strategies, on the same load (``run_strategies``): an A/B test of the first
   version against the promoted one (sticky by rider: no rider sees both), a shadow of the
   worse version behind stable (answer p99 with the shadow off and on, and the comparisons it
   made), blue/green (everything to the first version in one write, the instant rollback) and
   rolling (the promoted version back in fixed 25% slices, error and latency gates only).

Every request's answer is recorded with the step in force: the demo reports the observed
share per step and variant, the answer latency per step, the answers after the abort (all
stable) and after the promotion (all the new version), and the failed requests (expected: none).

    outcome = run_rollout_demo(StackSettings(), say=print)
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

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
ROLLING_WEIGHTS = (0.25, 0.5, 0.75, 1.0)
#: Distinct user ids of the load: the canary and A/B split sticky by user, so per rider.
RIDERS = 500
MAE = "modelfleet_variant_outcome_mae"
#: The MAE gate: the worse candidate is ~3x stable's MAE, the better one 1.0-1.1x measured at a
#: 10% step (its window holds a few hundred outcomes), so 1.25 separates them with margin.
MAE_RATIO_MAX = 1.25
T = TypeVar("T")


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
    #: phase -> answer latencies (ms) seen by the load
    latency_ms: dict[str, list[float]] = field(default_factory=dict)
    #: phase -> rider (user id) -> the variants that answered them
    riders: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    #: shadow comparisons made while the shadow ran, by outcome (agree, disagree, error)
    shadow_comparisons: dict[str, float] = field(default_factory=dict)
    requests: int = 0
    failed: list[str] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        """The story as told: the worse canary aborted, the better one and the rolling update
        promoted, no rider answered by both A/B variants, no request failed."""
        statuses = {quality: state.status for quality, state in self.states.items()}
        expected = {"worse": "aborted", "better": "promoted", "rolling": "promoted"}
        flipped = any(len(seen) > 1 for seen in self.riders.get("a/b", {}).values())
        return statuses == expected and not flipped and not self.failed

    def p99_ms(self, phase: str) -> float:
        """The 99th percentile answer latency of a phase (nearest rank)."""
        ordered = sorted(self.latency_ms.get(phase, []))
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]


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
            },
            float(row.duration_minutes),
        )
        for row in trips.itertuples()
    ]


class Load:
    """A thread sending rides and their outcomes until stopped; answers counted per phase.

    Each request goes as a rider drawn at random from ``RIDERS`` (so a rider's trips vary and
    a variant's riders see the same mix of trips as the others'). A request counts for a phase
    only when that phase was in force from its start to its answer: ``switch(...)`` marks the
    moments the table changes, and requests across one are left out.
    """

    SWITCHING = "(switching)"

    def __init__(
        self, url: str, rides: list[tuple[dict[str, Any], float]], out: DemoOutcome, *, seed: int
    ):
        self.url, self.rides, self.out = url, rides, out
        self.phase = "start"
        self._random = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rollout-demo-load", daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def switch(self, change: Callable[[], T], phase: str) -> T:
        """Run ``change`` (a routing table write) and then count answers under ``phase``."""
        self.phase = self.SWITCHING
        try:
            return change()
        finally:
            self.phase = phase

    def _run(self) -> None:
        outcomes: list[dict[str, Any]] = []
        with httpx.Client(base_url=self.url, timeout=5.0) as http:
            i = 0
            while not self._stop.is_set():
                ride, actual = self.rides[i % len(self.rides)]
                i += 1
                body = {**ride, "user_id": f"rider-{self._random.randrange(RIDERS)}"}
                phase = self.phase
                self.out.requests += 1
                started = time.perf_counter()
                try:
                    response = http.post("/v1/predict", json=body)
                except httpx.HTTPError as exc:
                    self.out.failed.append(f"{phase}: {type(exc).__name__}")
                    continue
                elapsed_ms = (time.perf_counter() - started) * 1000
                if response.status_code != 200:
                    self.out.failed.append(f"{phase}: HTTP {response.status_code}")
                    continue
                answer = response.json()
                outcomes.append(
                    {"prediction_id": answer["prediction_id"], "actual_minutes": actual}
                )
                if len(outcomes) >= 20:
                    http.post("/v1/outcomes", json={"outcomes": outcomes})
                    outcomes = []
                if phase == self.SWITCHING or self.phase != phase:
                    continue
                model = answer["model"]
                self.out.answers.setdefault(phase, Counter())[model["variant"]] += 1
                self.out.answered_versions.setdefault(phase, Counter())[model["version"]] += 1
                self.out.latency_ms.setdefault(phase, []).append(elapsed_ms)
                riders = self.out.riders.setdefault(phase, {})
                riders.setdefault(body["user_id"], set()).add(model["variant"])


class _PhaseTarget(RoutingTableTarget):
    """The routing target, telling the load which step is in force once it is."""

    def __init__(self, *args: Any, load: Load, quality: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._load, self._quality = load, quality

    def set_weight(self, weight: float, baseline: dict[str, Any]) -> str:
        return self._load.switch(
            lambda: super(_PhaseTarget, self).set_weight(weight, baseline),
            f"{self._quality} {weight:.0%}",
        )

    def promote(self, baseline: dict[str, Any]) -> str:
        return self._load.switch(
            lambda: super(_PhaseTarget, self).promote(baseline), f"{self._quality} promoted"
        )

    def rollback(self, baseline: dict[str, Any]) -> str:
        return self._load.switch(
            lambda: super(_PhaseTarget, self).rollback(baseline), f"{self._quality} aborted"
        )


def rollout_spec(
    *,
    name: str,
    url: str,
    prometheus: str,
    version: int,
    pause_s: float,
    weights: tuple[float, ...] = WEIGHTS,
    mae_gate: bool = True,
) -> RolloutSpec:
    """The demo's spec: 10% -> 50% -> 100%, gated on errors, p99 latency and MAE vs stable.

    ``weights`` and ``mae_gate=False`` make the rolling variant: fixed slices, gated only on
    the candidate answering (errors, latency), not on its quality.
    """
    canary = f'service="{SERVICE}",variant="canary"'
    window = "30s"
    gates = [
        {"name": "canary error ratio", "max": 0.01, "on_no_data": "pass",
         "query": f"sum(rate(modelfleet_variant_errors_total{{{canary}}}[{window}])) / "
                  f"sum(rate(modelfleet_variant_requests_total{{{canary}}}[{window}]))"},
        {"name": "canary p99 latency (s)", "max": 1.0,
         "query": "histogram_quantile(0.99, sum by (le) (rate("
                  f"modelfleet_variant_latency_seconds_bucket{{{canary}}}[{window}])))"},
    ]  # fmt: skip
    if mae_gate:
        gates.append(
            {"name": "canary MAE / stable MAE", "max": MAE_RATIO_MAX,
             "query": f'max({MAE}{{{canary},model_version="{version}"}}) / '
                      f'max({MAE}{{service="{SERVICE}",variant="stable"}})'}
        )  # fmt: skip
    return parse_spec({
        "name": name,
        "target": {"kind": "routing", "url": url,
                   "candidate": {"name": "canary", "model": MODEL, "model_version": version}},
        "steps": [{"weight": w, "pause_s": pause_s} for w in weights],
        "gates": gates,
        "prometheus": {"url": prometheus, "timeout_s": 5},
    })  # fmt: skip


def variant(name: str, role: str, version: int, weight: float) -> dict[str, Any]:
    """One routing table entry of ride_duration."""
    return {"name": name, "role": role, "model": MODEL, "model_version": version, "weight": weight}


def put_table(http: httpx.Client, variants: list[dict[str, Any]], comment: str) -> None:
    """Replace the routing table (on top of the version in force)."""
    current = http.get("/v1/admin/routing").raise_for_status().json()
    body = {"expected_version": current["version"], "comment": comment, "variants": variants}
    http.put("/v1/admin/routing", json=body).raise_for_status()


def pin_stable(http: httpx.Client) -> int:
    """Pin the stable variant to the newest READY version (the one served now); that version."""
    models = http.get("/v1/models").raise_for_status().json()["models"]
    ready = [int(m["version"]) for m in models if m["name"] == MODEL and m["state"] == "READY"]
    version = max(ready)
    put_table(http, [variant("stable", "stable", version, 1.0)], "demo: stable pinned")
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
        Load(url, demo_rides(3000, seed=seed + 1000), out, seed=seed) as load,
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
        run_strategies(url, prometheus.url, home, load=load, out=out, say=say, pause_s=pause_s)
    _summary(out, say)
    return out


def _shadow_comparisons(http: httpx.Client) -> dict[str, float]:
    """modelfleet_shadow_comparisons_total of the variant "shadow", by outcome."""
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(http.get("/metrics").text):
        for sample in family.samples:
            if (
                sample.name == "modelfleet_shadow_comparisons_total"
                and sample.labels.get("variant") == "shadow"
            ):
                outcome = sample.labels["outcome"]
                totals[outcome] = totals.get(outcome, 0.0) + sample.value
    return totals


def run_strategies(
    url: str,
    prometheus: str,
    home: Path,
    *,
    load: Load,
    out: DemoOutcome,
    say: Callable[[str], None],
    pause_s: float,
) -> None:
    """A/B, shadow, blue/green and rolling after the canaries, on the same running load.

    Starts with the better version promoted (stable) and the first version still loaded.
    """
    first, better, worse = out.stable_version, out.versions["better"], out.versions["worse"]
    hold = threading.Event().wait
    with httpx.Client(base_url=url, timeout=10.0) as http:

        def route(phase: str, *variants: dict[str, Any]) -> None:
            load.switch(lambda: put_table(http, list(variants), f"demo: {phase}"), phase)

        say(f"A/B: a = v{first}, b = v{better}, 50% each, sticky by rider")
        route(
            "a/b",
            variant("stable", "stable", better, 0.0),
            variant("a", "a", first, 0.5),
            variant("b", "b", better, 0.5),
        )
        hold(pause_s)
        say(f"shadow: stable v{better} alone, then v{worse} mirrored on every call")
        route("shadow off", variant("stable", "stable", better, 1.0))
        hold(pause_s)
        before = _shadow_comparisons(http)
        route(
            "shadow on",
            variant("stable", "stable", better, 1.0),
            variant("shadow", "shadow", worse, 1.0),
        )
        hold(pause_s)
        route("shadow done", variant("stable", "stable", better, 1.0))
        hold(2.0)  # the queue drains
        after = _shadow_comparisons(http)
        out.shadow_comparisons = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
        say(f"blue/green: green = v{better} in force; everything to blue = v{first} in one write")
        route("blue", variant("stable", "stable", first, 1.0))
        hold(pause_s / 2)
    say(f"rolling: v{better} back in 25% slices, gated on errors and latency only")
    spec = rollout_spec(
        name=f"demo-rolling-v{better}",
        url=url,
        prometheus=prometheus,
        version=better,
        pause_s=pause_s / 3,
        weights=ROLLING_WEIGHTS,
        mae_gate=False,
    )
    controller = _controller(home, prometheus, load=load, quality="rolling", say=say)
    out.states["rolling"] = controller.start(spec)
    hold(2.0)


def _summary(out: DemoOutcome, say: Callable[[str], None]) -> None:
    for phase, answers in out.answers.items():
        total = sum(answers.values())
        shares = ", ".join(f"{name} {n / total:.1%}" for name, n in sorted(answers.items()))
        versions = dict(out.answered_versions.get(phase, {}))
        say(
            f"  {phase:18} {total:5} answers, p99 {out.p99_ms(phase):6.1f} ms, {shares}, "
            f"versions {versions}"
        )
    riders = out.riders.get("a/b", {})
    both = sum(1 for seen in riders.values() if len(seen) > 1)
    say(f"A/B: {len(riders)} riders, {both} answered by both a and b")
    on, off = out.p99_ms("shadow on"), out.p99_ms("shadow off")
    ratio = on / off if off else float("nan")
    say(f"shadow: p99 on {on:.1f} ms / off {off:.1f} ms = {ratio:.2f}x; {out.shadow_comparisons}")
    say(f"requests {out.requests}, failed {len(out.failed)}")
    for quality, state in out.states.items():
        say(f"{quality}: {state.status} ({state.reason})")
