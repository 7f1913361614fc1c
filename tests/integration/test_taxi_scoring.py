"""Batch scoring (`modelfleet score`) on the real stack: a run killed with SIGKILL mid-run and
resumed scores every row exactly once; rides runs cover each ride once, like the workers do."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from models.ride_duration.data import generate_trips
from services.stack.settings import StackSettings

# The session stack's model build counts against the first test: generous on a loaded machine.
pytestmark = [pytest.mark.timeout(1800)]

MODELS = ("ride_duration", "tip_amount", "total_amount")
KILL_ROWS = 60_000
RIDE: dict[str, Any] = {
    "pickup_datetime": "2024-03-14T08:30:00",
    "pickup_location_id": 161,
    "dropoff_location_id": 236,
    "passenger_count": 1,
    "payment_type": 1,
}


def _env(settings: StackSettings, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "MODELFLEET_HOME": str(settings.home),
        "DATABASE_URL": settings.database_url,
        "TRITON_GRPC_URL": settings.triton_grpc_url,
        **extra,
    }


async def _score(settings: StackSettings, *args: str, **env: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        "-q",
        "score",
        *args,
        env=_env(settings, **env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _finish(process: asyncio.subprocess.Process, timeout_s: float = 240.0) -> str:
    out, err = await asyncio.wait_for(process.communicate(), timeout_s)
    assert process.returncode == 0, (out.decode(), err.decode())
    return out.decode()


async def _rows_done(db: asyncpg.Pool, run_id: str) -> int:
    """Rows the run has committed (0 before the job created its tables and run)."""
    try:
        done = await db.fetchval("select rows_done from score_runs where run_id = $1", run_id)
    except asyncpg.UndefinedTableError:
        return 0
    return int(done or 0)


async def _runs_of(db: asyncpg.Pool, source_ref: str) -> int:
    try:
        count = await db.fetchval(
            "select count(*) from score_runs where source_ref = $1", source_ref
        )
    except asyncpg.UndefinedTableError:
        return 0
    return int(count)


@pytest.fixture(scope="module")
def trips_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("score") / "yellow_tripdata_test.parquet"
    generate_trips(KILL_ROWS, seed=11).to_parquet(path)
    return path


async def test_sigkill_mid_run_then_resume_scores_every_row_exactly_once(
    stack_settings: StackSettings, db: asyncpg.Pool, trips_file: Path
) -> None:
    run_id = f"kill-{uuid.uuid4().hex[:8]}"
    process = await _score(
        stack_settings, "--file", str(trips_file), "--run-id", run_id, "--chunk-rows", "50"
    )
    deadline = time.monotonic() + 180
    done = 0
    while time.monotonic() < deadline and process.returncode is None:
        done = await _rows_done(db, run_id)
        if done >= 2_000:
            break
        await asyncio.sleep(0.05)
    assert process.returncode is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    await process.wait()
    killed = await db.fetchrow("select * from score_runs where run_id = $1", run_id)
    assert killed is not None
    assert killed["status"] == "running"
    assert 2_000 <= killed["rows_done"] < KILL_ROWS
    committed = await db.fetchval("select count(*) from score_results where run_id = $1", run_id)
    assert committed == killed["rows_done"] * len(MODELS)  # chunk and checkpoint: one commit

    # No --run-id: the unfinished run of the same file is resumed.
    output = await _finish(await _score(stack_settings, "--file", str(trips_file)))
    assert f"run {run_id}: done" in output
    assert f"resumed after {killed['rows_done']:,} rows (attempt 2)" in output
    run = await db.fetchrow("select * from score_runs where run_id = $1", run_id)
    assert run is not None
    assert (run["status"], run["rows_done"], run["rows_total"]) == ("done", KILL_ROWS, KILL_ROWS)
    per_model = await db.fetch(
        "select model_name, count(*) as n, count(distinct row_key) as keys,"
        " min(row_key::int) as lo, max(row_key::int) as hi"
        " from score_results where run_id = $1 group by model_name order by model_name",
        run_id,
    )
    assert [tuple(r) for r in per_model] == [
        (model, KILL_ROWS, KILL_ROWS, 0, KILL_ROWS - 1) for model in MODELS
    ]

    # The same rows scored in one uninterrupted run give the same values.
    reference = f"ref-{uuid.uuid4().hex[:8]}"
    await _finish(await _score(stack_settings, "--file", str(trips_file), "--run-id", reference))
    differ = await db.fetchval(
        "select count(*) from score_results a join score_results b"
        " on a.row_key = b.row_key and a.model_name = b.model_name"
        " where a.run_id = $1 and b.run_id = $2 and abs(a.value - b.value) > 1e-4",
        run_id,
        reference,
    )
    assert differ == 0

    # A finished run is not scored again: by its id, or by the same file.
    again = await _finish(
        await _score(stack_settings, "--run-id", run_id, "--file", str(trips_file))
    )
    assert "already complete" in again
    assert "already complete" in await _finish(
        await _score(stack_settings, "--file", str(trips_file))
    )
    assert await db.fetchval(
        "select count(*) from score_results where run_id = $1", run_id
    ) == KILL_ROWS * len(MODELS)


async def test_bad_file_exits_non_zero_with_a_clear_message(
    stack_settings: StackSettings, db: asyncpg.Pool, tmp_path: Path
) -> None:
    bad = tmp_path / "trips.csv"
    bad.write_text("pickup,dropoff\n1,2\n")
    process = await _score(stack_settings, "--file", str(bad))
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 2
    assert "not a readable TLC trip file: missing required column 'VendorID'" in err.decode()
    assert await _runs_of(db, str(bad)) == 0


async def test_rides_runs_score_each_ride_once_with_the_workers_features(
    stack_settings: StackSettings, db: asyncpg.Pool, backend: httpx.AsyncClient
) -> None:
    settle = {"SCORE_RIDES_SETTLE_S": "0"}
    first = await _finish(await _score(stack_settings, **settle))  # everything so far
    assert ": done (rides;" in first
    posted = []
    for i in range(7):
        body = {**RIDE, "user_id": f"score-{i}", "trip_distance": 1.5 + i}
        response = await backend.post("/v1/rides", json=body)
        assert response.status_code == 201, response.text
        posted.append(uuid.UUID(response.json()["ride_id"]))
    output = await _finish(await _score(stack_settings, **settle))
    assert "rows: 7 scored now, 7 in the run" in output
    run_id = output.split()[1].rstrip(":")
    rows = await db.fetch(
        "select row_key, model_name, model_version, value from score_results where run_id = $1",
        run_id,
    )
    assert sorted((r["row_key"], r["model_name"]) for r in rows) == sorted(
        (str(ride), model) for ride in posted for model in MODELS
    )
    # A third run finds no new rides.
    assert "rows: 0 scored now, 0 in the run" in await _finish(
        await _score(stack_settings, **settle)
    )

    # Batch scoring computes the features the streaming workers compute: same values.
    kinds = {"tip": "tip_amount", "cost": "total_amount"}
    deadline = time.monotonic() + 60
    streamed: list[asyncpg.Record] = []
    while time.monotonic() < deadline:
        streamed = await db.fetch(
            "select ride_id, kind, model_version, value from ride_results"
            " where ride_id = any($1::uuid[]) and kind = any($2::text[])",
            posted,
            list(kinds),
        )
        if len(streamed) == len(posted) * len(kinds):
            break
        await asyncio.sleep(0.2)
    assert len(streamed) == len(posted) * len(kinds)
    batch = {(r["row_key"], r["model_name"]): r for r in rows}
    for result in streamed:
        scored = batch[(str(result["ride_id"]), kinds[result["kind"]])]
        assert scored["model_version"] == result["model_version"]
        assert max(scored["value"], 0.0) == pytest.approx(result["value"], abs=1e-3)
