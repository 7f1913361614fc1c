"""The taxi app survives its servers stopping: NATS, Postgres and Triton, each stopped and started
while rides come in, with exact counts afterwards (no accepted ride lost, no result duplicated,
nothing acked unprocessed). Nothing is restarted by hand but the server under test.

Two kinds: a graceful stop with a fixed batch of rides, and SIGKILL (of NATS, Postgres, Triton
and a worker) while a background task posts rides at a steady rate."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

from services.stack import procs
from services.stack.component import Component
from services.stack.settings import StackSettings
from services.stack.supervisor import Stack

pytestmark = pytest.mark.integration

RIDE: dict[str, Any] = {
    "user_id": "it-crash",
    "pickup_datetime": "2024-03-15T18:05:00",
    "pickup_location_id": 236,
    "dropoff_location_id": 132,
    "trip_distance": 16.2,
    "passenger_count": 2,
    "payment_type": 1,
}
KINDS = ("cost", "duration", "tip")
RECOVERY_S = 90.0


@pytest_asyncio.fixture
async def db(stack: Stack, stack_settings: StackSettings) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(stack_settings.database_url, min_size=0, max_size=2)
    yield pool
    await pool.close()


def restart(component: Component) -> None:
    began = time.monotonic()
    component.start()
    component.wait_ready(began + component.startup_timeout)


async def post_rides(backend: httpx.AsyncClient, n: int, tag: str) -> list[httpx.Response]:
    rides = [{**RIDE, "user_id": f"it-{tag}-{i}", "trip_distance": 2.0 + i} for i in range(n)]
    return list(await asyncio.gather(*(backend.post("/v1/rides", json=r) for r in rides)))


async def results_of(db: asyncpg.Pool, ride_ids: list[uuid.UUID]) -> list[asyncpg.Record]:
    return list(
        await db.fetch(
            "select ride_id, kind from ride_results where ride_id = any($1::uuid[])", ride_ids
        )
    )


async def wait_all_results(
    db: asyncpg.Pool, ride_ids: list[uuid.UUID], *, timeout_s: float
) -> list[asyncpg.Record]:
    """Poll until every ride has a result of every kind (bounded); return the rows."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            rows = await results_of(db, ride_ids)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            rows = []
        if len(rows) >= len(ride_ids) * len(KINDS) or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.2)


def assert_exactly_one_result_per_kind(
    rows: list[asyncpg.Record], ride_ids: list[uuid.UUID]
) -> None:
    assert len(rows) == len(ride_ids) * len(KINDS), f"{len(rows)} results"
    per_ride: dict[uuid.UUID, list[str]] = {}
    for row in rows:
        per_ride.setdefault(row["ride_id"], []).append(row["kind"])
    assert {r: sorted(k) for r, k in per_ride.items()} == {r: list(KINDS) for r in ride_ids}


async def test_nats_down_rides_accepted_events_delivered_once_back(
    backend: httpx.AsyncClient, stack: Stack, db: asyncpg.Pool
) -> None:
    nats = stack.component("nats")
    nats.stop()
    try:
        responses = await post_rides(backend, 20, "nats")
        assert [r.status_code for r in responses] == [201] * 20
        ride_ids = [uuid.UUID(r.json()["ride_id"]) for r in responses]
        assert all(r.json()["initial_duration"]["duration_minutes"] for r in responses)
        await asyncio.sleep(1.0)
        unsent = await db.fetchval(
            "select count(*) from ride_outbox where ride_id = any($1::uuid[]) and sent_at is null",
            ride_ids,
        )
        assert unsent == 20  # held in the outbox while the broker is away
        assert await results_of(db, ride_ids) == []
    finally:
        restart(nats)
    rows = await wait_all_results(db, ride_ids, timeout_s=RECOVERY_S)
    assert_exactly_one_result_per_kind(rows, ride_ids)
    outbox = await db.fetch(
        "select event_id, sent_at from ride_outbox where ride_id = any($1::uuid[])", ride_ids
    )
    assert len(outbox) == 20 and all(row["sent_at"] is not None for row in outbox)
    # Each result came from the ride's one event (no duplicate event was ever made).
    sources = await db.fetchval(
        "select count(distinct event_id) from ride_results where ride_id = any($1::uuid[])",
        ride_ids,
    )
    assert sources == 20


