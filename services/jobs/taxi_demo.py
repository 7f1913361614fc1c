"""`modelfleet demo taxi`: rides at a steady rate through the taxi app while NATS is killed with
SIGKILL and started again by the stack's supervisor; every ride's results counted in the end.

The story, against a stack that `modelfleet up` supervises (foreground or ``--detach``):

1. Rides go to the backend's ``POST /v1/rides`` at ``rate_per_s`` for ``seconds`` (open loop: a
   slow answer does not slow the stream), each with its own Idempotency-Key; a ride refused
   (503/504, or no answer) is posted again with its key until accepted, as a client does.
2. At ``kill_at_s`` the NATS server gets SIGKILL: no shutdown of any kind. Nothing but the
   supervisor starts it again, as a kubelet restarts a container. Meanwhile the backend keeps
   accepting rides: each is stored with its event in one transaction (the outbox), and the
   relay publishes the events once NATS is back.
3. Every accepted ride is read on ``GET /v1/rides/{id}`` until it has the result of each worker
   (tip, cost, dynamic duration), or ``timeout_s`` after the last ride.

It succeeds when NATS was killed and came back, some rides were posted while it was down, every
ride was accepted and every accepted ride has all three results (none lost).

    result = asyncio.run(run_taxi_demo(StackSettings(), say=print, rate_per_s=10, seconds=30))
    result.succeeded
"""

from __future__ import annotations

import asyncio
import math
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from models.ride_duration.data import clean_trips, generate_trips
from services.stack import procs
from services.stack.component import Component
from services.stack.settings import StackSettings
from services.stack.supervision import supervisor_record
from services.stack.supervisor import Stack

#: result kind on GET /v1/rides/{id} -> the worker that writes it
WORKERS = {"tip": "worker-tip", "cost": "worker-cost", "duration": "worker-dynamic-duration"}
#: what the story needs running (`modelfleet status` names)
NEEDED = ("postgres", "nats", "triton", "ride-duration", "backend", *WORKERS.values())
#: answers after which a ride is posted again with its key (0: no HTTP answer at all)
RETRIED = frozenset({0, 502, 503, 504})
CLIENT_TIMEOUT_S = 10.0
RETRY_EVERY_S = 0.5
POLL_EVERY_S = 0.5
POLL_CONCURRENCY = 8
#: how long the supervisor may take to have NATS serving again after the kill
NATS_BACK_WITHIN_S = 120.0
PROGRESS_EVERY_S = 5.0


@dataclass
class Ride:
    """One ride of the demo: its key, when it was posted, what the backend answered, results."""

    key: str
    body: dict[str, Any]
    posted_at: float  # seconds since the stream began
    first_status: int | None = None  # 0: no HTTP answer
    attempts: int = 0
    ride_id: str | None = None
    kinds: set[str] = field(default_factory=set)
    complete_at: float | None = None  # when every worker's result was first seen

    @property
    def accepted(self) -> bool:
        return self.ride_id is not None


@dataclass
class Outage:
    """The NATS kill: its pid, when it was killed and when the supervisor had it serving again."""

    pid: int
    killed_at: float
    back_at: float | None = None
    new_pid: int | None = None
    restarts: int | None = None

    @property
    def down_s(self) -> float | None:
        return None if self.back_at is None else self.back_at - self.killed_at


