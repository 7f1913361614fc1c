"""The classifier retraining job: feedback from Postgres -> gated candidate -> Triton version ->
zero-downtime load -> model registry row. ``modelfleet train classifier`` runs it.

    report = await run_retrain(settings=RetrainSettings(), repo_dir=home / "model-repository")

Steps: read the labelled predictions (``classifier_feedback`` joined with
``classifier_predictions``, newest ``max_feedback``); train and gate a candidate
(:func:`models.classifier.retrain.retrain_classifier`, in a worker thread); record the run in
``classifier_model_versions``; when accepted, ask Triton to load the model (explicit model
control: the new version loads beside the old one, then replaces it, so requests never fail);
mark it serving and the previous one retired. When Triton refuses the new version, its folder is
removed again (so a restart does not pick it up) and the run is marked failed.

With several Triton pods on one shared repository (a ReadWriteMany claim), the new version is
loaded on every pod: ``CLASSIFIER_RETRAIN_TRITON_PODS`` names a headless Service (host:port)
whose every address is a Triton pod (the chart sets it); without it, ``TRITON_GRPC_URL`` alone.
When one pod refuses, the folder is removed and the pods that had loaded it load again, so
every pod serves the previous version.

Started by the classifier (``POST /v1/alerts``, ``POST /v1/retraining``), the job gets
``CLASSIFIER_RETRAIN_RUN_ID`` and reports into that run's ``classifier_retraining_runs`` row
(the classifier's table): running at start, then succeeded / rejected / failed with the versions
and metrics; the registry row carries the same run id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pandas as pd
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from models.classifier.retrain import (
    FEEDBACK_COLUMNS,
    MAX_ECE_INCREASE,
    RetrainOutcome,
    classifier_spec,
    retrain_classifier,
)
from models.repository import write_configs
from services.common.db import create_pool, database_errors
from services.common.errors import DependencyFailed, ModelfleetError
from services.common.migrations import apply_migrations
from services.common.settings import ServiceSettings
from services.common.triton import TritonClient

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


class RetrainSettings(ServiceSettings):
    """Settings of the retraining job (env prefix ``CLASSIFIER_RETRAIN_``)."""

    model_config = SettingsConfigDict(env_prefix="CLASSIFIER_RETRAIN_")

    service_name: str = "classifier-retrain"
    triton_model: str = "classifier"
    seed: int = 43
    rows: int = Field(default=5000, ge=100)
    max_feedback: int = Field(default=50_000, ge=0)
    min_gain: float = Field(default=0.0, ge=-1.0, le=1.0)
    max_ece_increase: float = Field(
        default=MAX_ECE_INCREASE,
        ge=0.0,
        le=1.0,
        description="The gate refuses a candidate whose ECE exceeds the serving version's by more.",
    )
    load_timeout_s: float = Field(default=180.0, gt=0)
    triton_pods: str = Field(
        default="",
        description="host:port of a headless Service whose every address is a Triton pod on the "
        "shared repository: the new version is loaded on each ('' = TRITON_GRPC_URL only).",
    )
    run_id: uuid.UUID | None = Field(
        default=None, description="The classifier's retraining run this job carries, if any."
    )


@dataclass(frozen=True)
class RetrainReport:
    run_id: uuid.UUID
    status: str
    version: int | None
    outcome: RetrainOutcome


async def _feedback(pool: asyncpg.Pool, *, limit: int, timeout_s: float) -> pd.DataFrame:
    async with database_errors("read_feedback"):
        exists = await pool.fetchval(
            "select to_regclass('classifier_feedback') is not null", timeout=timeout_s
        )
        if not exists or limit == 0:
            return pd.DataFrame(columns=list(FEEDBACK_COLUMNS))
        rows = await pool.fetch(
            "select f.prediction_id, p.title, p.description, f.true_category,"
            " f.updated_at as labelled_at from classifier_feedback f"
            " join classifier_predictions p using (prediction_id)"
            " order by f.updated_at desc limit $1",
            limit,
            timeout=timeout_s * 10,
        )
    return pd.DataFrame([dict(r) for r in rows], columns=list(FEEDBACK_COLUMNS))


def _metrics(outcome: RetrainOutcome) -> dict[str, Any]:
    """The candidate card's metrics (macro-F1, accuracy, baselines, the serving version's
    macro-F1 on the same test set) without the per-class report."""
    return {k: v for k, v in outcome.card["metrics"].items() if k != "per_class"}


async def _record(
    pool: asyncpg.Pool,
    *,
    run_id: uuid.UUID,
    status: str,
    model: str,
    outcome: RetrainOutcome,
    timeout_s: float,
) -> None:
    version = str(outcome.result.version) if outcome.result is not None else None
    async with database_errors("record_model_version"):
        await pool.execute(
            "insert into classifier_model_versions (run_id, model_name, model_version, status,"
            " candidate_macro_f1, serving_version, serving_macro_f1, metrics, data_window)"
            " values ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::jsonb)",
            run_id,
            model,
            version,
            status,
            outcome.candidate_macro_f1,
            None if outcome.serving_version is None else str(outcome.serving_version),
            outcome.serving_macro_f1,
            json.dumps(_metrics(outcome)),
            json.dumps(outcome.data_window),
            timeout=timeout_s,
        )


async def _set_status(
    pool: asyncpg.Pool, *, run_id: uuid.UUID, model: str, status: str, timeout_s: float
) -> None:
    async with database_errors("update_model_version"), pool.acquire() as conn, conn.transaction():
        if status == "serving":
            await conn.execute(
                "update classifier_model_versions set status = 'retired', updated_at = now()"
                " where model_name = $1 and status = 'serving' and run_id <> $2",
                model,
                run_id,
                timeout=timeout_s,
            )
        await conn.execute(
            "update classifier_model_versions set status = $2, updated_at = now()"
            " where run_id = $1",
            run_id,
            status,
            timeout=timeout_s,
        )


#: Registry status of a finished job -> status of its retraining run.
RUN_STATUS = {"serving": "succeeded", "rejected": "rejected", "failed": "failed"}


async def _update_run(
    pool: asyncpg.Pool, run_id: uuid.UUID, *, timeout_s: float, **fields: object
) -> None:
    """Update the classifier's run row (status, versions, metrics, times)."""
    names = list(fields)
    assignments = ", ".join(f"{name} = ${i + 2}" for i, name in enumerate(names))
    async with database_errors("update_retraining_run"):
        await pool.execute(
            f"update classifier_retraining_runs set {assignments}, updated_at = now()"
            " where run_id = $1",
            run_id,
            *fields.values(),
            timeout=timeout_s,
        )