async def test_postgres_down_503_then_no_accepted_ride_lost(
    backend: httpx.AsyncClient, stack: Stack, db: asyncpg.Pool
) -> None:
    before = await post_rides(backend, 10, "pg-before")
    assert [r.status_code for r in before] == [201] * 10
    postgres = stack.component("postgres")
    postgres.stop()
    try:
        during = await post_rides(backend, 10, "pg-during")
        for response in during:
            assert response.status_code in (503, 504), response.text
            assert response.headers["content-type"] == "application/problem+json"
        assert (await backend.get("/readyz")).status_code == 503
        assert (await backend.get("/healthz")).status_code == 200
    finally:
        restart(postgres)
    # The backend's pool recovers by itself; rides are accepted again.
    deadline = time.monotonic() + 30
    after: list[httpx.Response] = []
    while len(after) < 10:
        response = (await post_rides(backend, 1, f"pg-after-{len(after)}"))[0]
        if response.status_code == 201:
            after.append(response)
        else:
            assert response.status_code in (503, 504), response.text
            assert time.monotonic() < deadline, "the backend did not recover"
            await asyncio.sleep(0.2)
    accepted = [uuid.UUID(r.json()["ride_id"]) for r in [*before, *after]]
    stored = await db.fetchval(
        "select count(*) from rides where ride_id = any($1::uuid[])", accepted
    )
    assert stored == 20
    rejected = await db.fetchval("select count(*) from rides where user_id like 'it-pg-during-%'")
    assert rejected == 0  # a 503 wrote nothing
    rows = await wait_all_results(db, accepted, timeout_s=RECOVERY_S)
    assert_exactly_one_result_per_kind(rows, accepted)


async def test_triton_down_workers_retry_and_ack_nothing_unprocessed(
    backend: httpx.AsyncClient, stack: Stack, db: asyncpg.Pool
) -> None:
    triton = stack.component("triton")
    triton.stop()
    try:
        responses = await post_rides(backend, 10, "triton")
        assert [r.status_code for r in responses] == [201] * 10
        for response in responses:  # the initial duration degrades to null, not an error
            initial = response.json()["initial_duration"]
            assert initial["duration_minutes"] is None
            assert initial["reason"] in ("unavailable", "timeout")
        ride_ids = [uuid.UUID(r.json()["ride_id"]) for r in responses]
        await asyncio.sleep(3.0)  # the workers get the events and fail on Triton meanwhile
        assert await results_of(db, ride_ids) == []
        sent = await db.fetchval(
            "select count(*) from ride_outbox where ride_id = any($1::uuid[]) "
            "and sent_at is not null",
            ride_ids,
        )
        assert sent == 10  # the events reached JetStream: the workers hold them, unacked
    finally:
        restart(triton)
    rows = await wait_all_results(db, ride_ids, timeout_s=RECOVERY_S)
    assert_exactly_one_result_per_kind(rows, ride_ids)
    ride = (await backend.get(f"/v1/rides/{ride_ids[0]}")).json()
    assert ride["initial_duration"]["reason"] in ("unavailable", "timeout")
    assert {r["kind"] for r in ride["results"]} == set(KINDS)


# --- SIGKILL while rides keep coming ----------------------------------------------------------
# A background task posts rides at a steady rate (open loop: a slow answer does not slow the
# stream), each with its own Idempotency-Key. A server is killed with SIGKILL (no shutdown of any
# kind), left dead for a while and restarted; the stream goes on throughout. Refused rides are
# then retried with their key, as a client would. Exact counts afterwards.

RATE_PER_S = 5.0
CLIENT_TIMEOUT_S = 10.0


@dataclass
class Attempt:
    key: str
    user_id: str
    status: int  # 0: no HTTP answer at all
    content_type: str = ""
    ride_id: str | None = None


def kill_hard(component: Component) -> None:
    """SIGKILL the component's main process, then let the stack reap what a crash leaves behind
    (run file; Triton's Python stubs and shared memory; a postmaster's orphaned children)."""
    pid = component.pid
    assert pid is not None, f"{component.name} is not running"
    procs.send_signal([pid], signal.SIGKILL)
    procs.wait_gone([pid], deadline=time.monotonic() + 10.0)
    component.stop()


async def post_one(client: httpx.AsyncClient, key: str, user_id: str) -> Attempt:
    body = {**RIDE, "user_id": user_id, "trip_distance": 1.0 + len(user_id) % 9}
    try:
        response = await client.post("/v1/rides", json=body, headers={"Idempotency-Key": key})
    except httpx.HTTPError:
        return Attempt(key, user_id, 0)
    ride_id = response.json()["ride_id"] if response.status_code == 201 else None
    return Attempt(key, user_id, response.status_code, response.headers["content-type"], ride_id)


async def post_steadily(client: httpx.AsyncClient, tag: str, stop: asyncio.Event) -> list[Attempt]:
    """Post a ride every 1/RATE_PER_S seconds until ``stop``; every attempt's outcome."""
    tasks: list[asyncio.Task[Attempt]] = []
    while not stop.is_set():
        i = len(tasks)
        tasks.append(asyncio.create_task(post_one(client, f"{tag}-{i}", f"it-{tag}-{i}")))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0 / RATE_PER_S)
    return list(await asyncio.gather(*tasks))


