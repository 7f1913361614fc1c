"""The taxi app survives its servers stopping: NATS, Postgres and Triton, each stopped and started
while rides come in, with exact counts afterwards (no accepted ride lost, no result duplicated,
nothing acked unprocessed). Nothing is restarted by hand but the server under test.

Two kinds: a graceful stop with a fixed batch of rides, and SIGKILL (of NATS, Postgres, Triton,
a worker and the backend, whose outbox relay then restarts with it) while a background task posts
rides at a steady rate."""

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
import nats
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from services.backend.api import REPLAYED_HEADER
from services.common.jetstream import RIDE_REQUESTED, RIDES_STREAM
from services.domain.taxi.events import RideEvent
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
    error: str = ""  # status 0: the httpx error (ConnectError: the request never left)
    replayed: bool = False  # answered from an earlier request with the same key


def kill_hard(component: Component) -> None:
    """SIGKILL the component's main process, then let the stack reap what a crash leaves behind
    (run file; Triton's Python stubs and shared memory; a postmaster's orphaned children)."""
    pid = component.pid
    assert pid is not None, f"{component.name} is not running"
    procs.send_signal([pid], signal.SIGKILL)
    procs.wait_gone([pid], deadline=time.monotonic() + 10.0)
    component.stop()


async def post_one(
    client: httpx.AsyncClient, key: str, user_id: str, in_flight: set[str] | None = None
) -> Attempt:
    """POST one ride with its key; ``in_flight`` holds the key while the request is open."""
    body = {**RIDE, "user_id": user_id, "trip_distance": 1.0 + len(user_id) % 9}
    if in_flight is not None:
        in_flight.add(key)
    try:
        response = await client.post("/v1/rides", json=body, headers={"Idempotency-Key": key})
    except httpx.HTTPError as exc:
        return Attempt(key, user_id, 0, error=type(exc).__name__)
    finally:
        if in_flight is not None:
            in_flight.discard(key)
    ride_id = response.json()["ride_id"] if response.status_code == 201 else None
    return Attempt(
        key,
        user_id,
        response.status_code,
        response.headers["content-type"],
        ride_id,
        replayed=response.headers.get(REPLAYED_HEADER) == "true",
    )


async def post_steadily(
    client: httpx.AsyncClient, tag: str, stop: asyncio.Event, in_flight: set[str] | None = None
) -> list[Attempt]:
    """Post a ride every 1/RATE_PER_S seconds until ``stop``; every attempt's outcome."""
    tasks: list[asyncio.Task[Attempt]] = []
    while not stop.is_set():
        i = len(tasks)
        key, user_id = f"{tag}-{i}", f"it-{tag}-{i}"
        tasks.append(asyncio.create_task(post_one(client, key, user_id, in_flight)))
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


# --- SIGKILL of the backend (the outbox relay's process) while rides keep coming ---------------
# The backend answers the POSTs and runs the relay. While it is dead a POST fails to connect (not
# an acknowledged ride: nothing may be stored for it); a POST in flight at the kill gets no answer
# but may have been committed: its key says which, and its retry must replay that ride (never a
# second one). Published exactly once: JetStream holds one rides.requested message per outbox
# event (the relay republishes what it had not marked sent; the stream's dedupe drops the repeat).
# "relay-mid-publish" freezes NATS (SIGSTOP) before the kill: the relay dies holding unsent rows
# whose publishes NATS takes in only after the kill, so the restarted relay must both drain the
# backlog and republish events that JetStream already holds.


async def rides_last_seq(nats_url: str) -> int:
    """The RIDES stream's last sequence number now."""
    nc = await nats.connect(nats_url, connect_timeout=5)
    try:
        info = await nc.jetstream().stream_info(RIDES_STREAM)
        return int(info.state.last_seq)
    finally:
        await nc.close()


async def requested_since(nats_url: str, after_seq: int) -> Counter[uuid.UUID]:
    """Each event id's count of rides.requested messages in RIDES after ``after_seq``."""
    nc = await nats.connect(nats_url, connect_timeout=5)
    try:
        js = nc.jetstream()
        last = int((await js.stream_info(RIDES_STREAM)).state.last_seq)
        events: Counter[uuid.UUID] = Counter()
        for seq in range(after_seq + 1, last + 1):
            msg = await js.get_msg(RIDES_STREAM, seq)
            if msg.subject == RIDE_REQUESTED and msg.data is not None:
                events[RideEvent.model_validate_json(msg.data).event_id] += 1
        return events
    finally:
        await nc.close()


async def unsent_outbox(db: asyncpg.Pool) -> int:
    """Outbox rows (of any ride) not yet marked published."""
    count: int = await db.fetchval("select count(*) from ride_outbox where sent_at is null")
    return count


async def wait_outbox_drained(db: asyncpg.Pool) -> int:
    """Poll until no outbox row is unsent (bounded); the unsent count last seen."""
    deadline = time.monotonic() + RECOVERY_S
    while True:
        unsent = await unsent_outbox(db)
        if not unsent or time.monotonic() > deadline:
            return unsent
        await asyncio.sleep(0.2)


async def relay_duplicates(backend_url: str) -> float:
    """modelfleet_backend_outbox_published_total{outcome="duplicate"} of the running backend."""
    async with httpx.AsyncClient(base_url=backend_url, timeout=CLIENT_TIMEOUT_S) as client:
        text = (await client.get("/metrics")).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "modelfleet_backend_outbox_published"
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels.get("outcome") == "duplicate"
    )


