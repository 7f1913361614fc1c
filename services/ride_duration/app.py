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
from services.ride_duration import api, oip, outcomes
from services.ride_duration.predictor import DurationPredictor
from services.ride_duration.routing import api as routing_api
from services.ride_duration.routing import store as routing_store
from services.ride_duration.routing.live import LiveRouting
from services.ride_duration.settings import RideDurationSettings
from services.ride_duration.state import RideDurationState

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: RideDurationSettings | None = None) -> FastAPI:
    settings = settings or RideDurationSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[RideDurationState]:
        triton = TritonClient.from_settings(settings)
        predictor = DurationPredictor(
            triton,
            model=settings.triton_model,
            coalesce=settings.coalesce_requests,
            coalesce_max_rows=settings.coalesce_max_rows,
            coalesce_max_in_flight=settings.coalesce_max_in_flight,
        )
        register_readiness(app, "triton", predictor.ready)
        pool = None
        if settings.prediction_log or settings.routing_table:
            pool = await create_pool(settings)
            register_readiness(app, "postgres", lambda: check_database(pool), critical=False)
        if pool is not None and settings.routing_table:
            await apply_migrations(
                pool, service=routing_store.MIGRATION_SET, directory=routing_store.MIGRATIONS
            )
        routing = LiveRouting(
            pool if settings.routing_table else None,
            settings,
            default_model=settings.triton_model,
            call=predictor.predict_variant,
        )
        await routing.start()
        state = RideDurationState(
            settings=settings, pool=pool, triton=triton, predictor=predictor, routing=routing
        )
        if pool is not None and settings.prediction_log:
            await apply_migrations(pool, service="ride_duration", directory=MIGRATIONS)
            state.prediction_log = BufferedCopyWriter(
                pool,
                table="ride_duration_predictions",
                columns=api.PREDICTION_LOG_COLUMNS,
                flush_interval_s=settings.prediction_log_flush_interval_s,
                max_buffered=settings.prediction_log_max_buffered,
            )
            state.prediction_log.start()
            state.outcomes = outcomes.OutcomeTracker(pool, settings)
            state.outcomes.start()
        try:
            yield state
        finally:
            await routing.close()
            if state.outcomes is not None:
                await state.outcomes.close()
            if state.prediction_log is not None:
                await state.prediction_log.close()
            if pool is not None:
                await pool.close()
            await triton.close()

    return create_service_app(
        settings=settings,
        title="ride-duration",
        version="1.0.0",
        description="Online NYC taxi trip-duration prediction served by Triton.",
        routers=[api.router, routing_api.router, oip.router],
        lifespan=lifespan,
    )
