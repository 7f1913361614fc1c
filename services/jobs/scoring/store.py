"""The scoring tables: runs with their checkpoint, and results (migrations/0001_score_runs.sql).

- :func:`begin_run` resumes the run named ``run_id`` or, without a name, the unfinished run of the
  same source (fingerprint and models; for a file also a finished one, which is then not scored
  again), else creates a new one. A new rides run covers the rides
  created after the newest finished rides run's ``cutoff`` and up to now minus ``settle_s``.
- :func:`write_chunk` writes a chunk's results and moves the checkpoint in ONE transaction; the
  checkpoint moves by compare-and-set on ``rows_done``, so two processes on one run cannot both
  commit the same chunk (the loser gets :class:`RunConflict`), and a crash leaves the run at its
  last committed chunk.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import asyncpg

from services.common.db import database_errors
from services.common.errors import Conflict, InvalidInput
from services.jobs.scoring.sources import RIDES, RideCursor

MIGRATIONS: Final = Path(__file__).parent / "migrations"
MIGRATIONS_SERVICE: Final = "scoring"
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_CREATE_LOCK: Final = 0x73636F7265  # "score": one run created at a time


class RunConflict(Conflict):
    """Another process moved this run's checkpoint: it is being scored elsewhere."""


@dataclass(frozen=True, slots=True)
class RunState:
    """One ``score_runs`` row."""

    run_id: str
    source: str
    source_ref: str
    fingerprint: str
    models: tuple[str, ...]
    rows_total: int
    rows_done: int
    chunks_done: int
    status: str
    attempts: int
    window_start: datetime | None = None
    cutoff: datetime | None = None
    cursor: RideCursor | None = None

    @classmethod
    def of(cls, row: asyncpg.Record) -> RunState:
        cursor = None
        if row["cursor_created_at"] is not None:
            cursor = RideCursor(row["cursor_created_at"], row["cursor_ride_id"])
        return cls(
            run_id=row["run_id"],
            source=row["source"],
            source_ref=row["source_ref"],
            fingerprint=row["fingerprint"],
            models=tuple(row["models"]),
            rows_total=row["rows_total"],
            rows_done=row["rows_done"],
            chunks_done=row["chunks_done"],
            status=row["status"],
            attempts=row["attempts"],
            window_start=row["window_start"],
            cutoff=row["cutoff"],
            cursor=cursor,
        )


@dataclass(frozen=True, slots=True)
class SourceIdentity:
    """What a run scores: the source kind, its reference and fingerprint, the models."""

    source: str
    ref: str
    fingerprint: str
    models: tuple[str, ...]
    rows: int | None = None
    """Rows of a file source (a rides run counts its window when it is created)."""


def new_run_id(identity: SourceIdentity, now: datetime) -> str:
    """A readable unique run id: source, UTC time, fingerprint prefix, random suffix."""
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%S")
    return f"{identity.source}-{stamp}-{identity.fingerprint[:8]}-{uuid.uuid4().hex[:6]}"


def _check_same_source(run: RunState, identity: SourceIdentity) -> None:
    if (run.source, run.fingerprint, run.models) != (
        identity.source,
        identity.fingerprint,
        identity.models,
    ):
        raise InvalidInput(
            f"run {run.run_id!r} scored {run.source} {run.source_ref} with "
            f"{','.join(run.models)} (fingerprint {run.fingerprint[:12]}); this input differs: "
            "pass another --run-id to score it as a new run"
        )


