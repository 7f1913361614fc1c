"""A Postgres LISTEN connection held from a pool, re-taken with backoff when Postgres restarts.

``pg_notify`` inside a transaction is delivered on commit, so a listener hears only committed
changes. Notifications sent while the connection is down are lost: ``on_connected`` runs after
every (re)connect so the caller can re-read what it may have missed.

    listener = PgListener(pool, "model_routing", on_notify=lambda payload: ...,
                          on_connected=refresh, timeout_s=settings.database_timeout_s)
    task = asyncio.create_task(listener.run())
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import asyncpg
from prometheus_client import Gauge
from tenacity import AsyncRetrying, RetryCallState

from services.common.db import CONNECTION_ERRORS
from services.common.retry import exception_of, retry_forever

log = logging.getLogger(__name__)

HEALTH_CHECK_S = 1.0
LISTEN_ERRORS: tuple[type[BaseException], ...] = (
    *CONNECTION_ERRORS,
    TimeoutError,
    asyncpg.PostgresError,
)


class ConnectionClosed(Exception):
    """The LISTEN connection closed without an error (Postgres or the pool closed it)."""


def listen_retrying(channel: str) -> AsyncRetrying:
    """The listener's reconnect policy: forever, pauses from 100 ms doubling to 2 s.

    A lost connection (an error of ``LISTEN_ERRORS``, logged, or :class:`ConnectionClosed`) is
    re-taken; anything else ends the listener.
    """

    def log_loss(state: RetryCallState) -> None:
        exc = exception_of(state)
        if not isinstance(exc, ConnectionClosed):
            log.warning("listener on %r lost its connection: %r", channel, exc)

    return retry_forever(
        errors=(*LISTEN_ERRORS, ConnectionClosed), first_s=0.1, max_s=2.0, before_sleep=log_loss
    )


LISTENING = Gauge(
    "modelfleet_pg_listening",
    "1 while the process holds its Postgres LISTEN connection on the channel.",
    ["channel"],
)


class PgListener:
    """Listen on ``channel`` forever with one connection of ``pool``; ``on_notify(payload)``."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        channel: str,
        *,
        on_notify: Callable[[str], None],
        on_connected: Callable[[], Awaitable[None]] | None = None,
        timeout_s: float = 2.0,
    ) -> None:
        self.pool = pool
        self.timeout_s = timeout_s
        self.channel = channel
        self._on_notify = on_notify
        self._on_connected = on_connected
        self._listening = LISTENING.labels(channel)

    def _callback(
        self,
        _conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy,
        _pid: int,
        _channel: str,
        payload: object,
    ) -> None:
        self._on_notify(str(payload))

    async def run(self) -> None:
        """Listen until cancelled, reconnecting with jittered backoff after connection loss."""
        async for attempt in listen_retrying(self.channel):
            with attempt:
                await self._listen(attempt.retry_state)

    async def _listen(self, state: RetryCallState) -> None:
        """Hold one LISTEN connection until it is lost; always raises."""
        timeout = self.timeout_s
        async with self.pool.acquire(timeout=timeout) as conn:
            await conn.add_listener(self.channel, self._callback)
            try:
                self._listening.set(1)
                state.attempt_number = 1  # connected: the next pause is the shortest again
                if self._on_connected is not None:
                    await self._on_connected()
                while not conn.is_closed():  # a health check, not a retry
                    await asyncio.sleep(HEALTH_CHECK_S)
                    await conn.execute("select 1", timeout=timeout)
            finally:
                self._listening.set(0)
                if not conn.is_closed():
                    await conn.remove_listener(self.channel, self._callback)
        raise ConnectionClosed(self.channel)
