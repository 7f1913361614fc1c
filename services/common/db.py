"""The PostgreSQL pool (asyncpg) and the one translation of database errors.

pool = await create_pool(settings)          # waits for the server, bounded
async with database_errors("insert_ride"):  # asyncpg errors -> modelfleet errors + metric
    await pool.execute("...", timeout=settings.database_timeout_s)
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_random_exponential,
)

from services.common.errors import DatabaseUnavailable, DependencyTimeout
from services.common.metrics import observe_dependency
from services.common.settings import ServiceSettings

log = logging.getLogger(__name__)

#: Errors that mean "the database cannot be reached now" (seen while a server restarts).
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.ConnectionFailureError,
)


class PooledConnection(asyncpg.Connection):
    """A pool connection given back without asyncpg's server-side reset query.

    asyncpg sends ``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` on every
    release: one more round trip for every pooled query (in a streaming worker, the reset was
    ~7% of its CPU and a third of its database time). Nothing here leaves session state on a
    connection: settings are ``SET LOCAL``, advisory locks are transaction-scoped or unlocked
    explicitly, listeners are removed (``UNLISTEN``) before release, cursors live in
    transactions. asyncpg's client-side reset still runs (an open transaction is rolled back,
    callbacks are dropped).
    """

    def get_reset_query(self) -> str:
        return ""


async def create_pool(
    settings: ServiceSettings, *, ssl_context: ssl.SSLContext | None = None
) -> asyncpg.Pool:
    """Create the pool, retrying with jitter until ``settings.startup_timeout_s`` runs out."""
    async for attempt in AsyncRetrying(
        stop=stop_after_delay(settings.startup_timeout_s),
        wait=wait_random_exponential(multiplier=0.1, max=2.0),
        retry=retry_if_exception_type(CONNECTION_ERRORS + (asyncio.TimeoutError,)),
        reraise=True,
    ):
        with attempt:
            pool: asyncpg.Pool = await asyncpg.create_pool(
                settings.database_url,
                password=(
                    settings.database_password.get_secret_value()
                    if settings.database_password is not None
                    else None
                ),
                min_size=settings.database_pool_min_size,
                max_size=settings.database_pool_max_size,
                command_timeout=settings.database_timeout_s,
                timeout=settings.database_timeout_s,
                ssl=ssl_context,
                connection_class=PooledConnection,
            )
            return pool
    raise AssertionError("unreachable: tenacity re-raises the last error")


@asynccontextmanager
async def database_errors(operation: str) -> AsyncIterator[None]:
    """Time a database operation and translate its connection and timeout errors."""
    try:
        with observe_dependency("postgres", operation):
            yield
    except (TimeoutError, asyncpg.exceptions.QueryCanceledError) as exc:
        raise DependencyTimeout(f"database operation {operation!r} timed out") from exc
    except CONNECTION_ERRORS as exc:
        raise DatabaseUnavailable(f"database unavailable during {operation!r}") from exc


async def check_database(pool: asyncpg.Pool, *, timeout_s: float = 1.0) -> None:
    """Readiness: one round trip to the server."""
    async with database_errors("readiness"):
        await pool.fetchval("select 1", timeout=timeout_s)
