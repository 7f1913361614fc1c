"""Suite `taxi-e2e`: the taxi app end to end under open-loop load.

Rides arrive at a fixed interval (open loop: a slow answer does not slow the arrivals) as
``POST /v1/rides``; a ride is complete when all three worker results (tip, cost, corrected
duration) are stored. Completion is observed the way the backend's SSE streams observe it:
``LISTEN ride_results`` (the table's trigger notifies once per stored result). Reported per rate:
p50/p99 of request -> all three results stored, p50/p99 of the POST itself, rides that did not
complete; then the highest rate held with p99 under 1 s (a short step search).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import asyncpg
import numpy as np
import orjson

from bench.rawhttp import RawHttpConnection
from bench.suite import BenchContext, Suite, when_and_where
from models.ride_duration.data import clean_trips, generate_trips

RATES = (50, 200)
"""Rides per second measured for the table (goal: p99 <= 50 ms at 200 rides/s)."""
SEARCH_RATES = (300, 400, 600, 800)
"""Rates tried after RATES when the last is held, in order, until one is not held."""
SEARCH_BELOW = (75, 100, 125, 150)
"""Rates tried when the last of RATES is not held, in order, until one is not held."""
HELD_P99_S = 1.0
RESULTS_PER_RIDE = 3
GRACE_S = 10.0
"""How long after the last arrival rides may still complete."""
MAX_CONNECTIONS = 256


@dataclass
class RateResult:
    """One open-loop run at ``rate`` rides/s."""

    rate: float
    seconds: float
    sent: int = 0
    accepted: int = 0
    errors: int = 0
    error_kinds: Counter[str] = field(default_factory=Counter)
    """Errors by HTTP status ("conn": the connection failed)."""
    send_seconds: float = 0.0
    e2e_s: list[float] = field(default_factory=list)
    post_s: list[float] = field(default_factory=list)

    @property
    def incomplete(self) -> int:
        return self.accepted - len(self.e2e_s)

    def pct_ms(self, values: list[float], q: float) -> float:
        return float(np.percentile(values, q) * 1000.0) if values else float("nan")

    @property
    def achieved_rate(self) -> float:
        return self.sent / self.send_seconds if self.send_seconds else 0.0

    @property
    def held(self) -> bool:
        """p99 under 1 s, every ride accepted and complete, arrivals kept up (>= 95 %)."""
        return (
            self.errors == 0
            and self.incomplete == 0
            and self.achieved_rate >= 0.95 * self.rate
            and self.pct_ms(self.e2e_s, 99) < HELD_P99_S * 1000.0
        )


def ride_bodies(count: int, *, seed: int) -> list[bytes]:
    """Realistic ride requests (JSON bodies) from synthetic TLC trips."""
    trips = clean_trips(generate_trips(max(count * 2, 1000), seed=seed))
    trips = trips[(trips["payment_type"] >= 1) & (trips["passenger_count"] >= 1)].head(count)
    return [
        orjson.dumps(
            {
                "user_id": f"bench-{i}",
                "pickup_datetime": row.tpep_pickup_datetime.isoformat(),
                "pickup_location_id": int(row.PULocationID),
                "dropoff_location_id": int(row.DOLocationID),
                "trip_distance": float(row.trip_distance),
                "passenger_count": int(row.passenger_count),
                "payment_type": int(row.payment_type),
            }
        )
        for i, row in enumerate(trips.itertuples())
    ]


class Completions:
    """``LISTEN ride_results``: when each ride got its ``results_per_ride``-th result
    (perf_counter time; the taxi suite waits for three, the chain suite for one)."""

    def __init__(self, results_per_ride: int = RESULTS_PER_RIDE) -> None:
        self.results_per_ride = results_per_ride
        self.counts: dict[str, int] = defaultdict(int)
        self.done_at: dict[str, float] = {}
        self._conn: asyncpg.Connection | None = None
        self._changed = asyncio.Event()

    def _on_notify(self, conn: object, pid: int, channel: str, payload: object) -> None:
        ride_id = str(payload)
        self.counts[ride_id] += 1
        if self.counts[ride_id] == self.results_per_ride:
            self.done_at[ride_id] = time.perf_counter()
            self._changed.set()

    async def wait_for(self, ride_ids: list[str], *, timeout_s: float) -> None:
        """Until every ride of ``ride_ids`` is complete, or ``timeout_s`` passed."""
        deadline = time.monotonic() + timeout_s
        while any(r not in self.done_at for r in ride_ids):
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), deadline - time.monotonic())
            except TimeoutError:
                return

    async def start(self, dsn: str) -> None:
        self._conn = await asyncpg.connect(dsn)
        await self._conn.add_listener("ride_results", self._on_notify)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()


async def open_loop(
    host: str, port: int, bodies: list[bytes], *, rate: float, seconds: float, done: Completions
) -> RateResult:
    """POST ``rate`` rides/s for ``seconds``, then wait (<= GRACE_S) for their results."""
    result = RateResult(rate=rate, seconds=seconds)
    count = int(rate * seconds)
    idle: list[RawHttpConnection] = []
    opened = 0
    sent_at: dict[str, float] = {}
    limit = asyncio.Semaphore(MAX_CONNECTIONS)

    async def one(body: bytes) -> None:
        nonlocal opened
        async with limit:
            conn = idle.pop() if idle else None
            try:
                if conn is None:
                    conn = RawHttpConnection(host, port)
                    await conn.connect()
                    opened += 1
                began = time.perf_counter()
                status, payload = await conn.request("POST", "/v1/rides", body)
                result.post_s.append(time.perf_counter() - began)
            except (OSError, asyncio.IncompleteReadError):
                result.errors += 1
                result.error_kinds["conn"] += 1
                return
            idle.append(conn)
            if status != 201:
                result.errors += 1
                result.error_kinds[str(status)] += 1
                return
            result.accepted += 1
            sent_at[orjson.loads(payload)["ride_id"]] = began

    tasks = []
    start = time.perf_counter()
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(bodies[i % len(bodies)])))
        result.sent += 1
    result.send_seconds = max(time.perf_counter() - start, 1e-9) * count / max(count - 1, 1)
    await asyncio.gather(*tasks)
    await done.wait_for(list(sent_at), timeout_s=GRACE_S)
    result.e2e_s = [done.done_at[r] - t for r, t in sent_at.items() if r in done.done_at]
    for conn in idle:
        await conn.close()
    return result


def _errors(r: RateResult) -> str:
    kinds = ", ".join(f"{kind}: {n}" for kind, n in sorted(r.error_kinds.items()))
    return f"{r.errors} ({kinds})" if r.errors else "0"


def _row(r: RateResult) -> str:
    return (
        f"| {r.rate:g} | {r.achieved_rate:,.0f} | {r.accepted:,} | {r.pct_ms(r.e2e_s, 50):.1f} "
        f"| {r.pct_ms(r.e2e_s, 99):.1f} | {r.pct_ms(r.post_s, 50):.1f} "
        f"| {r.pct_ms(r.post_s, 99):.1f} | {r.incomplete} | {_errors(r)} "
        f"| {'yes' if r.held else 'no'} |"
    )


def _print(r: RateResult) -> None:
    print(
        f"  {r.rate:5g} rides/s: e2e p50 {r.pct_ms(r.e2e_s, 50):8.1f} ms  p99 "
        f"{r.pct_ms(r.e2e_s, 99):8.1f} ms  POST p99 {r.pct_ms(r.post_s, 99):7.1f} ms  "
        f"incomplete {r.incomplete}  errors {_errors(r)}",
        flush=True,
    )


async def run(ctx: BenchContext) -> str:
    """The table rates, then the step search; the Markdown section."""
    settings = ctx.settings
    seconds = 2.5 * ctx.duration_s
    bodies = ride_bodies(4000, seed=99)
    done = Completions()
    await done.start(settings.database_url)
    results: list[RateResult] = []
    try:
        host, port = settings.host, settings.backend_port
        warm = await open_loop(host, port, bodies, rate=20, seconds=ctx.warmup_s, done=done)
        print(f"  warm-up: {warm.accepted} rides", flush=True)
        for rate in RATES:
            results.append(
                await open_loop(host, port, bodies, rate=rate, seconds=seconds, done=done)
            )
            _print(results[-1])
        search = SEARCH_RATES if results[-1].held else SEARCH_BELOW
        for rate in search:
            await asyncio.sleep(2.0)  # what the last rate left queued drains first
            step = await open_loop(host, port, bodies, rate=rate, seconds=seconds / 2, done=done)
            _print(step)
            results.append(step)
            if not step.held:
                break
    finally:
        await done.close()
    held = [r.rate for r in results if r.held]
    best = f"{max(held):g} rides/s" if held else "none of the rates tried"
    at_200 = next((r for r in results if r.rate == 200), None)
    goal = (
        f"p99 at 200 rides/s: {at_200.pct_ms(at_200.e2e_s, 99):.1f} ms (goal <= 50 ms)"
        if at_200
        else "200 rides/s not measured"
    )
    return "\n\n".join(
        [
            "## Taxi app end to end: ride request -> tip, cost and corrected duration stored",
            "\n".join(
                [
                    when_and_where(),
                    "- stack: backend (1 process, relay inside), ride-duration, the tip, cost and "
                    "dynamic-duration workers (1 process each), Triton (Python backend, 2 "
                    "instances per model), Postgres, NATS JetStream",
                    f"- open loop: fixed-interval arrivals, {seconds:g} s per rate in the table "
                    f"({seconds / 2:g} s per step of the search), rides from synthetic TLC trips; "
                    "e2e = POST sent -> third `ride_results` NOTIFY received (LISTEN, as the SSE "
                    f"streams); rides not complete {GRACE_S:g} s after the last arrival count as "
                    "incomplete",
                ]
            ),
            "| rides/s | achieved | accepted | e2e p50 ms | e2e p99 ms | POST p50 ms "
            "| POST p99 ms | incomplete | errors | held (p99 < 1 s) |\n"
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n"
            + "\n".join(_row(r) for r in results),
            f"Highest rate held with p99 under 1 s: **{best}**. {goal}.",
        ]
    )


SUITE = Suite(
    name="taxi-e2e",
    components=(
        "postgres",
        "nats",
        "triton",
        "ride-duration",
        "backend",
        "worker-tip",
        "worker-cost",
        "worker-dynamic-duration",
    ),
    run=run,
)
