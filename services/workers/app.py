"""A worker process: its consumer loop plus the health endpoints every service has.

``create_worker_app(kind)`` is a service app (``/healthz``, ``/readyz``, ``/metrics``, JSON
logs) with no routes of its own; its lifespan opens the Postgres pool and the Triton client,
waits (bounded) for the backend's ``ride_results`` table, and runs the durable consumer of
``kind`` as a background task. Readiness: Postgres, the worker's Triton model, and the consumer
bound to JetStream (all critical: an unready worker processes nothing). It yields them as the
app's :class:`~services.workers.state.WorkersState`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI

from services.common.app import create_service_app
from services.common.db import check_database, create_pool, database_errors
from services.common.errors import BrokerUnavailable, DatabaseUnavailable, TritonUnavailable
from services.common.health import register_readiness
from services.common.http import JsonClient
from services.common.triton import TritonClient
from services.workers.consumer import PullConsumer
from services.workers.handlers import make_worker
from services.workers.settings import WorkerSettings
from services.workers.state import WorkersState


async def wait_for_results_table(pool: asyncpg.Pool, *, timeout_s: float) -> None:
    """The backend's migrations create ``ride_results``; wait for them, bounded."""
    deadline = time.monotonic() + timeout_s
    while True:
        async with database_errors("results_table"):
            found = await pool.fetchval("select to_regclass('ride_results') is not null")
        if found:
            return
        if time.monotonic() >= deadline:
            raise DatabaseUnavailable("table ride_results is missing (backend migrations)")
        await asyncio.sleep(0.5)


def model_of(kind: str, settings: WorkerSettings) -> str:
    return {
        "tip": settings.tip_model,
        "cost": settings.cost_model,
        "dynamic-duration": settings.duration_model,
        "sensor-duration": settings.sensor_model,
    }[kind]


def create_worker_app(kind: str, settings: WorkerSettings | None = None) -> FastAPI:
    settings = settings or WorkerSettings(service_name=f"worker-{kind}")
    model_of(kind, settings)  # unknown kinds fail here, before anything starts

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[WorkersState]:
        pool = await create_pool(settings)
        triton = TritonClient.from_settings(settings)
        # As many connections as events in flight: each waits seconds on location and sensor.
        http = (
            JsonClient(max_connections=2 * settings.fetch_batch)
            if kind == "sensor-duration"
            else None
        )
        try:
            await wait_for_results_table(pool, timeout_s=settings.startup_timeout_s)
            spec = make_worker(kind, triton=triton, pool=pool, settings=settings, http=http)
            consumer = PullConsumer(
                name=kind, subject=spec.subject, handler=spec.handler, settings=settings
            )
            task = asyncio.create_task(consumer.run(), name=f"consumer-{kind}")
            model = model_of(kind, settings)

            async def check_model() -> None:
                if not await triton.model_ready(model):
                    raise TritonUnavailable(f"model {model!r} is not ready in Triton")

            async def check_consumer() -> None:
                if not consumer.connected:
                    raise BrokerUnavailable(f"consumer {kind} is not bound to JetStream")

            register_readiness(app, "postgres", lambda: check_database(pool))
            register_readiness(app, "triton", check_model)
            register_readiness(app, "nats", check_consumer)
            try:
                yield WorkersState(settings=settings, pool=pool, triton=triton, consumer=consumer)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await consumer.close()
        finally:
            if http is not None:
                await http.close()
            await triton.close()
            await pool.close()

    return create_service_app(
        settings=settings,
        title=f"worker-{kind}",
        version="1.0.0",
        description=f"Streaming worker {kind}: a durable JetStream consumer (health only).",
        routers=[],
        lifespan=lifespan,
    )
