"""Actual ride durations (the truth) and the per-variant MAE/RMSE gauges computed from them.

``POST /v1/outcomes`` stores each ride's actual minutes in ``ride_duration_outcomes`` in the
request's own transaction (an outcome is not a sample: it must not be lost); a repeat in a later
request replaces the value. Within one batch a prediction id comes at most once: the request
model rejects a repeat (422, :class:`~services.ride_duration.schemas.OutcomeBatch`), since the
upsert is one statement and Postgres refuses to update a row twice in one statement.

Every replica recomputes, every ``outcome_refresh_s`` and right after it stored outcomes, the
MAE and RMSE of each (variant, model version) over the outcomes observed in the last
``outcome_window_s``, joined with the prediction log, so every replica reports the same gauges
and a restart reloads them. A variant that left the window loses its gauges.

    tracker = OutcomeTracker(pool, settings)
    tracker.start(); await tracker.record(outcomes); await tracker.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

import asyncpg

from services.common.db import database_errors
from services.common.errors import ModelfleetError
from services.common.logging import request_id_var
from services.common.tasks import cancel_and_wait
from services.ride_duration.routing.metrics import OUTCOME_COUNT, OUTCOME_MAE, OUTCOME_RMSE
from services.ride_duration.schemas import Outcome
from services.ride_duration.settings import RideDurationSettings

log = logging.getLogger(__name__)

MIN_REFRESH_GAP_S = 0.5

_UPSERT = """
insert into ride_duration_outcomes (prediction_id, actual_minutes, request_id)
select * from unnest($1::uuid[], $2::real[], $3::text[])
on conflict (prediction_id) do update
    set actual_minutes = excluded.actual_minutes, observed_at = now(),
        request_id = excluded.request_id
"""

_PER_VARIANT = """
select coalesce(p.variant, 'unknown') as variant, p.model_version,
       avg(abs(p.duration_minutes - o.actual_minutes)) as mae,
       sqrt(avg((p.duration_minutes - o.actual_minutes) ^ 2)) as rmse,
       count(*) as n
from ride_duration_outcomes o
join ride_duration_predictions p using (prediction_id)
where o.observed_at > now() - make_interval(secs => $1)
group by 1, 2
"""


class OutcomeTracker:
    """Stores outcomes and keeps the per-variant error gauges of this replica current."""

    def __init__(self, pool: asyncpg.Pool, settings: RideDurationSettings) -> None:
        self.pool = pool
        self.service = settings.service_name
        self.window_s = settings.outcome_window_s
        self.refresh_s = settings.outcome_refresh_s
        self.timeout_s = settings.database_timeout_s
        self._labels: set[tuple[str, str, str]] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def record(self, outcomes: Sequence[Outcome]) -> int:
        """Store (or replace) these outcomes; the gauges follow right after."""
        request_id = request_id_var.get()
        async with database_errors("insert_outcomes"):
            await self.pool.execute(
                _UPSERT,
                [o.prediction_id for o in outcomes],
                [o.actual_minutes for o in outcomes],
                [request_id] * len(outcomes),
                timeout=self.timeout_s,
            )
        self._wake.set()
        return len(outcomes)

    async def refresh(self) -> None:
        """Recompute every gauge from Postgres; drop the gauges of variants out of the window."""
        async with database_errors("outcome_metrics"):
            rows = await self.pool.fetch(_PER_VARIANT, self.window_s, timeout=self.timeout_s)
        seen: set[tuple[str, str, str]] = set()
        for row in rows:
            labels = (self.service, str(row["variant"]), str(row["model_version"]))
            seen.add(labels)
            OUTCOME_MAE.labels(*labels).set(float(row["mae"]))
            OUTCOME_RMSE.labels(*labels).set(float(row["rmse"]))
            OUTCOME_COUNT.labels(*labels).set(int(row["n"]))
        for labels in self._labels - seen:
            for gauge in (OUTCOME_MAE, OUTCOME_RMSE, OUTCOME_COUNT):
                with contextlib.suppress(KeyError):
                    gauge.remove(*labels)
        self._labels = seen

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="outcome-metrics")

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.refresh_s)
            self._wake.clear()
            try:
                await self.refresh()
            except ModelfleetError as exc:
                log.warning("outcome metrics not refreshed", extra={"error": str(exc)})
            await asyncio.sleep(MIN_REFRESH_GAP_S)  # a stream of outcomes: one query per gap

    async def close(self) -> None:
        await cancel_and_wait([self._task])
        self._task = None