async def retry_refused(client: httpx.AsyncClient, attempts: list[Attempt]) -> list[Attempt]:
    """Retry each refused ride with its key until it is accepted (bounded); the final outcomes."""
    final = {a.key: a for a in attempts}
    deadline = time.monotonic() + RECOVERY_S
    while any(a.status != 201 for a in final.values()):
        assert time.monotonic() < deadline, [a for a in final.values() if a.status != 201]
        for attempt in [a for a in final.values() if a.status != 201]:
            final[attempt.key] = await post_one(client, attempt.key, attempt.user_id)
        await asyncio.sleep(0.2)
    return list(final.values())


async def crash_during_stream(
    backend_url: str, component: Component, tag: str, *, down_s: float
) -> tuple[list[Attempt], list[Attempt]]:
    """Stream rides, kill -9 ``component``, restart it after ``down_s``; (first answers, final)."""
    stop = asyncio.Event()
    async with httpx.AsyncClient(base_url=backend_url, timeout=CLIENT_TIMEOUT_S) as client:
        stream = asyncio.create_task(post_steadily(client, tag, stop))
        await asyncio.sleep(2.0)
        await asyncio.to_thread(kill_hard, component)
        await asyncio.sleep(down_s)
        await asyncio.to_thread(restart, component)
        await asyncio.sleep(2.0)
        stop.set()
        attempts = await stream
        final = await retry_refused(client, attempts)
    statuses = Counter(a.status for a in attempts)
    print(f"{tag}: {len(attempts)} rides posted, answers {dict(statuses)}")  # shown with -s
    return attempts, final


async def assert_every_ride_once_with_three_results(
    db: asyncpg.Pool, final: list[Attempt], tag: str
) -> None:
    """Each key made exactly one ride, with one outbox event (sent) and exactly 3 results."""
    assert all(a.status == 201 and a.ride_id for a in final)
    rows = await db.fetch("select ride_id, user_id from rides where user_id like $1", f"it-{tag}-%")
    assert len(rows) == len(final)  # no ride lost, none stored twice
    assert {str(r["ride_id"]): r["user_id"] for r in rows} == {
        str(a.ride_id): a.user_id for a in final
    }
    ride_ids = [r["ride_id"] for r in rows]
    results = await wait_all_results(db, ride_ids, timeout_s=RECOVERY_S)
    assert_exactly_one_result_per_kind(results, ride_ids)
    outbox = await db.fetch(
        "select ride_id, sent_at from ride_outbox where ride_id = any($1::uuid[])", ride_ids
    )
    assert len(outbox) == len(ride_ids)  # one event per ride
    assert all(row["sent_at"] is not None for row in outbox)  # the relay recovered by itself
    sources = await db.fetchval(
        "select count(distinct event_id) from ride_results where ride_id = any($1::uuid[])",
        ride_ids,
    )
    assert sources == len(ride_ids)  # every result came from its ride's one event


@pytest.mark.parametrize("name", ["nats", "triton", "worker-tip"])
async def test_sigkill_during_stream_every_ride_accepted(
    name: str, backend_url: str, stack: Stack, db: asyncpg.Pool
) -> None:
    """NATS (the outbox holds events), Triton (null initial duration, workers retry) or a worker
    (unacked events redelivered) killed: every ride is still accepted at once."""
    tag = f"k9-{name}"
    attempts, final = await crash_during_stream(backend_url, stack.component(name), tag, down_s=3.0)
    assert [a.status for a in attempts] == [201] * len(attempts)
    assert len(attempts) >= 5 * RATE_PER_S
    await assert_every_ride_once_with_three_results(db, final, tag)
    if name == "triton":  # rides taken while Triton was dead: null duration and a reason
        nulls = await db.fetchval(
            "select count(*) from rides where user_id like $1 "
            "and initial_duration_minutes is null and initial_reason is not null",
            f"it-{tag}-%",
        )
        assert nulls > 0


async def test_sigkill_postgres_during_stream(
    backend_url: str, stack: Stack, db: asyncpg.Pool
) -> None:
    attempts, final = await crash_during_stream(
        backend_url, stack.component("postgres"), "k9-pg", down_s=3.0
    )
    refused = [a for a in attempts if a.status != 201]
    assert refused, "no ride was posted while Postgres was down"
    for attempt in refused:  # never a 500, never a dropped connection
        assert attempt.status in (503, 504), attempt
        assert attempt.content_type == "application/problem+json", attempt
    await assert_every_ride_once_with_three_results(db, final, "k9-pg")
