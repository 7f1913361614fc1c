"""The backend app factory: ``uvicorn --factory services.backend.app:create_app``.

The lifespan opens the Postgres pool (bounded wait), applies the migrations, opens one
``aiohttp.ClientSession`` for the downstream calls (ride-duration, location, sensor), and starts the
background tasks: the outbox relay and its backlog gauges (``BACKEND_RELAY``) and the LISTEN
connection that wakes SSE streams; it yields them as the app's
:class:`~services.backend.state.BackendState`. Readiness: Postgres (critical: no ride can be
stored without it); NATS and ride-duration are reported but not critical (the outbox holds
events; a missing duration is a null field).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from services.backend import api
from services.backend.notify import ResultNotifier
from services.backend.relay import OutboxRelay
from services.backend.retention import run_retention
from services.backend.settings import BackendSettings
from services.backend.state import BackendState
from services.common.app import create_service_app
from services.common.db import check_database, create_pool
from services.common.errors import BrokerUnavailable, DependencyError
from services.common.health import register_readiness
from services.common.http import JsonClient
from services.common.migrations import apply_migrations

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: BackendSettings | None = None) -> FastAPI:
    settings = settings or BackendSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[BackendState]:
        pool = await create_pool(settings)
        await apply_migrations(pool, service="backend", directory=MIGRATIONS)
        # One client for every downstream (ride-duration, location, sensor): each call passes
        # its own deadline (services.common.http.JsonClient).
        http = JsonClient(max_connections=128)
        notifier = ResultNotifier(pool, settings)
        relay = OutboxRelay(pool, settings) if settings.relay else None
        tasks = [asyncio.create_task(notifier.run(), name="results-listener")]
        if relay is not None:
            tasks.append(asyncio.create_task(relay.run(), name="outbox-relay"))
            tasks.append(asyncio.create_task(relay.watch_backlog(), name="outbox-backlog"))
            tasks.append(asyncio.create_task(run_retention(pool, settings), name="retention"))
        state = BackendState(
            settings=settings, pool=pool, http=http, notifier=notifier, relay=relay
        )

        async def check_ride_duration() -> None:
            url = f"{settings.ride_duration_url}/readyz"
            status = await http.get_status(url, timeout_s=1.0, name="ride-duration")
            if status != 200:
                raise DependencyError(f"ride-duration not ready ({status})")

        async def check_relay() -> None:
            if relay is not None and not relay.is_connected:
                raise BrokerUnavailable("the outbox relay is not connected to NATS")

        register_readiness(app, "postgres", lambda: check_database(pool))
        register_readiness(app, "nats", check_relay, critical=False)
        register_readiness(app, "ride-duration", check_ride_duration, critical=False)
        try:
            yield state
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if relay is not None:
                await relay.close()
            await http.close()
            await pool.close()

    return create_service_app(
        settings=settings,
        title="backend",
        version="1.0.0",
        description="The taxi app: rides with an initial duration, then tip, cost and a "
        "corrected duration from the streaming workers (GET or Server-Sent Events).",
        routers=[api.router],
        lifespan=lifespan,
    )