@dataclass
class TaxiDemoResult:
    """What the demo saw; ``problem`` says why it could not tell the story at all."""

    rides: list[Ride] = field(default_factory=list)
    outage: Outage | None = None
    problem: str | None = None

    @property
    def accepted(self) -> list[Ride]:
        return [r for r in self.rides if r.accepted]

    @property
    def complete(self) -> list[Ride]:
        return [r for r in self.rides if r.complete_at is not None]

    @property
    def lost(self) -> int:
        """Rides posted that did not end with every result (never accepted, or results missing)."""
        return len(self.rides) - len(self.complete)

    @property
    def during_outage(self) -> list[Ride]:
        """Rides posted from the kill until NATS served again."""
        outage = self.outage
        if outage is None:
            return []
        end = math.inf if outage.back_at is None else outage.back_at
        return [r for r in self.rides if outage.killed_at <= r.posted_at < end]

    @property
    def recovered_s(self) -> float | None:
        """Seconds from the kill until every ride posted before NATS was back had all its
        results (None: NATS never came back, or such a ride never completed)."""
        outage = self.outage
        if outage is None or outage.back_at is None:
            return None
        before = [r for r in self.rides if r.posted_at < outage.back_at]
        if any(r.complete_at is None for r in before):
            return None
        return max((r.complete_at or 0.0 for r in before), default=outage.back_at) - (
            outage.killed_at
        )

    @property
    def succeeded(self) -> bool:
        """The story as told: NATS killed and back, rides posted meanwhile, none lost."""
        return (
            self.problem is None
            and self.outage is not None
            and self.outage.back_at is not None
            and bool(self.during_outage)
            and bool(self.rides)
            and self.lost == 0
        )

    @property
    def shortfall(self) -> str:
        """What of the story did not happen ("" when it all did)."""
        if self.problem is not None:
            return self.problem
        if self.outage is None:
            return "NATS was not killed"
        if self.outage.back_at is None:
            return "NATS did not serve again"
        if not self.during_outage:
            return "no ride was posted while NATS was down (raise --rate)"
        if not self.rides:
            return "no ride was posted"
        if self.lost:
            return f"{self.lost} of {len(self.rides)} rides without every result"
        return ""


def demo_rides(count: int, *, seed: int, run: str) -> list[tuple[str, dict[str, Any]]]:
    """(Idempotency-Key, request body) of ``count`` rides from synthetic TLC trips."""
    trips = clean_trips(generate_trips(count * 2 + 50, seed=seed)).head(count)
    rides = []
    for i, row in enumerate(trips.itertuples()):
        passengers = 1 if math.isnan(row.passenger_count) else int(row.passenger_count)
        payment = 1 if math.isnan(row.payment_type) else int(row.payment_type)
        body = {
            "user_id": f"demo-taxi-{i % 50}",
            "pickup_datetime": row.tpep_pickup_datetime.isoformat(),
            "pickup_location_id": int(row.PULocationID),
            "dropoff_location_id": int(row.DOLocationID),
            "trip_distance": round(float(row.trip_distance), 4),
            "passenger_count": min(max(passengers, 1), 9),
            "payment_type": min(max(payment, 0), 6),
        }
        rides.append((f"demo-taxi-{run}-{i}", body))
    return rides


def check_stack(stack: Stack) -> str | None:
    """Why the story cannot be told on this stack (None: it can): a component the story needs
    is not ready, or no `modelfleet up` supervises it (nothing would start NATS again)."""
    not_ready = [s.name for s in stack.status() if s.name in NEEDED and not s.ready]
    if not_ready:
        return (
            f"not running or not ready in {stack.paths.home}: {', '.join(not_ready)} "
            "(`modelfleet status`; start the stack with `modelfleet up --detach`)"
        )
    if supervisor_record(stack.paths) is None:
        return (
            f"no `modelfleet up` supervises the stack in {stack.paths.home}: nothing would start "
            "NATS again after the kill (start the stack with `modelfleet up --detach`)"
        )
    return None


