"""The batch-scoring job: a source's chunks -> every model through a scorer -> one transaction
per chunk (``store.write_chunk``) -> a summary.

    summary = await run_score(settings=ScoreSettings(), file=Path("yellow_2024-01.parquet"))
    summary.rows_scored, summary.rows_per_s

Chunk N+1 is read and scored while chunk N is written, so Triton and Postgres work at the same
time. Scoring goes through a :class:`Scorer`: the job uses :class:`TritonScorer` (gRPC, requests
of at most ``triton_batch_rows`` rows, ``concurrency`` in flight); the benchmark plugs in an
in-process ONNX Runtime scorer to compare both on the same rows.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

import asyncpg
import numpy as np
import numpy.typing as npt

from services.common.db import create_pool
from services.common.errors import InvalidInput
from services.common.migrations import apply_migrations
from services.common.triton import TritonClient
from services.jobs.scoring import store
from services.jobs.scoring.progress import Progress
from services.jobs.scoring.settings import ScoreSettings
from services.jobs.scoring.sources import RIDES, Chunk, FloatMatrix, RidesSource

if TYPE_CHECKING:
    from services.jobs.scoring.file_source import FileSource

log = logging.getLogger(__name__)

MODEL_OUTPUTS: dict[str, str] = {
    "ride_duration": "duration_minutes",
    "tip_amount": "tip_amount",
    "total_amount": "total_amount",
}
"""Models scoring can run (the taxi models of ``models.repository.MODELS``, input ``features``)
and their output tensors; a unit test keeps it equal to the registry (serving code does not
import training code)."""


@dataclass(frozen=True, slots=True)
class Scored:
    """One model's predictions for a chunk and the version that made each."""

    values: npt.NDArray[np.float32]
    versions: list[str]


class Scorer(Protocol):
    """Predicts one model's output for a feature matrix (one value per row)."""

    async def score(self, model: str, features: FloatMatrix) -> Scored: ...


class TritonScorer:
    """Scores through Triton over gRPC in requests of ``batch_rows``, ``concurrency`` at once."""

    def __init__(self, client: TritonClient, *, batch_rows: int, concurrency: int) -> None:
        self.client = client
        self.batch_rows = batch_rows
        self._slots = asyncio.Semaphore(concurrency)

    async def _one(self, model: str, x: FloatMatrix) -> tuple[npt.NDArray[np.float32], str]:
        output = MODEL_OUTPUTS[model]
        async with self._slots:
            result = await self.client.infer(model, {"features": x}, outputs=[output])
        return result.outputs[output].reshape(-1).astype(np.float32), result.model_version

    async def score(self, model: str, features: FloatMatrix) -> Scored:
        parts = await asyncio.gather(
            *(
                self._one(model, features[start : start + self.batch_rows])
                for start in range(0, len(features), self.batch_rows)
            )
        )
        versions: list[str] = []
        for values, version in parts:
            versions.extend([version] * len(values))
        return Scored(np.concatenate([values for values, _ in parts]), versions)


def chunk_records(
    run_id: str, chunk: Chunk, scored: dict[str, Scored]
) -> list[tuple[str, str, str, str, float]]:
    """The ``score_results`` rows of a chunk: one per (row, model)."""
    records: list[tuple[str, str, str, str, float]] = []
    for model, result in scored.items():
        if len(result.values) != len(chunk.row_keys):
            raise RuntimeError(f"{model}: {len(result.values)} values for {len(chunk.row_keys)}")
        values = result.values.tolist()
        records.extend(
            zip(
                [run_id] * len(values),
                chunk.row_keys,
                [model] * len(values),
                result.versions,
                values,
                strict=True,
            )
        )
    return records


@dataclass
class ScoreSummary:
    """What a run did in this process."""

    run_id: str
    source: str
    status: str
    rows_total: int
    rows_scored: int
    rows_resumed: int
    chunks: int
    seconds: float
    attempts: int
    already_complete: bool = False
    versions: dict[str, list[str]] = field(default_factory=dict)

    @property
    def rows_per_s(self) -> float:
        return self.rows_scored / self.seconds if self.seconds > 0 else 0.0

    def lines(self) -> list[str]:
        """The summary as printed by ``modelfleet score``."""
        versions = ", ".join(f"{m} v{'/'.join(v)}" for m, v in self.versions.items()) or "-"
        if self.already_complete:
            resumed = "already complete: nothing scored"
        elif self.rows_resumed:
            resumed = f"resumed after {self.rows_resumed:,} rows (attempt {self.attempts})"
        else:
            resumed = "fresh run"
        return [
            f"run {self.run_id}: {self.status} ({self.source}; {resumed})",
            f"rows: {self.rows_scored:,} scored now, {self.rows_total:,} in the run; "
            f"chunks: {self.chunks:,}; {self.seconds:.2f} s, {self.rows_per_s:,.0f} rows/s",
            f"models: {versions}",
        ]


def check_models(models: tuple[str, ...]) -> None:
    unknown = [m for m in models if m not in MODEL_OUTPUTS]
    if unknown:
        raise InvalidInput(
            f"cannot score with {', '.join(unknown)}: known models are {', '.join(MODEL_OUTPUTS)}"
        )


