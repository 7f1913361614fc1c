"""The ride-duration app factory: ``uvicorn --factory services.ride_duration.app:create_app``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from services.common.app import create_service_app
from services.common.buffered_writer import BufferedCopyWriter
from services.common.db import check_database, create_pool
from services.common.health import register_readiness
from services.common.migrations import apply_migrations
from services.common.triton import TritonClient
from services.ride_duration import api
from services.ride_duration.predictor import DurationPredictor
from services.ride_duration.settings import RideDurationSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: RideDurationSettings | None = None) -> FastAPI:
    settings = settings or RideDurationSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        triton = TritonClient.from_settings(settings)
        predictor = DurationPredictor(
            triton,
            model=settings.triton_model,
            coalesce=settings.coalesce_requests,
            coalesce_max_rows=settings.coalesce_max_rows,
            coalesce_max_in_flight=settings.coalesce_max_in_flight,
        )
        app.state.triton = triton
        app.state.predictor = predictor
        app.state.prediction_log = None
        register_readiness(app, "triton", predictor.ready)
        pool = None
        if settings.prediction_log:
            pool = await create_pool(settings)
            await apply_migrations(pool, service="ride_duration", directory=MIGRATIONS)
            writer = BufferedCopyWriter(
                pool,
                table="ride_duration_predictions",
                columns=api.PREDICTION_LOG_COLUMNS,
                flush_interval_s=settings.prediction_log_flush_interval_s,
                max_buffered=settings.prediction_log_max_buffered,
            )
            writer.start()
            app.state.prediction_log = writer
            app.state.pool = pool
            register_readiness(app, "postgres", lambda: check_database(pool), critical=False)
        try:
            yield
        finally:
            if app.state.prediction_log is not None:
                await app.state.prediction_log.close()
            if pool is not None:
                await pool.close()
            await triton.close()

    return create_service_app(
        settings=settings,
        title="ride-duration",
        version="1.0.0",
        description="Online NYC taxi trip-duration prediction served by Triton.",
        routers=[api.router],
        fast_routes=api.FAST_ROUTES,
        lifespan=lifespan,
    )
