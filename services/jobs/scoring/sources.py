"""Where the rows of a scoring run come from, cut into chunks in a fixed order.

- ``FileSource``: NYC TLC trips from a parquet/CSV file or folder (``models.ride_duration.data
  .load_trips``), fingerprinted by content (sha256); row key = row number (0-based, file order);
  features from the TLC columns (``trip_features``, the training code path).
- ``RidesSource``: the backend's ``rides`` table, ``created_at`` in the run's window
  (``window_start`` < created_at <= ``cutoff``), ordered by (created_at, ride_id) and read page by
  page from the run's cursor; row key = ride_id; features as the streaming workers compute them
  (``ride_features`` of the request fields).

Both yield :class:`Chunk` objects starting after what the run has already committed, so a
resumed run continues exactly there.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

import asyncpg
import numpy as np
import numpy.typing as npt
import pandas as pd

from models.ride_duration.data import load_trips
from models.ride_duration.train import trip_features
from services.common.db import database_errors
from services.common.errors import InvalidInput
from services.common.taxi.features import ride_features

FloatMatrix = npt.NDArray[np.float32]
RIDES: Final = "rides"
FILE: Final = "file"
_HASH_BLOCK: Final = 1 << 20


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


def fingerprint_files(path: Path) -> str:
    """sha256 over the names and contents of the trip file(s) at ``path`` (blocking)."""
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode() + b"\0")
        with file.open("rb") as handle:
            while block := handle.read(_HASH_BLOCK):
                digest.update(block)
    return digest.hexdigest()


class FileSource:
    """TLC trips from a file or folder; see the module docstring."""

    kind: Final = FILE

    def __init__(self, path: Path, trips: pd.DataFrame, fingerprint: str) -> None:
        self.ref = str(path)
        self.trips = trips
        self.fingerprint = fingerprint

    @classmethod
    def open(cls, path: Path) -> FileSource:
        """Read and check the file (blocking: run it in a thread). Bad input -> InvalidInput."""
        if not path.exists():
            raise InvalidInput(f"{path}: no such file or folder")
        try:
            fingerprint = fingerprint_files(path)
            trips = load_trips(path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InvalidInput(f"{path}: not a readable TLC trip file: {exc}") from exc
        if trips.empty:
            raise InvalidInput(f"{path}: no trips in the file")
        missing = trips["tpep_pickup_datetime"].isna().to_numpy()
        if missing.any():
            first = int(np.flatnonzero(missing)[0])
            raise InvalidInput(
                f"{path}: {int(missing.sum())} trips have no tpep_pickup_datetime "
                f"(first: row {first})"
            )
        return cls(path, trips.reset_index(drop=True), fingerprint)

    @property
    def rows(self) -> int:
        return len(self.trips)

    async def chunks(self, *, done: int, size: int) -> AsyncIterator[Chunk]:
        """Chunks from row ``done`` to the end of the file."""
        for start, stop in chunk_bounds(self.rows, done, size):
            part = self.trips.iloc[start:stop]
            keys = [str(i) for i in range(start, stop)]
            yield Chunk(start=start, row_keys=keys, features=trip_features(part))


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