async def kill_backend_during_stream(
    backend_url: str, stack: Stack, db: asyncpg.Pool, tag: str, *, freeze_nats: bool
) -> tuple[list[Attempt], int]:
    """Stream rides, kill -9 the backend with a POST in flight, restart it after 3 s.

    Every attempt's first outcome, and the tag's unsent outbox rows seen just before the kill.
    With ``freeze_nats``, NATS is stopped (SIGSTOP) 2.5 s before the kill and resumed after it.
    """
    backend, nats_server = stack.component("backend"), stack.component("nats")
    nats_pid = nats_server.pid
    assert nats_pid is not None
    stop = asyncio.Event()
    in_flight: set[str] = set()
    async with httpx.AsyncClient(base_url=backend_url, timeout=CLIENT_TIMEOUT_S) as client:
        stream = asyncio.create_task(post_steadily(client, tag, stop, in_flight))
        await asyncio.sleep(2.0)
        if freeze_nats:
            procs.send_signal([nats_pid], signal.SIGSTOP)
        try:
            if freeze_nats:
                await asyncio.sleep(2.5)  # rides go on into the outbox; the relay's round hangs
            backlog: int = await db.fetchval(
                "select count(*) from ride_outbox o join rides r using (ride_id) "
                "where r.user_id like $1 and o.sent_at is null",
                f"it-{tag}-%",
            )
            deadline = time.monotonic() + 5.0
            while True:  # kill with a POST open
                if in_flight or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.002)
            await asyncio.to_thread(kill_hard, backend)
        finally:
            if freeze_nats:
                procs.send_signal([nats_pid], signal.SIGCONT)
        await asyncio.sleep(3.0)
        await asyncio.to_thread(restart, backend)
        await asyncio.sleep(2.0)
        stop.set()
        attempts = await stream
    return attempts, backlog


@pytest.mark.parametrize("freeze_nats", [False, True], ids=["plain", "relay-mid-publish"])
async def test_sigkill_backend_during_stream(
    freeze_nats: bool,
    backend_url: str,
    stack: Stack,
    stack_settings: StackSettings,
    db: asyncpg.Pool,
) -> None:
    tag = "k9-backend-frozen" if freeze_nats else "k9-backend"
    assert await wait_outbox_drained(db) == 0  # what the stream holds next is this test's only
    seq_before = await rides_last_seq(stack_settings.nats_url)
    began = time.monotonic()
    attempts, backlog = await kill_backend_during_stream(
        backend_url, stack, db, tag, freeze_nats=freeze_nats
    )
    statuses = Counter(a.status for a in attempts)
    assert set(statuses) <= {201, 503, 0}, statuses  # no other 5xx (never a 500), no 4xx
    for attempt in attempts:
        if attempt.status == 503:
            assert attempt.content_type == "application/problem+json", attempt
        assert not attempt.replayed, attempt  # one key per ride: nothing to replay yet
    unanswered = [a for a in attempts if a.status == 0]
    assert len(unanswered) >= 3 * RATE_PER_S * 0.5, statuses  # it was down 3 s and more
    # The unanswered POSTs that committed anyway (in flight at the kill): known by their key.
    keys = await db.fetch(
        "select idempotency_key, ride_id from ride_idempotency where idempotency_key = any($1)",
        [a.key for a in unanswered],
    )
    committed = {row["idempotency_key"]: str(row["ride_id"]) for row in keys}
    never_sent = [a for a in unanswered if a.error == "ConnectError"]
    assert not committed.keys() & {a.key for a in never_sent}  # a refused connection wrote nothing
    ghosts = await db.fetchval(
        "select count(*) from rides where user_id = any($1)", [a.user_id for a in unanswered]
    )
    assert ghosts == len(committed)  # an unanswered POST is stored only with its key
    async with httpx.AsyncClient(base_url=backend_url, timeout=CLIENT_TIMEOUT_S) as client:
        final = await retry_refused(client, attempts)
    by_key = {a.key: a for a in final}
    for attempt in unanswered:  # the retry answers the committed ride, or makes the ride once
        retried = by_key[attempt.key]
        assert retried.replayed == (attempt.key in committed), retried
        if attempt.key in committed:
            assert retried.ride_id == committed[attempt.key], retried
    acknowledged = {a.key: a.ride_id for a in attempts if a.status == 201}
    assert all(by_key[k].ride_id == ride_id for k, ride_id in acknowledged.items())
    await assert_every_ride_once_with_three_results(db, final, tag)
    assert await wait_outbox_drained(db) == 0  # the outbox is empty again: nothing left behind
    ride_ids = [uuid.UUID(str(a.ride_id)) for a in final]
    event_ids = await db.fetch(
        "select event_id from ride_outbox where ride_id = any($1::uuid[])", ride_ids
    )
    published = await requested_since(stack_settings.nats_url, seq_before)
    assert published == Counter({row["event_id"]: 1 for row in event_ids})  # each event once
    duplicates = await relay_duplicates(backend_url)
    if freeze_nats:
        assert backlog > 0  # the relay died with events it had not marked sent
        assert duplicates > 0  # and NATS held some of them: republished, dropped by dedupe
    in_flight_errors = Counter(a.error for a in unanswered if a.error != "ConnectError")
    print(  # shown with -s
        f"{tag}: {len(attempts)} rides posted, answers {dict(statuses)}, "
        f"{len(never_sent)} refused connections, in flight at the kill {dict(in_flight_errors)} "
        f"of which committed {len(committed)}, {len(final)} rides stored, "
        f"backlog at the kill {backlog}, republished duplicates {duplicates:.0f}, "
        f"{len(published)} events on JetStream, {time.monotonic() - began:.1f} s"
    )
