"""Scoring source: NYC TLC trips from a parquet/CSV file or folder (pandas: the model-builder
image, or `make up`'s venv; the rides source does not need it).

Read with ``models.ride_duration.data.load_trips``, fingerprinted by content (sha256); row key =
row number (0-based, file order); features from the TLC columns (``trip_features``, the training
code path). A file that cannot be read as TLC trips is :class:`InvalidInput`.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from models.ride_duration.data import load_trips
from models.ride_duration.train import trip_features
from services.common.errors import InvalidInput
from services.jobs.scoring.sources import FILE, Chunk, chunk_bounds

_HASH_BLOCK: Final = 1 << 20


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
