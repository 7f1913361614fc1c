"""Suite `scoring`: the batch-scoring job through Triton vs the same job with in-process ONNX
Runtime, on the same rows (goal: Triton >= 0.8x in-process rows/s).

Both runs are the real job (``services.jobs.scoring.runner.run_score``: chunks, every taxi model,
one Postgres transaction per chunk); only the scorer differs. The section also gives the scoring
step alone (features -> three models, no database) for both, and checks both runs wrote the
same values.
"""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from pathlib import Path

import asyncpg
import numpy as np
import onnxruntime as ort

from bench.suite import BenchContext, Suite, when_and_where
from models.ride_duration.data import generate_trips
from models.ride_duration.train import INPUT_NAME, onnx_session
from services.common.triton import TritonClient
from services.jobs.scoring.file_source import FileSource
from services.jobs.scoring.runner import (
    MODEL_OUTPUTS,
    Scored,
    Scorer,
    ScoreSummary,
    TritonScorer,
    run_score,
)
from services.jobs.scoring.settings import ScoreSettings
from services.jobs.scoring.sources import FloatMatrix

ROWS = 100_000
"""Trips scored per run (each by three models)."""
GOAL = 0.8


class OnnxScorer:
    """The anchor: the same models in process (ONNX Runtime, one thread per session, as Triton's
    instances run them), off the event loop so Postgres writes overlap as with Triton."""

    def __init__(self, sessions: dict[str, ort.InferenceSession]) -> None:
        self.sessions = sessions

    def _run(self, model: str, features: FloatMatrix) -> Scored:
        (values,) = self.sessions[model].run([MODEL_OUTPUTS[model]], {INPUT_NAME: features})
        return Scored(values.reshape(-1).astype(np.float32), ["local"] * len(features))

    async def score(self, model: str, features: FloatMatrix) -> Scored:
        return await asyncio.to_thread(self._run, model, features)


async def _job(settings: ScoreSettings, path: Path, scorer: Scorer | None) -> ScoreSummary:
    return await run_score(
        settings=settings,
        file=path,
        run_id=f"bench-{uuid.uuid4().hex[:8]}",
        scorer=scorer,
        out=io.StringIO(),
        say=lambda _: None,
    )


async def _max_difference(dsn: str, run_a: str, run_b: str) -> float:
    """max |a - b| over the values both runs wrote (same rows, same models)."""
    conn = await asyncpg.connect(dsn)
    try:
        query = "select value from score_results where run_id = $1 order by model_name, row_key"
        a = np.array([r["value"] for r in await conn.fetch(query, run_a, timeout=120)])
        b = np.array([r["value"] for r in await conn.fetch(query, run_b, timeout=120)])
    finally:
        await conn.close()
    if a.shape != b.shape:
        raise RuntimeError(f"the two runs wrote {a.shape[0]} and {b.shape[0]} values")
    return float(np.max(np.abs(a - b))) if a.size else 0.0


async def _step_rows_per_s(scorer: Scorer, source: FileSource, chunk_rows: int) -> float:
    """The scoring step alone: every chunk through the three models, no database."""
    chunks = [chunk async for chunk in source.chunks(done=0, size=chunk_rows)]
    started = time.perf_counter()
    for chunk in chunks:
        await asyncio.gather(*(scorer.score(m, chunk.features) for m in MODEL_OUTPUTS))
    return source.rows / (time.perf_counter() - started)


async def run(ctx: BenchContext) -> str:
    """Both jobs on the same file, the scoring step alone, the ratio."""
    settings = ctx.settings
    folder = settings.home / "bench-scoring"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "trips.parquet"
    await asyncio.to_thread(lambda: generate_trips(ROWS, seed=2024).to_parquet(path))
    job = ScoreSettings(
        database_url=settings.database_url, triton_grpc_url=settings.triton_grpc_url
    )
    sessions = {
        model: onnx_session((ctx.builds[model].path / "model.onnx").read_bytes())
        for model in MODEL_OUTPUTS
    }
    local = OnnxScorer(sessions)
    await _job(job, path, local)  # warm-up: migrations, caches
    triton = await _job(job, path, None)
    onnx = await _job(job, path, local)
    max_diff = await _max_difference(settings.database_url, triton.run_id, onnx.run_id)
    source = await asyncio.to_thread(FileSource.open, path)
    client = TritonClient(job.triton_grpc_url, timeout_s=job.triton_timeout_s)
    try:
        remote = TritonScorer(client, batch_rows=job.triton_batch_rows, concurrency=job.concurrency)
        step_triton = await _step_rows_per_s(remote, source, job.chunk_rows)
    finally:
        await client.close()
    step_onnx = await _step_rows_per_s(local, source, job.chunk_rows)
    ratio = triton.rows_per_s / onnx.rows_per_s
    print(
        f"  job: Triton {triton.rows_per_s:,.0f} rows/s, in-process {onnx.rows_per_s:,.0f} rows/s"
        f" -> {ratio:.2f}x; scoring step: {step_triton:,.0f} vs {step_onnx:,.0f} rows/s",
        flush=True,
    )
    models = ", ".join(f"{m} v{ctx.builds[m].version}" for m in MODEL_OUTPUTS)
    return "\n\n".join(
        [
            "## Batch scoring: the job through Triton vs in-process ONNX Runtime",
            "\n".join(
                [
                    when_and_where(),
                    f"- {ROWS:,} synthetic TLC trips (parquet), each scored by {models}; "
                    f"chunks of {job.chunk_rows:,} rows, one Postgres transaction per chunk "
                    f"(COPY of {len(MODEL_OUTPUTS)} results per row + checkpoint)",
                    f"- Triton: gRPC requests of <= {job.triton_batch_rows} rows, "
                    f"{job.concurrency} in flight; in-process: one ONNX Runtime session per "
                    "model (1 thread), run in worker threads; the next chunk is scored while "
                    "one is written in both",
                    f"- both runs wrote the same values (max difference {max_diff:.2g})",
                ]
            ),
            "| scorer | job rows/s | job seconds | scoring step alone rows/s |\n"
            "|---|---:|---:|---:|\n"
            f"| Triton gRPC | {triton.rows_per_s:,.0f} | {triton.seconds:.2f} "
            f"| {step_triton:,.0f} |\n"
            f"| in-process ONNX Runtime | {onnx.rows_per_s:,.0f} | {onnx.seconds:.2f} "
            f"| {step_onnx:,.0f} |",
            f"Ratio Triton / in-process: job **{ratio:.2f}x**, scoring step alone "
            f"{step_triton / step_onnx:.2f}x (goal: job >= {GOAL}x).",
        ]
    )


SUITE = Suite(name="scoring", components=("postgres", "triton"), run=run)
