"""The batch jobs on their timetable meet a database crash: Postgres is killed with SIGKILL in the
middle of a scheduled run, the stack's supervisor starts it again, and the run (the scheduler's
retry of the job, within its deadline) resumes where it stopped. Exact counts afterwards: every
ride scored exactly once per model, every catalogue product written once and whole.

The jobs are started by the local scheduler (services/stack/schedule.py) from the chart's values
as `modelfleet up` runs them: a clock set just before the entry's due time, then real time; the
supervisor and the scheduler tick together as in `up`'s loop. The stack is the module's own
(Postgres, NATS, Triton with the taxi models and the embedder), so a crash here disturbs no
other test.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from models.repository import build_models
from models.repository.registry import MODELS
from services.backend.app import MIGRATIONS as BACKEND_MIGRATIONS
from services.common.migrations import apply_migrations
from services.domain.documents.embeddings import MODEL_NAME as EMBEDDING_MODEL
from services.jobs.ingest import IngestSettings, load_products, unique_products
from services.stack import jobruns, procs
from services.stack.jobruns import JobRecord
from services.stack.schedule import Scheduler
from services.stack.settings import StackSettings
from services.stack.supervision import Supervisor
from services.stack.supervisor import Stack
from services.stack.testing import running_stack, settings_for_tests
from services.stack.timetable import JobSpec, load_jobs

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

SCORE_MODELS = ("ride_duration", "tip_amount", "total_amount")
RIDES = 60_000
#: the chart's 2000-row chunks, smaller here: many commits, so the kill lands mid-run
SCORE_CHUNK_ROWS = "500"
CATALOGUE_ROWS = 1_200  # embedded at about 14 products/s on 2 cores: about 90 s
#: kill Postgres once this share of the run is committed
KILL_AT = 0.25
RUN_TIMEOUT_S = 240.0
TICK_S = 0.2


@dataclass(frozen=True)
class Env:
    settings: StackSettings
    stack: Stack
    jobs: dict[str, JobSpec]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    home = tmp_path_factory.mktemp("timetable")
    # Retries 2 s and 4 s apart (the chart's Job controller: 10 s, 20 s); a quick restart.
    settings = settings_for_tests(home, job_backoff_s=2.0, restart_backoff_s=0.5)
    wanted = (*SCORE_MODELS, EMBEDDING_MODEL)
    build_models(
        settings.paths.model_repository,
        seed=7,
        rows=2_000,
        models=tuple(spec for spec in MODELS if spec.name in wanted),
        log=lambda _: None,
    )
    with running_stack(settings, ["postgres", "nats", "triton"]) as stack:
        yield Env(settings, stack, {job.name: job for job in load_jobs()})


@pytest_asyncio.fixture
async def db(env: Env) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(env.settings.database_url, min_size=0, max_size=2)
    yield pool
    await pool.close()


def clock_before(due: datetime) -> Callable[[], datetime]:
    """Real time moved to half a second before `due`."""
    offset = due - timedelta(seconds=0.5) - datetime.now(UTC)
    return lambda: datetime.now(UTC) + offset


def kill_postgres(stack: Stack) -> int:
    """SIGKILL the postmaster (no shutdown of any kind); its pid. The supervisor restarts it."""
    pid = stack.component("postgres").pid
    assert pid is not None
    procs.send_signal([pid], signal.SIGKILL)
    procs.wait_gone([pid], deadline=time.monotonic() + 10.0)
    return pid


@dataclass
class Crash:
    """What the test saw: committed progress when Postgres was killed, the run's record."""

    done_at_kill: int = 0
    killed_after_s: float = 0.0
    record: JobRecord | None = None
    said: list[str] | None = None


async def run_through_a_crash(
    env: Env,
    spec: JobSpec,
    due: datetime,
    progress: Callable[[], object],
    total: int,
) -> Crash:
    """Schedule `spec` alone, tick from just before `due` until its run ends; SIGKILL Postgres
    once `progress()` (committed rows, awaited) passes KILL_AT of `total`."""
    said: list[str] = []
    crash = Crash(said=said)
    scheduler = Scheduler([spec], env.settings, say=said.append, clock=clock_before(due))
    supervisor: Supervisor = env.stack.supervisor(say=said.append)
    assert scheduler.next_runs() == {spec.name: due}

    def tick() -> list[JobRecord]:
        supervisor.tick()
        return scheduler.tick()

    began = time.monotonic()
    deadline = began + RUN_TIMEOUT_S
    killed = False
    try:
        while time.monotonic() < deadline:
            ended = await asyncio.to_thread(tick)
            if ended:
                (crash.record,) = ended
                break
            if not killed and scheduler.running():
                done = await progress()  # type: ignore[misc]
                if done >= KILL_AT * total:
                    await asyncio.to_thread(kill_postgres, env.stack)
                    killed = True
                    crash.done_at_kill = int(done)
                    crash.killed_after_s = time.monotonic() - began
            await asyncio.sleep(TICK_S)
        # Postgres back (ready) before the counts.
        while time.monotonic() < deadline and not env.stack.component("postgres").is_ready():
            await asyncio.to_thread(supervisor.tick)
            await asyncio.sleep(TICK_S)
    finally:
        await asyncio.to_thread(scheduler.stop)
    print("\n".join(said))  # shown with -s
    assert killed, f"the run ended before Postgres was killed: {said}"
    assert crash.record is not None, f"the run did not end in {RUN_TIMEOUT_S} s: {said}"
    return crash