async def begin_run(
    pool: asyncpg.Pool,
    identity: SourceIdentity,
    *,
    run_id: str | None,
    settle_s: float,
    timeout_s: float,
) -> tuple[RunState, bool]:
    """(the run, True when it existed already); see the module docstring."""
    async with (
        database_errors("score_begin_run"),
        pool.acquire() as conn,
        conn.transaction(),
    ):
        await conn.execute("select pg_advisory_xact_lock($1)", _CREATE_LOCK, timeout=timeout_s)
        if run_id is not None:
            row = await conn.fetchrow(
                "select * from score_runs where run_id = $1", run_id, timeout=timeout_s
            )
        else:
            # The unfinished run of this source; for a file also a finished one (same content
            # and models: already scored). Rides runs cover new windows instead.
            row = await conn.fetchrow(
                "select * from score_runs where source = $1 and fingerprint = $2"
                " and models = $3 and (status = 'running' or source = 'file')"
                " order by status = 'running' desc, started_at desc limit 1",
                identity.source,
                identity.fingerprint,
                list(identity.models),
                timeout=timeout_s,
            )
        if row is not None:
            run = RunState.of(row)
            _check_same_source(run, identity)
            if run.status == "running":
                await conn.execute(
                    "update score_runs set attempts = attempts + 1, updated_at = now()"
                    " where run_id = $1",
                    run.run_id,
                    timeout=timeout_s,
                )
                run = replace(run, attempts=run.attempts + 1)
            return run, True
        now: datetime = await conn.fetchval("select now()", timeout=timeout_s)
        window_start = cutoff = None
        if identity.source == RIDES:
            if not await conn.fetchval("select to_regclass('rides') is not null"):
                raise InvalidInput(
                    "no rides table in this database: the backend creates it (DATABASE_URL?)"
                )
            previous = await conn.fetchval(
                "select max(cutoff) from score_runs where source = 'rides' and status = 'done'",
                timeout=timeout_s,
            )
            window_start = previous or EPOCH
            cutoff = max(window_start, now - timedelta(seconds=settle_s))
            rows_total = await conn.fetchval(
                "select count(*) from rides where created_at > $1 and created_at <= $2",
                window_start,
                cutoff,
                timeout=timeout_s,
            )
        else:
            if identity.rows is None:
                raise ValueError("a file source knows its rows")
            rows_total = identity.rows
        row = await conn.fetchrow(
            "insert into score_runs (run_id, source, source_ref, fingerprint, models,"
            " rows_total, window_start, cutoff, status)"
            " values ($1, $2, $3, $4, $5, $6, $7, $8, 'running') returning *",
            run_id or new_run_id(identity, now),
            identity.source,
            identity.ref,
            identity.fingerprint,
            list(identity.models),
            rows_total,
            window_start,
            cutoff,
            timeout=timeout_s,
        )
        assert row is not None
        return RunState.of(row), False


_ADVANCE = """
update score_runs set
    rows_done = rows_done + $3, chunks_done = chunks_done + 1,
    cursor_created_at = $4, cursor_ride_id = $5, updated_at = now(),
    status = case when $6 then 'done' else status end,
    finished_at = case when $6 then now() else finished_at end
where run_id = $1 and rows_done = $2 and status = 'running'
returning *
"""
RESULT_COLUMNS: Final = ("run_id", "row_key", "model_name", "model_version", "value")


async def write_chunk(
    pool: asyncpg.Pool,
    run: RunState,
    *,
    rows: int,
    records: list[tuple[str, str, str, str, float]],
    cursor: RideCursor | None,
    last: bool,
    timeout_s: float,
) -> RunState:
    """Commit one chunk (``rows`` source rows, their result ``records``) and the new checkpoint.

    ``last``: the source has no rows after this chunk (the run is done). Raises RunConflict when
    the run's checkpoint is not where ``run`` says (another process committed meanwhile).
    """
    async with (
        database_errors("score_write_chunk"),
        pool.acquire() as conn,
        conn.transaction(),
    ):
        row = await conn.fetchrow(
            _ADVANCE,
            run.run_id,
            run.rows_done,
            rows,
            cursor.created_at if cursor else None,
            cursor.ride_id if cursor else None,
            last,
            timeout=timeout_s,
        )
        if row is None:
            raise RunConflict(
                f"run {run.run_id!r} moved past row {run.rows_done} in another process"
            )
        if records:
            await conn.copy_records_to_table(
                "score_results", records=records, columns=RESULT_COLUMNS, timeout=timeout_s
            )
    return RunState.of(row)


async def finish_run(pool: asyncpg.Pool, run: RunState, *, timeout_s: float) -> RunState:
    """Mark a run done whose source ran out of rows (a rides window with fewer rides left)."""
    async with database_errors("score_finish_run"):
        row = await pool.fetchrow(
            "update score_runs set status = 'done', finished_at = now(), updated_at = now()"
            " where run_id = $1 and rows_done = $2 and status = 'running' returning *",
            run.run_id,
            run.rows_done,
            timeout=timeout_s,
        )
    if row is None:
        raise RunConflict(f"run {run.run_id!r} moved past row {run.rows_done} in another process")
    return RunState.of(row)
