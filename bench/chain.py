"""Suite `chain`: the deployment-architectures document's call chain, naive and budgeted.

The document's app needs an answer within 2 s, and its API calls a location API (~0.5 s), then
a sensor API (~2 s) with the location, then the prediction with both. The stack runs the real
location and sensor services with those delays (``LOCATION_LATENCY_S`` 0.5, ``SENSOR_LATENCY_S``
2.0, lognormal spread 0.25), and this suite measures, in the same run and at the same open-loop
arrival rate (20 rides/s):

- the **naive chain** (the anchor): the client calls location, then sensor with its point, then
  ride-duration with the sensor's speed, one after the other, waiting for each; its first answer
  is the prediction;
- **modelfleet**: ``POST /v1/rides`` (``BACKEND_REQUEST_BUDGET_S`` 2 s): the answer in budget
  (the sensor-aware duration when the chain fits, else the base one), then the sensor-aware
  duration as result ``sensor_duration`` from the sensor-duration worker, observed the way the
  SSE streams observe it (``LISTEN ride_results``).

Reported: p50/p99 of the first answer, the share of first answers within 2 s, the share that was
already sensor-aware, and p50/p99 of the time until the sensor-aware duration is stored.
Goal: >= 99 % of first answers within 2 s at 20 rides/s while the naive chain answers none in
time.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np
import orjson

from bench.suite import BenchContext, Suite, when_and_where
from bench.taxi import Completions, ride_bodies

RATE = 20.0
BUDGET_S = 2.0
GRACE_S = 20.0
"""How long after the last arrival a sensor-aware duration may still arrive."""
CALL_TIMEOUT_S = 30.0
"""The naive client's patience per call (it waits; the document's chain has no budget)."""


@dataclass
class ChainResult:
    """One open-loop run of one variant."""

    name: str
    sent: int = 0
    errors: int = 0
    first_s: list[float] = field(default_factory=list)
    """Request sent -> first answer (a duration) received."""
    aware_first: int = 0
    """First answers that were already sensor-aware."""
    aware_s: list[float] = field(default_factory=list)
    """Request sent -> sensor-aware duration available (naive: its only answer)."""

    def pct_s(self, values: list[float], q: float) -> float:
        return float(np.percentile(values, q)) if values else float("nan")

    @property
    def in_budget(self) -> float:
        """Share of the rides sent whose first answer came within the budget."""
        return sum(1 for s in self.first_s if s <= BUDGET_S) / self.sent if self.sent else 0.0


async def _naive_one(
    session: aiohttp.ClientSession, urls: dict[str, str], ride: dict[str, Any]
) -> tuple[float, bool]:
    """location -> sensor -> ride-duration, each awaited in turn; (seconds, succeeded)."""
    began = time.perf_counter()
    async with session.get(f"{urls['location']}/v1/zones/{ride['pickup_location_id']}") as r:
        place = await r.json()
    params = {
        "latitude": str(place["latitude"]),
        "longitude": str(place["longitude"]),
        "at": ride["pickup_datetime"],
    }
    async with session.get(f"{urls['sensor']}/v1/traffic", params=params) as r:
        reading = await r.json()
    body = {**ride, "traffic_speed_mph": reading["speed_mph"]}
    async with session.post(f"{urls['ride-duration']}/v1/predict", json=body) as r:
        ok = r.status == 200
        await r.read()
    return time.perf_counter() - began, ok


async def _open_loop(
    name: str, rides: list[dict[str, Any]], seconds: float, one: Any
) -> tuple[ChainResult, list[Any]]:
    result = ChainResult(name=name)
    count = int(RATE * seconds)
    tasks = []
    start = time.perf_counter()
    for i in range(count):
        delay = start + i / RATE - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(rides[i % len(rides)])))
        result.sent += 1
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    return result, outcomes


async def naive_chain(
    urls: dict[str, str], rides: list[dict[str, Any]], seconds: float
) -> ChainResult:
    timeout = aiohttp.ClientTimeout(total=CALL_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def one(ride: dict[str, Any]) -> tuple[float, bool]:
            return await _naive_one(session, urls, ride)

        result, outcomes = await _open_loop("naive sequential chain", rides, seconds, one)
    for outcome in outcomes:
        if isinstance(outcome, BaseException) or not outcome[1]:
            result.errors += 1
            continue
        result.first_s.append(outcome[0])
        result.aware_s.append(outcome[0])
        result.aware_first += 1
    return result


async def budgeted(
    backend: str, rides: list[dict[str, Any]], seconds: float, stored: Completions
) -> ChainResult:
    timeout = aiohttp.ClientTimeout(total=CALL_TIMEOUT_S)
    sent_at: dict[str, float] = {}
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def one(ride: dict[str, Any]) -> tuple[float, dict[str, Any] | None]:
            began = time.perf_counter()
            async with session.post(f"{backend}/v1/rides", json=ride) as r:
                body = orjson.loads(await r.read()) if r.status == 201 else None
            elapsed = time.perf_counter() - began
            if body is not None:
                sent_at[body["ride_id"]] = began
            return elapsed, body

        result, outcomes = await _open_loop("modelfleet (2 s budget)", rides, seconds, one)
    await stored.wait_for(list(sent_at), timeout_s=GRACE_S)
    for outcome in outcomes:
        if isinstance(outcome, BaseException) or outcome[1] is None:
            result.errors += 1
            continue
        elapsed, body = outcome
        result.first_s.append(elapsed)
        if body["initial_duration"].get("uses_sensor"):
            result.aware_first += 1
    result.aware_s = [stored.done_at[r] - t for r, t in sent_at.items() if r in stored.done_at]
    return result


def _row(r: ChainResult) -> str:
    return (
        f"| {r.name} | {r.sent} | {r.pct_s(r.first_s, 50):.2f} | {r.pct_s(r.first_s, 99):.2f} "
        f"| {100 * r.in_budget:.1f} % | {r.aware_first} | {r.pct_s(r.aware_s, 50):.2f} "
        f"| {r.pct_s(r.aware_s, 99):.2f} | {len(r.aware_s)} | {r.errors} |"
    )


def _print(r: ChainResult) -> None:
    print(
        f"  {r.name:<26} first p50 {r.pct_s(r.first_s, 50):6.2f} s  p99 "
        f"{r.pct_s(r.first_s, 99):6.2f} s  within {BUDGET_S:g} s {100 * r.in_budget:5.1f} %  "
        f"sensor-aware p50 {r.pct_s(r.aware_s, 50):6.2f} s  errors {r.errors}",
        flush=True,
    )


async def run(ctx: BenchContext) -> str:
    settings = ctx.settings
    host = settings.host
    urls = {
        "location": f"http://{host}:{settings.location_port}",
        "sensor": f"http://{host}:{settings.sensor_port}",
        "ride-duration": f"http://{host}:{settings.ride_duration_port}",
    }
    backend = f"http://{host}:{settings.backend_port}"
    seconds = max(10.0, 2.5 * ctx.duration_s)
    rides = [orjson.loads(body) for body in ride_bodies(2000, seed=99)]
    # The stack runs one worker, sensor-duration: a ride's first result is its sensor_duration.
    stored = Completions(results_per_ride=1)
    await stored.start(settings.database_url)
    try:
        warm = await budgeted(backend, rides, ctx.warmup_s, stored)
        print(f"  warm-up: {warm.sent} rides", flush=True)
        naive = await naive_chain(urls, rides, seconds)
        _print(naive)
        ours = await budgeted(backend, rides, seconds, stored)
        _print(ours)
    finally:
        await stored.close()
    goal = (
        f"first answers within {BUDGET_S:g} s at {RATE:g} rides/s: modelfleet "
        f"**{100 * ours.in_budget:.1f} %** (goal >= 99 %), the naive chain "
        f"**{100 * naive.in_budget:.1f} %**"
    )
    return "\n\n".join(
        [
            "## Call chain under a latency budget: naive sequential chain vs modelfleet",
            "\n".join(
                [
                    when_and_where(),
                    "- stack: the location (0.5 s) and sensor (2 s) services with the document's "
                    "delays (lognormal, sigma 0.25), ride-duration, backend "
                    f"(BACKEND_REQUEST_BUDGET_S={BUDGET_S:g}), the sensor-duration worker, "
                    "Triton, Postgres, NATS",
                    f"- open loop: {RATE:g} rides/s for {seconds:g} s per variant, rides from "
                    "synthetic TLC trips; naive = the client calls location, sensor, then "
                    "ride-duration with the traffic speed, each awaited; modelfleet = POST "
                    "/v1/rides, then the `sensor_duration` result (LISTEN ride_results, as the "
                    "SSE streams)",
                ]
            ),
            "| variant | rides | first answer p50 s | p99 s | within 2 s | sensor-aware "
            "first | sensor-aware p50 s | p99 s | sensor-aware stored | errors |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
            + "\n".join(_row(r) for r in (naive, ours)),
            f"{goal}.",
        ]
    )


SUITE = Suite(
    name="chain",
    components=(
        "postgres",
        "nats",
        "triton",
        "ride-duration",
        "location",
        "sensor",
        "backend",
        "worker-sensor-duration",
    ),
    run=run,
)
