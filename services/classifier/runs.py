"""The ``classifier_retraining_runs`` table: the classifier's record of retraining runs and the
lock that allows one run at a time across every replica.

:func:`claim_run` inserts a ``queued`` row; the partial unique index on (model_name) for
queued/running rows makes a second insert conflict, and the caller gets the active run back
instead. A run stuck queued/running for longer than ``stale_after_s`` (its job was lost with
the node or the process) is marked failed first, so the lock never stays taken for ever. The job
(``services/jobs/classifier_retrain.py``) moves its row to running and then to succeeded /
rejected / failed; the trigger marks it failed when the job could not start or died early.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from services.common.db import database_errors

ACTIVE = ("queued", "running")
_COLUMNS = (
    "run_id, model_name, status, reason, trigger, alert, job_name, serving_version,"
    " new_version, metrics, error, created_at, started_at, finished_at"
)


@dataclass(frozen=True)
class Claim:
    """What :func:`claim_run` got: a new run, or the one already queued or running."""

    created: bool
    run: dict[str, Any]


def _run(row: asyncpg.Record) -> dict[str, Any]:
    run = dict(row)
    run["run_id"] = str(run["run_id"])
    for key in ("alert", "metrics"):
        if isinstance(run[key], str):
            run[key] = json.loads(run[key])
    for key in ("created_at", "started_at", "finished_at"):
        run[key] = run[key].isoformat() if run[key] is not None else None
    return run


async def claim_run(
    pool: asyncpg.Pool,
    *,
    model: str,
    reason: str,
    trigger: str,
    alert: dict[str, Any] | None,
    stale_after_s: float,
    timeout_s: float,
) -> Claim:
    """A new queued run of ``model``, unless one is queued or running (then that one)."""
    run_id = uuid.uuid4()
    async with (
        database_errors("claim_retraining_run"),
        pool.acquire() as conn,
        conn.transaction(),
    ):
        await conn.execute(
            "update classifier_retraining_runs set status = 'failed', finished_at = now(),"
            " updated_at = now(), error = 'no news from the job for '"
            " || $2::int || ' s: marked failed'"
            " where model_name = $1 and status in ('queued', 'running')"
            " and updated_at < now() - make_interval(secs => $2)",
            model,
            int(stale_after_s),
            timeout=timeout_s,
        )
        row = await conn.fetchrow(
            "insert into classifier_retraining_runs (run_id, model_name, status, reason,"
            " trigger, alert) values ($1, $2, 'queued', $3, $4, $5::jsonb)"
            " on conflict (model_name) where status in ('queued', 'running') do nothing"
            f" returning {_COLUMNS}",
            run_id,
            model,
            reason,
            trigger,
            None if alert is None else json.dumps(alert),
            timeout=timeout_s,
        )
        if row is not None:
            return Claim(True, _run(row))
        active = await conn.fetchrow(
            f"select {_COLUMNS} from classifier_retraining_runs"
            " where model_name = $1 and status in ('queued', 'running')",
            model,
            timeout=timeout_s,
        )
    if active is None:  # finished between the insert and the select: ask again
        return await claim_run(
            pool,
            model=model,
            reason=reason,
            trigger=trigger,
            alert=alert,
            stale_after_s=stale_after_s,
            timeout_s=timeout_s,
        )
    return Claim(False, _run(active))


async def set_job_name(
    pool: asyncpg.Pool, run_id: uuid.UUID | str, job_name: str, *, timeout_s: float
) -> None:
    """Record which job (process id or Kubernetes Job name) carries the run."""
    async with database_errors("update_retraining_run"):
        await pool.execute(
            "update classifier_retraining_runs set job_name = $2, updated_at = now()"
            " where run_id = $1",
            uuid.UUID(str(run_id)),
            job_name,
            timeout=timeout_s,
        )


async def fail_run(
    pool: asyncpg.Pool, run_id: uuid.UUID | str, error: str, *, timeout_s: float
) -> bool:
    """Mark a still queued/running run failed (no-op once the job finished it); True if done."""
    async with database_errors("fail_retraining_run"):
        status = await pool.fetchval(
            "update classifier_retraining_runs set status = 'failed', error = $2,"
            " finished_at = now(), updated_at = now()"
            " where run_id = $1 and status in ('queued', 'running') returning status",
            uuid.UUID(str(run_id)),
            error[:2000],
            timeout=timeout_s,
        )
    return status is not None


async def get_run(
    pool: asyncpg.Pool, run_id: uuid.UUID, *, timeout_s: float
) -> dict[str, Any] | None:
    async with database_errors("get_retraining_run"):
        row = await pool.fetchrow(
            f"select {_COLUMNS} from classifier_retraining_runs where run_id = $1",
            run_id,
            timeout=timeout_s,
        )
    return None if row is None else _run(row)


async def recent_runs(
    pool: asyncpg.Pool, *, model: str, limit: int, timeout_s: float
) -> list[dict[str, Any]]:
    async with database_errors("list_retraining_runs"):
        rows = await pool.fetch(
            f"select {_COLUMNS} from classifier_retraining_runs where model_name = $1"
            " order by created_at desc limit $2",
            model,
            limit,
            timeout=timeout_s,
        )
    return [_run(r) for r in rows]