async def _score_chunk(scorer: Scorer, chunk: Chunk, models: tuple[str, ...]) -> dict[str, Scored]:
    results = await asyncio.gather(*(scorer.score(model, chunk.features) for model in models))
    return dict(zip(models, results, strict=True))


async def _pipeline(
    chunks: AsyncIterator[Chunk], scorer: Scorer, models: tuple[str, ...]
) -> AsyncIterator[tuple[Chunk, dict[str, Scored], bool]]:
    """(chunk, its scores, is it the last) with the next chunk scored while one is written."""
    pending: tuple[Chunk, asyncio.Task[dict[str, Scored]]] | None = None
    try:
        async for chunk in chunks:
            task = asyncio.create_task(_score_chunk(scorer, chunk, models))
            if pending is not None:
                yield pending[0], await pending[1], False
            pending = (chunk, task)
        if pending is not None:
            last, pending = pending, None
            yield last[0], await last[1], True
    finally:
        if pending is not None:
            pending[1].cancel()


async def run_score(
    *,
    settings: ScoreSettings,
    file: Path | None = None,
    run_id: str | None = None,
    scorer: Scorer | None = None,
    out: TextIO | None = None,
    say: Callable[[str], None] = log.info,
) -> ScoreSummary:
    """Score ``file`` (TLC trips) or, without one, the backend's new rides; see the module doc."""
    models = settings.model_names
    check_models(models)
    file_source = None
    if file is not None:
        from services.jobs.scoring.file_source import FileSource  # pandas: only for files

        file_source = await asyncio.to_thread(FileSource.open, file)
    pool = await create_pool(settings)
    triton: TritonClient | None = None
    try:
        await apply_migrations(pool, service=store.MIGRATIONS_SERVICE, directory=store.MIGRATIONS)
        if scorer is None:
            triton = TritonClient.from_settings(settings)
            scorer = TritonScorer(
                triton, batch_rows=settings.triton_batch_rows, concurrency=settings.concurrency
            )
        return await _run(
            pool,
            settings=settings,
            file_source=file_source,
            run_id=run_id,
            scorer=scorer,
            out=out if out is not None else sys.stdout,
            say=say,
        )
    finally:
        if triton is not None:
            await triton.close()
        await pool.close()


async def _run(
    pool: asyncpg.Pool,
    *,
    settings: ScoreSettings,
    file_source: FileSource | None,
    run_id: str | None,
    scorer: Scorer,
    out: TextIO,
    say: Callable[[str], None],
) -> ScoreSummary:
    timeout = settings.database_timeout_s
    models = settings.model_names
    rides = RidesSource(pool, timeout_s=timeout)
    source: Any = file_source if file_source is not None else rides
    identity = store.SourceIdentity(
        source=source.kind,
        ref=source.ref,
        fingerprint=source.fingerprint,
        models=models,
        rows=file_source.rows if file_source is not None else None,
    )
    run, existed = await store.begin_run(
        pool, identity, run_id=run_id, settle_s=settings.rides_settle_s, timeout_s=timeout
    )
    summary = ScoreSummary(
        run_id=run.run_id,
        source=run.source if run.source == RIDES else f"{run.source} {run.source_ref}",
        status=run.status,
        rows_total=run.rows_total,
        rows_scored=0,
        rows_resumed=run.rows_done if existed else 0,
        chunks=0,
        seconds=0.0,
        attempts=run.attempts,
    )
    if run.status == "done":
        summary.already_complete, summary.rows_resumed = True, 0
        return summary
    if existed:
        say(f"resuming run {run.run_id} after {run.rows_done:,} of {run.rows_total:,} rows")
    chunks: AsyncIterator[Chunk]
    if file_source is not None:
        chunks = file_source.chunks(done=run.rows_done, size=settings.chunk_rows)
    else:
        assert run.window_start is not None and run.cutoff is not None
        chunks = rides.chunks(
            done=run.rows_done,
            size=settings.chunk_rows,
            window_start=run.window_start,
            cutoff=run.cutoff,
            cursor=run.cursor,
        )
    versions: dict[str, set[str]] = {model: set() for model in models}
    progress = Progress(total=run.rows_total, done=run.rows_done, out=out)
    started = time.perf_counter()
    try:
        async for chunk, scored, last in _pipeline(chunks, scorer, models):
            for model, result in scored.items():
                versions[model].update(result.versions)
            run = await store.write_chunk(
                pool,
                run,
                rows=len(chunk.row_keys),
                records=chunk_records(run.run_id, chunk, scored),
                cursor=chunk.cursor,
                last=last,
                timeout_s=timeout,
            )
            summary.rows_scored += len(chunk.row_keys)
            summary.chunks += 1
            progress.advance(len(chunk.row_keys))
        if run.status != "done":
            run = await store.finish_run(pool, run, timeout_s=timeout)
    finally:
        progress.close()
        summary.seconds = time.perf_counter() - started
        summary.versions = {m: sorted(v) for m, v in versions.items() if v}
    summary.status = run.status
    return summary


__all__ = [
    "MODEL_OUTPUTS",
    "ScoreSummary",
    "Scored",
    "Scorer",
    "TritonScorer",
    "chunk_records",
    "run_score",
]