async def run_retrain(
    *,
    settings: RetrainSettings,
    repo_dir: Path,
    catalogue_path: Path | None = None,
    say: Callable[[str], None] = log.info,
) -> RetrainReport:
    """One retraining run (see the module docstring); returns what it did."""
    pool = await create_pool(settings)
    triton = TritonClient.from_settings(settings)
    run_id, timeout = settings.run_id, settings.database_timeout_s
    try:
        if run_id is not None:
            await _update_run(
                pool, run_id, timeout_s=timeout, status="running", started_at=datetime.now(UTC)
            )
        try:
            report = await _retrain(
                pool, triton, settings=settings, repo_dir=repo_dir, catalogue_path=catalogue_path,
                say=say,
            )  # fmt: skip
        except BaseException as exc:
            if run_id is not None:
                with contextlib.suppress(ModelfleetError):
                    await _update_run(
                        pool, run_id, timeout_s=timeout, status="failed",
                        finished_at=datetime.now(UTC), error=f"{type(exc).__name__}: {exc}"[:2000],
                    )  # fmt: skip
            raise
        if run_id is not None:
            outcome = report.outcome
            await _update_run(
                pool,
                run_id,
                timeout_s=timeout,
                status=RUN_STATUS[report.status],
                finished_at=datetime.now(UTC),
                serving_version=None
                if outcome.serving_version is None
                else str(outcome.serving_version),
                new_version=None if report.version is None else str(report.version),
                metrics=json.dumps(_metrics(outcome)),
            )
        return report
    finally:
        await triton.close()
        await pool.close()