async def _count(db: asyncpg.Pool, sql: str, *args: object) -> int:
    """A count; 0 while the table is missing or the database is down (the crash)."""
    with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return int(await db.fetchval(sql, *args, timeout=2.0) or 0)
    return 0


async def test_scoring_resumes_after_postgres_is_killed_mid_run(env: Env, db: asyncpg.Pool) -> None:
    await apply_migrations(db, service="backend", directory=BACKEND_MIGRATIONS)
    created = datetime.now(UTC) - timedelta(hours=1)  # settled: older than SCORE_RIDES_SETTLE_S
    rides = [
        (
            uuid.uuid4(),
            created + timedelta(microseconds=i),
            f"timetable-{i}",
            datetime(2024, 3, 14, 8, 30) + timedelta(minutes=i % 600),
            1 + i % 263,
            1 + (i * 7) % 263,
            0.5 + (i % 40) / 2,
            1 + i % 4,
            1 + i % 2,
        )
        for i in range(RIDES)
    ]
    await db.copy_records_to_table(
        "rides",
        records=rides,
        columns=[
            "ride_id",
            "created_at",
            "user_id",
            "pickup_datetime",
            "pickup_location_id",
            "dropoff_location_id",
            "trip_distance",
            "passenger_count",
            "payment_type",
        ],
    )
    chart = env.jobs["ride-scoring"]
    assert chart.schedule == "20 */2 * * *"
    spec = replace(chart, env={**chart.env, "SCORE_CHUNK_ROWS": SCORE_CHUNK_ROWS})
    due = datetime(2026, 3, 2, 0, 20, tzinfo=UTC)

    async def rows_done() -> int:
        return await _count(db, "select max(rows_done) from score_runs where status = 'running'")

    crash = await run_through_a_crash(env, spec, due, rows_done, RIDES)
    record = crash.record
    assert record is not None
    print(
        f"scoring: {RIDES} rides; Postgres killed at {crash.done_at_kill} rows committed, "
        f"{crash.killed_after_s:.1f} s in; run {record.state} exit {record.exit_code} "
        f"after {record.duration_s} s, {record.attempts} attempts"
    )
    assert (record.state, record.exit_code, record.trigger) == ("succeeded", 0, "schedule")
    assert record.attempts >= 2  # the crash failed an attempt; a retry finished the run
    assert record == jobruns.read(env.settings.paths.run, "ride-scoring")
    assert record.scheduled_for == "2026-03-02T00:20:00+00:00"
    assert 0 < crash.done_at_kill < RIDES

    runs = await db.fetch("select * from score_runs where source = 'rides'")
    assert len(runs) == 1, runs  # one run, resumed (not a second window)
    (run,) = runs
    assert (run["status"], run["rows_total"], run["rows_done"]) == ("done", RIDES, RIDES)
    assert run["attempts"] >= 2
    results = await db.fetchval(
        "select count(*) from score_results where run_id = $1", run["run_id"]
    )
    distinct = await db.fetchval(
        "select count(*) from (select distinct row_key, model_name from score_results"
        " where run_id = $1) d",
        run["run_id"],
    )
    assert results == distinct == RIDES * len(SCORE_MODELS)  # no duplicate, none missing
    missing = await db.fetchval(
        "select count(*) from rides r where not exists (select 1 from score_results s"
        " where s.row_key = r.ride_id::text)"
    )
    assert missing == 0
    log = await asyncio.to_thread(Path(record.log_file).read_text)
    assert "resuming run" in log


async def test_ingestion_resumes_after_postgres_is_killed_mid_run(
    env: Env, db: asyncpg.Pool
) -> None:
    chart = env.jobs["documents-ingest"]
    assert chart.schedule == "40 */4 * * *"
    spec = replace(chart, env={**chart.env, "INGEST_CATALOGUE_ROWS": str(CATALOGUE_ROWS)})
    settings = IngestSettings(catalogue_rows=CATALOGUE_ROWS)
    products, _ = unique_products(await asyncio.to_thread(load_products, settings))
    expected = {p.product_id for p in products}
    due = datetime(2026, 3, 2, 0, 40, tzinfo=UTC)

    async def written() -> int:
        return await _count(db, "select count(*) from products")

    crash = await run_through_a_crash(env, spec, due, written, len(expected))
    record = crash.record
    assert record is not None
    print(
        f"ingestion: {len(expected)} products; Postgres killed at {crash.done_at_kill} written, "
        f"{crash.killed_after_s:.1f} s in; run {record.state} exit {record.exit_code} "
        f"after {record.duration_s} s, {record.attempts} attempts"
    )
    assert (record.state, record.exit_code) == ("succeeded", 0)
    # Killed while a batch was written: that attempt fails and a retry skips what is written.
    # Killed while it embeds (most of its time, on Triton): the pool reconnects, one attempt.
    assert 1 <= record.attempts <= 3
    assert 0 < crash.done_at_kill < len(expected)
    assert (env.settings.paths.home / "documents").is_dir()  # the claim's folder, made local

    ids = {r["product_id"] for r in await db.fetch("select product_id from products")}
    assert ids == expected  # every product once (primary key), none missing
    documents = await db.fetch(
        "select d.external_id, d.status, count(c.id) as chunks from documents d"
        " left join chunks c on c.document_id = d.id where d.source = 'product'"
        " group by d.external_id, d.status"
    )
    assert len(documents) == len(expected)
    assert {d["external_id"] for d in documents} == expected
    assert {(d["status"], d["chunks"]) for d in documents} == {("ready", 1)}  # none half-written
    log = await asyncio.to_thread(Path(record.log_file).read_text)
    assert "unchanged" in log
