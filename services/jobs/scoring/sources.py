"""Where the rows of a scoring run come from, cut into chunks in a fixed order.

- ``FileSource`` (``file_source.py``, imported only for a file: it needs pandas): NYC TLC trips
  from a parquet/CSV file or folder.
- ``RidesSource``: the backend's ``rides`` table, ``created_at`` in the run's window
  (``window_start`` < created_at <= ``cutoff``), ordered by (created_at, ride_id) and read page by
  page from the run's cursor; row key = ride_id; features as the streaming workers compute them
  (``ride_features`` of the request fields).

Both yield :class:`Chunk` objects starting after what the run has already committed, so a
resumed run continues exactly there.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import asyncpg
import numpy as np
import numpy.typing as npt

from services.common.db import database_errors
from services.domain.taxi.features import ride_features

FloatMatrix = npt.NDArray[np.float32]
RIDES: Final = "rides"
FILE: Final = "file"


@dataclass(frozen=True, slots=True)
class RideCursor:
    """The last scored ride of a rides run: rides sort by (created_at, ride_id)."""

    created_at: datetime
    ride_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class Chunk:
    """``len(row_keys)`` rows to score: their keys, model input and the cursor after them."""

    start: int
    """Rows of the run committed before this chunk (its position)."""
    row_keys: list[str]
    features: FloatMatrix
    cursor: RideCursor | None = None


def chunk_bounds(total: int, done: int, size: int) -> Iterator[tuple[int, int]]:
    """(start, stop) of every chunk of ``size`` rows from row ``done`` up to ``total``."""
    if size <= 0:
        raise ValueError("chunk size must be positive")
    if not 0 <= done <= total:
        raise ValueError(f"rows done ({done}) must be within 0..{total}")
    for start in range(done, total, size):
        yield start, min(start + size, total)


_RIDES_PAGE = """
select ride_id, created_at, pickup_datetime, pickup_location_id, dropoff_location_id,
       trip_distance, passenger_count, payment_type
from rides
where created_at > $1 and created_at <= $2 and (created_at, ride_id) > ($3, $4)
order by created_at, ride_id
limit $5
"""
_NIL_UUID: Final = uuid.UUID(int=0)


class RidesSource:
    """The backend's rides in a run's window; see the module docstring."""

    kind: Final = RIDES
    ref: Final = RIDES
    fingerprint: Final = RIDES

    def __init__(self, pool: asyncpg.Pool, *, timeout_s: float) -> None:
        self.pool = pool
        self.timeout_s = timeout_s

    async def chunks(
        self,
        *,
        done: int,
        size: int,
        window_start: datetime,
        cutoff: datetime,
        cursor: RideCursor | None,
    ) -> AsyncIterator[Chunk]:
        """Pages of ``size`` rides after ``cursor`` (the run's checkpoint) within the window."""
        position = done
        after = cursor or RideCursor(window_start, _NIL_UUID)
        while True:
            async with database_errors("score_read_rides"):
                rows = await self.pool.fetch(
                    _RIDES_PAGE,
                    window_start,
                    cutoff,
                    after.created_at,
                    after.ride_id,
                    size,
                    timeout=self.timeout_s,
                )
            if not rows:
                return
            after = RideCursor(rows[-1]["created_at"], rows[-1]["ride_id"])
            yield Chunk(
                start=position,
                row_keys=[str(row["ride_id"]) for row in rows],
                features=_ride_rows_features(rows),
                cursor=after,
            )
            position += len(rows)


def _ride_rows_features(rows: list[asyncpg.Record]) -> FloatMatrix:
    def column(name: str) -> list[object]:
        return [row[name] for row in rows]

    return ride_features(
        pickup_datetime=np.array(column("pickup_datetime"), dtype="datetime64[us]"),
        pickup_location_id=np.array(column("pickup_location_id")),
        dropoff_location_id=np.array(column("dropoff_location_id")),
        trip_distance=np.array(column("trip_distance"), dtype=np.float64),
        passenger_count=np.array(column("passenger_count"), dtype=np.float64),
        payment_type=np.array(column("payment_type"), dtype=np.float64),
    )
