"""The background prediction-log writer on the real Postgres: a row the table refuses is dropped
alone, the rest of its COPY batch is written."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from services.common.buffered_writer import ROWS_REFUSED, BufferedCopyWriter

pytestmark = pytest.mark.integration


async def test_a_refused_row_is_dropped_alone(db: asyncpg.Pool) -> None:
    table = f"writer_{uuid.uuid4().hex[:8]}"
    await db.execute(f"create table {table} (id uuid primary key, at timestamptz, note text)")
    writer = BufferedCopyWriter(db, table=table, columns=("id", "at", "note"))
    refused_before = ROWS_REFUSED.labels(table)._value.get()
    ids = [uuid.uuid4() for _ in range(7)]
    now = datetime.now(UTC)
    for i, row_id in enumerate(ids):
        writer.add((row_id, now, "bad\x00" if i == 3 else f"row {i}"))
    writer.add((ids[0], now, "the same key twice"))  # a unique violation, refused too

    written = await writer.flush()

    stored = {r["id"] for r in await db.fetch(f"select id from {table}")}
    assert written == 6 and stored == set(ids) - {ids[3]}
    assert ROWS_REFUSED.labels(table)._value.get() - refused_before == 2
    assert writer.pending == 0
    await db.execute(f"drop table {table}")
