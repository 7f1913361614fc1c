"""Write rows to a Postgres table in the background, in batches (COPY), off the request path.

For records whose loss on a crash is acceptable (a prediction log for monitoring), where writing
each one inside the request would cost a database round trip per prediction. Rows wait in a
bounded in-memory buffer; a task flushes them every ``flush_interval_s`` with one COPY. When the
database is down the buffer keeps the newest ``max_buffered`` rows and counts what it dropped.
Anything that must not be lost is written in the request's own transaction instead.

    writer = BufferedCopyWriter(pool, table="ride_duration_predictions", columns=(...))
    writer.start(); writer.add((uuid, ...)); ...; await writer.close()
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from typing import Any

import asyncpg
from prometheus_client import Counter, Gauge

from services.common.db import database_errors
from services.common.errors import DatabaseUnavailable, DependencyTimeout

log = logging.getLogger(__name__)

ROWS_WRITTEN = Counter(
    "modelfleet_buffered_rows_written_total", "Rows written by background writers.", ["table"]
)
ROWS_DROPPED = Counter(
    "modelfleet_buffered_rows_dropped_total",
    "Rows dropped by background writers because the buffer was full.",
    ["table"],
)
ROWS_REFUSED = Counter(
    "modelfleet_buffered_rows_refused_total",
    "Rows dropped by background writers because the table refused them (the rest of their "
    "batch is written).",
    ["table"],
)
ROWS_BUFFERED = Gauge(
    "modelfleet_buffered_rows", "Rows waiting in background writers' buffers.", ["table"]
)


class BufferedCopyWriter:
    """A bounded buffer of rows flushed to one table with COPY by a background task."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        table: str,
        columns: Sequence[str],
        flush_interval_s: float = 0.2,
        max_buffered: int = 50_000,
        max_rows_per_copy: int = 5_000,
        timeout_s: float = 5.0,
    ) -> None:
        self.pool = pool
        self.table = table
        self.columns = tuple(columns)
        self.flush_interval_s = flush_interval_s
        self.max_rows_per_copy = max_rows_per_copy
        self.timeout_s = timeout_s
        self._rows: deque[tuple[Any, ...]] = deque(maxlen=max_buffered)
        self._task: asyncio.Task[None] | None = None
        self._written = ROWS_WRITTEN.labels(table)
        self._dropped = ROWS_DROPPED.labels(table)
        self._refused = ROWS_REFUSED.labels(table)
        self._buffered = ROWS_BUFFERED.labels(table)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"writer:{self.table}")

    def add(self, row: tuple[Any, ...]) -> None:
        """Queue one row; never blocks, never raises (a full buffer drops its oldest row)."""
        if len(self._rows) == self._rows.maxlen:
            self._dropped.inc()
        self._rows.append(row)

    @property
    def pending(self) -> int:
        return len(self._rows)

    async def flush(self) -> int:
        """Write what is buffered now; return the number of rows written."""
        written = 0
        while self._rows:
            count = min(len(self._rows), self.max_rows_per_copy)
            batch = [self._rows[i] for i in range(count)]
            try:
                await self._copy(batch)
                stored = count
            except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError):
                # A row the table refuses would block every later row; the others are kept.
                stored = await self._copy_each(batch)
            for _ in range(count):
                self._rows.popleft()
            written += stored
            self._written.inc(stored)
        self._buffered.set(len(self._rows))
        return written

    async def _copy(self, rows: list[tuple[Any, ...]]) -> None:
        async with database_errors(f"copy:{self.table}"):
            await self.pool.copy_records_to_table(
                self.table, records=rows, columns=self.columns, timeout=self.timeout_s
            )

    async def _copy_each(self, rows: list[tuple[Any, ...]]) -> int:
        """Write ``rows`` one COPY each after a batch was refused; drop (and count) only the
        rows the table refuses. Returns the number written."""
        stored = 0
        for row in rows:
            try:
                await self._copy([row])
            except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as exc:
                log.error(
                    "row refused by the table; dropped",
                    extra={"table": self.table, "error": str(exc)},
                )
                self._refused.inc()
                continue
            stored += 1
        return stored

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            try:
                await self.flush()
            except (DatabaseUnavailable, DependencyTimeout) as exc:
                log.warning(
                    "background write failed; will retry",
                    extra={"table": self.table, "pending": len(self._rows), "error": str(exc)},
                )
            self._buffered.set(len(self._rows))

    async def close(self, *, timeout_s: float = 5.0) -> None:
        """Stop the task and write what is left (best effort within ``timeout_s``)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        try:
            await asyncio.wait_for(self.flush(), timeout=timeout_s)
        except (TimeoutError, DatabaseUnavailable, DependencyTimeout):
            log.warning(
                "rows lost at shutdown", extra={"table": self.table, "pending": len(self._rows)}
            )
