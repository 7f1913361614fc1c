"""Wakes Server-Sent Events streams when a worker's result commits (Postgres LISTEN/NOTIFY).

A trigger on ``ride_results`` runs ``pg_notify('ride_results', ride_id)`` in the worker's
transaction, so a notification arrives only for a committed result. One LISTEN connection per
backend process fans notifications out to the streams of that ride. The connection is re-made
with backoff when Postgres restarts; SSE streams also re-read results every
``sse_recheck_interval_s``, so a notification lost during an outage only delays an event.

    notifier = ResultNotifier(settings)
    task = asyncio.create_task(notifier.run())
    with notifier.subscribe(ride_id) as woken:
        await woken.wait()
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

from services.backend.metrics import NOTIFY_LISTENING
from services.common.db import CONNECTION_ERRORS
from services.common.settings import ServiceSettings

log = logging.getLogger(__name__)

CHANNEL = "ride_results"
_HEALTH_CHECK_S = 1.0
_LISTEN_ERRORS: tuple[type[BaseException], ...] = (
    *CONNECTION_ERRORS,
    TimeoutError,
    asyncpg.PostgresError,
)


class ResultNotifier:
    """One LISTEN connection; per-ride events for the streams waiting on them."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self._waiters: dict[str, set[asyncio.Event]] = {}

    @contextmanager
    def subscribe(self, ride_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever a result of ``ride_id`` commits (clear it after each wake)."""
        event = asyncio.Event()
        self._waiters.setdefault(ride_id, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(ride_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[ride_id]

    def _on_notify(
        self,
        _conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy,
        _pid: int,
        _channel: str,
        payload: object,
    ) -> None:
        for event in self._waiters.get(str(payload), ()):
            event.set()

    def _wake_all(self) -> None:
        for waiters in self._waiters.values():
            for event in waiters:
                event.set()

    async def run(self) -> None:
        """Listen forever, reconnecting with jittered backoff after connection loss."""
        backoff = 0.1
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    self.settings.database_url, timeout=self.settings.database_timeout_s
                )
                await conn.add_listener(CHANNEL, self._on_notify)
                NOTIFY_LISTENING.set(1)
                backoff = 0.1
                self._wake_all()  # results may have landed while we were not listening
                while not conn.is_closed():
                    await asyncio.sleep(_HEALTH_CHECK_S)
                    await conn.execute("select 1", timeout=self.settings.database_timeout_s)
            except _LISTEN_ERRORS as exc:
                log.warning("results listener lost its connection: %r", exc)
            finally:
                NOTIFY_LISTENING.set(0)
                if conn is not None and not conn.is_closed():
                    conn.terminate()
            await asyncio.sleep(random.uniform(backoff / 2, backoff))
            backoff = min(backoff * 2, 2.0)