class _Clock:
    """Seconds since the stream began."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()

    def __call__(self) -> float:
        return time.monotonic() - self._t0


async def _post(client: httpx.AsyncClient, ride: Ride, *, give_up_at: float, now: _Clock) -> None:
    """Post ``ride`` with its key until it is accepted, refused for good, or ``give_up_at``."""
    while True:
        ride.attempts += 1
        try:
            response = await client.post(
                "/v1/rides", json=ride.body, headers={"Idempotency-Key": ride.key}
            )
            status = response.status_code
        except httpx.HTTPError:
            status = 0
        if ride.first_status is None:
            ride.first_status = status
        if status == 201:
            ride.ride_id = str(response.json()["ride_id"])
            return
        if status not in RETRIED or now() >= give_up_at:
            return
        await asyncio.sleep(RETRY_EVERY_S)


async def _stream(
    client: httpx.AsyncClient,
    rides: list[Ride],
    planned: list[tuple[str, dict[str, Any]]],
    *,
    rate_per_s: float,
    seconds: float,
    give_up_at: float,
    now: _Clock,
) -> None:
    """Post the planned rides at ``rate_per_s`` for ``seconds`` (open loop), then wait for the
    last answers."""
    posts: list[asyncio.Task[None]] = []
    for i, (key, body) in enumerate(planned):
        due = i / rate_per_s
        if due >= seconds:
            break
        await asyncio.sleep(max(0.0, due - now()))
        ride = Ride(key=key, body=body, posted_at=now())
        rides.append(ride)
        posts.append(asyncio.create_task(_post(client, ride, give_up_at=give_up_at, now=now)))
    await asyncio.gather(*posts)


async def _kill_nats(
    nats: Component, *, at_s: float, now: _Clock, say: Callable[[str], None]
) -> Outage | None:
    """SIGKILL NATS at ``at_s``; wait until the supervisor has a new NATS serving (bounded)."""
    await asyncio.sleep(max(0.0, at_s - now()))
    pid = await asyncio.to_thread(lambda: nats.pid)
    if pid is None:
        say(f"{now():6.1f} s  nats is not running: nothing to kill")
        return None
    procs.send_signal([pid], signal.SIGKILL)
    outage = Outage(pid=pid, killed_at=now())
    say(f"{outage.killed_at:6.1f} s  SIGKILL to nats (pid {pid})")
    deadline = outage.killed_at + NATS_BACK_WITHIN_S
    while now() < deadline:
        new_pid = await asyncio.to_thread(lambda: nats.pid)
        if new_pid not in (None, pid) and await asyncio.to_thread(nats.is_ready):
            outage.back_at, outage.new_pid = now(), new_pid
            outage.restarts = (await asyncio.to_thread(nats.restarts)).count
            say(
                f"{outage.back_at:6.1f} s  nats serves again: pid {new_pid}, restart "
                f"{outage.restarts} by the supervisor, down {outage.down_s:.1f} s"
            )
            return outage
        await asyncio.sleep(0.1)
    say(f"{now():6.1f} s  nats did not serve again within {NATS_BACK_WITHIN_S:.0f} s of the kill")
    return outage


async def _read(client: httpx.AsyncClient, ride: Ride, now: _Clock) -> None:
    """One GET of a ride: note the result kinds it has, and when it first had all of them."""
    try:
        response = await client.get(f"/v1/rides/{ride.ride_id}")
    except httpx.HTTPError:
        return
    if response.status_code != 200:
        return
    ride.kinds = {str(r["kind"]) for r in response.json()["results"]} & WORKERS.keys()
    if ride.kinds == WORKERS.keys() and ride.complete_at is None:
        ride.complete_at = now()


async def _poll(
    client: httpx.AsyncClient,
    rides: list[Ride],
    stream: asyncio.Task[None],
    *,
    timeout_s: float,
    now: _Clock,
    say: Callable[[str], None],
) -> None:
    """Read the accepted rides without all results until the stream ended and each has them,
    or ``timeout_s`` after the stream ended; a progress line every PROGRESS_EVERY_S."""
    limit = asyncio.Semaphore(POLL_CONCURRENCY)

    async def read(ride: Ride) -> None:
        async with limit:
            await _read(client, ride, now)

    ended_at: float | None = None
    next_progress = PROGRESS_EVERY_S
    while True:
        waiting = [r for r in list(rides) if r.accepted and r.complete_at is None]
        await asyncio.gather(*(read(r) for r in waiting))
        if now() >= next_progress:
            next_progress += PROGRESS_EVERY_S
            say(_progress(rides, now()))
        if stream.done():
            ended_at = now() if ended_at is None else ended_at
            if all(r.complete_at is not None for r in rides if r.accepted):
                return
            if now() - ended_at >= timeout_s:
                say(f"{now():6.1f} s  results still missing {timeout_s:.0f} s after the last ride")
                return
        await asyncio.sleep(POLL_EVERY_S)


def _progress(rides: list[Ride], at: float) -> str:
    accepted = sum(r.accepted for r in rides)
    complete = sum(r.complete_at is not None for r in rides)
    return (
        f"{at:6.1f} s  {len(rides)} rides posted, {accepted} accepted, {complete} with every "
        f"result, {accepted - complete} waiting"
    )


async def run_taxi_demo(
    settings: StackSettings,
    *,
    say: Callable[[str], None],
    rate_per_s: float = 10.0,
    seconds: float = 30.0,
    kill_at_s: float | None = None,
    timeout_s: float = 120.0,
    url: str | None = None,
    seed: int = 15,
) -> TaxiDemoResult:
    """The story against the stack of ``settings`` (see the module's docstring); NATS is killed
    at ``kill_at_s`` (default: a third of ``seconds``)."""
    kill_at = seconds / 3 if kill_at_s is None else kill_at_s
    if not 0 < kill_at < seconds:
        raise ValueError(f"the kill ({kill_at:g} s) must fall within the stream (0-{seconds:g} s)")
    stack = Stack(settings)
    result = TaxiDemoResult()
    result.problem = await asyncio.to_thread(check_stack, stack)
    if result.problem is not None:
        return result
    url = url or f"http://{settings.host}:{settings.backend_port}"
    planned = demo_rides(math.ceil(rate_per_s * seconds), seed=seed, run=uuid.uuid4().hex[:8])
    say(
        f"taxi demo against {url}: {rate_per_s:g} rides/s for {seconds:g} s, NATS killed with "
        f"SIGKILL at {kill_at:g} s and started again by the supervisor"
    )
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=16)
    async with httpx.AsyncClient(base_url=url, timeout=CLIENT_TIMEOUT_S, limits=limits) as client:
        now = _Clock()
        stream = asyncio.create_task(
            _stream(
                client,
                result.rides,
                planned,
                rate_per_s=rate_per_s,
                seconds=seconds,
                give_up_at=seconds + timeout_s,
                now=now,
            )
        )
        kill = asyncio.create_task(
            _kill_nats(stack.component("nats"), at_s=kill_at, now=now, say=say)
        )
        await _poll(client, result.rides, stream, timeout_s=timeout_s, now=now, say=say)
        await stream
        result.outage = await kill
    report(result, say)
    return result


def report(result: TaxiDemoResult, say: Callable[[str], None]) -> None:
    """The counts: posted, answered, results per worker, lost, time to recover."""
    rides, accepted = result.rides, result.accepted
    first = Counter(r.first_status for r in rides)
    answers = ", ".join(
        f"{'no answer' if status == 0 else status} x {n}" for status, n in sorted(first.items())
    )
    retried = sum(r.attempts > 1 for r in rides)
    say(
        f"posted {len(rides)} rides: {len(accepted)} accepted (first answers: {answers or '-'}; "
        f"{retried} posted again with their key)"
    )
    say(f"posted while NATS was down: {len(result.during_outage)}")
    say("results per worker (GET /v1/rides/{id}):")
    width = max(len(w) for w in WORKERS.values())
    for kind, worker in WORKERS.items():
        have = sum(kind in r.kinds for r in accepted)
        say(f"  {worker:<{width}}  {kind:<8}  {have}/{len(accepted)}")
    complete = f"{len(result.complete)}/{len(rides)}"
    say(f"complete: {complete} rides with every result; lost {result.lost}")
    outage = result.outage
    if outage is not None and outage.down_s is not None:
        recovered = result.recovered_s
        say(
            f"NATS down {outage.down_s:.1f} s; recovered "
            + (
                f"{recovered:.1f} s after the kill (every ride posted before NATS was back "
                "had all its results)"
                if recovered is not None
                else "never: rides posted before NATS was back still miss results"
            )
        )
