"""The classifier app factory: ``uvicorn --factory services.classifier.app:create_app``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from services.classifier import api
from services.classifier.predictor import CategoryPredictor
from services.classifier.settings import ClassifierSettings
from services.common.app import create_service_app
from services.common.db import check_database, create_pool
from services.common.health import register_readiness
from services.common.migrations import apply_migrations
from services.common.triton import TritonClient

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: ClassifierSettings | None = None) -> FastAPI:
    settings = settings or ClassifierSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        triton = TritonClient.from_settings(settings)
        predictor = CategoryPredictor(triton, model=settings.triton_model)
        app.state.triton = triton
        app.state.predictor = predictor
        register_readiness(app, "triton", predictor.ready)
        try:
            pool = await create_pool(settings)
        except BaseException:
            await triton.close()
            raise
        try:
            await apply_migrations(pool, service="classifier", directory=MIGRATIONS)
            app.state.pool = pool
            # Predictions and feedback must not be lost: Postgres is critical here.
            register_readiness(app, "postgres", lambda: check_database(pool))
            await api.refresh_recent_versions(pool, settings=settings)
            yield
        finally:
            await pool.close()
            await triton.close()

    return create_service_app(
        settings=settings,
        title="classifier",
        version="1.0.0",
        description="Product category from title, description and image, served by Triton; "
        "labelled feedback feeds live quality gauges.",
        routers=[api.router],
        lifespan=lifespan,
    )
