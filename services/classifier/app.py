"""The classifier app factory: ``uvicorn --factory services.classifier.app:create_app``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from services.classifier import api, oip, retraining, runs
from services.classifier.predictor import CategoryPredictor
from services.classifier.settings import ClassifierSettings
from services.classifier.state import ClassifierState
from services.classifier.triggers import make_trigger
from services.common.app import create_service_app
from services.common.buffered_writer import BufferedCopyWriter
from services.common.db import check_database, create_pool
from services.common.health import register_readiness
from services.common.migrations import apply_migrations
from services.common.triton import TritonClient

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: ClassifierSettings | None = None) -> FastAPI:
    settings = settings or ClassifierSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[ClassifierState]:
        triton = TritonClient.from_settings(settings)
        predictor = CategoryPredictor(
            triton, model=settings.triton_model, coalesce=settings.coalesce_requests
        )
        register_readiness(app, "triton", predictor.ready)
        try:
            pool = await create_pool(settings)
        except BaseException:
            await triton.close()
            raise
        try:
            await apply_migrations(pool, service="classifier", directory=MIGRATIONS)
            # Predictions and feedback must not be lost: Postgres is critical here.
            register_readiness(app, "postgres", lambda: check_database(pool))
            await api.refresh_recent_versions(pool, settings=settings)

            async def on_exit(run_id: str, code: int) -> None:
                await runs.fail_run(
                    pool,
                    run_id,
                    f"the retraining process exited with code {code} without finishing the run",
                    timeout_s=settings.database_timeout_s,
                )

            trigger = make_trigger(settings, on_exit=on_exit)
            predictions = BufferedCopyWriter(
                pool,
                table="classifier_predictions",
                columns=api.PREDICTION_COLUMNS,
                flush_interval_s=settings.prediction_flush_interval_s,
                timeout_s=settings.database_timeout_s,
            )
            predictions.start()
            try:
                yield ClassifierState(
                    settings=settings,
                    pool=pool,
                    triton=triton,
                    predictor=predictor,
                    predictions=predictions,
                    retraining_trigger=trigger,
                )
            finally:
                await predictions.close()
                await trigger.close()
        finally:
            await pool.close()
            await triton.close()

    return create_service_app(
        settings=settings,
        title="classifier",
        version="1.0.0",
        description="Product category from title, description and image, served by Triton; "
        "labelled feedback feeds live quality gauges.",
        routers=[api.router, retraining.router, oip.router],
        lifespan=lifespan,
    )