async def triton_pod_urls(settings: RetrainSettings) -> list[str]:
    """The gRPC address of every Triton pod to load the new version on."""
    if not settings.triton_pods:
        return [settings.triton_grpc_url]
    host, _, port = settings.triton_pods.rpartition(":")
    try:
        infos = await asyncio.wait_for(
            asyncio.get_running_loop().getaddrinfo(host, int(port), type=socket.SOCK_STREAM),
            timeout=settings.triton_timeout_s,
        )
    except (OSError, TimeoutError, ValueError) as exc:
        raise DependencyFailed(f"Triton pods {settings.triton_pods}: {exc}") from exc
    return sorted(
        {
            f"[{info[4][0]}]:{port}" if info[0] == socket.AF_INET6 else f"{info[4][0]}:{port}"
            for info in infos
        }
    )


Loader = Callable[[str], Awaitable[None]]


async def load_on_every_pod(urls: Sequence[str], load: Loader) -> dict[str, ModelfleetError]:
    """``load(url)`` on every pod at once; the pods that refused, with why (empty: all loaded)."""
    results = await asyncio.gather(*(load(url) for url in urls), return_exceptions=True)
    refused: dict[str, ModelfleetError] = {}
    for url, result in zip(urls, results, strict=True):
        if isinstance(result, ModelfleetError):
            refused[url] = result
        elif isinstance(result, BaseException):
            raise result
    return refused


async def _retrain(
    pool: asyncpg.Pool,
    triton: TritonClient,
    *,
    settings: RetrainSettings,
    repo_dir: Path,
    catalogue_path: Path | None,
    say: Callable[[str], None],
) -> RetrainReport:
    await apply_migrations(pool, service="classifier_retrain", directory=MIGRATIONS)
    feedback = await _feedback(
        pool, limit=settings.max_feedback, timeout_s=settings.database_timeout_s
    )
    outcome = await asyncio.to_thread(
        retrain_classifier,
        repo_dir,
        seed=settings.seed,
        rows=settings.rows,
        catalogue_path=catalogue_path,
        feedback=feedback,
        min_gain=settings.min_gain,
        max_ece_increase=settings.max_ece_increase,
        log=say,
    )
    run_id = settings.run_id or uuid.uuid4()
    model = settings.triton_model
    timeout = settings.database_timeout_s
    if outcome.result is None:
        await _record(
            pool,
            run_id=run_id,
            status="rejected",
            model=model,
            outcome=outcome,
            timeout_s=timeout,
        )
        return RetrainReport(run_id, "rejected", None, outcome)
    await _record(
        pool, run_id=run_id, status="loading", model=model, outcome=outcome, timeout_s=timeout
    )
    version = outcome.result.version
    urls = await triton_pod_urls(settings)
    say(f"classifier: loading version {version} into Triton ({len(urls)} pod(s))")

    async def load(url: str) -> None:
        if url == triton.url:
            await triton.load_model(model, timeout_s=settings.load_timeout_s)
            return
        client = TritonClient(url, timeout_s=settings.triton_timeout_s, retries=0)
        try:
            await client.load_model(model, timeout_s=settings.load_timeout_s)
        finally:
            await client.close()

    refused = await load_on_every_pod(urls, load)
    if refused:
        url, exc = next(iter(refused.items()))
        say(f"classifier: Triton {url} refused version {version}: {exc.detail}")
        shutil.rmtree(outcome.result.path, ignore_errors=True)
        write_configs(outcome.result.path.parent, classifier_spec())
        # The pods that loaded it serve the previous version again (its folder is gone).
        again = await load_on_every_pod([u for u in urls if u not in refused], load)
        for other, error in again.items():
            say(f"classifier: Triton {other} could not go back to the previous version: {error}")
        await _set_status(pool, run_id=run_id, model=model, status="failed", timeout_s=timeout)
        return RetrainReport(run_id, "failed", version, outcome)
    await _set_status(pool, run_id=run_id, model=model, status="serving", timeout_s=timeout)
    say(f"classifier: version {version} serves")
    return RetrainReport(run_id, "serving", version, outcome)
