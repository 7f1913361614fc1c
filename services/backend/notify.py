"""Wakes Server-Sent Events streams when a worker's result commits (Postgres LISTEN/NOTIFY).

A trigger on ``ride_results`` runs ``pg_notify('ride_results', ride_id)`` in the worker's
transaction, so a notification arrives only for a committed result. One LISTEN connection per
backend process (:class:`services.common.pg_listen.PgListener`) fans notifications out to the
streams of that ride. The connection is re-made with backoff when Postgres restarts; SSE streams
also re-read results every ``sse_recheck_interval_s``, so a notification lost during an outage
only delays an event.

    notifier = ResultNotifier(pool, settings)
    task = asyncio.create_task(notifier.run())
    with notifier.subscribe(ride_id) as woken:
        await woken.wait()
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

from services.common.pg_listen import PgListener
from services.common.settings import ServiceSettings

CHANNEL = "ride_results"


class ResultNotifier:
    """One LISTEN connection; per-ride events for the streams waiting on them."""

    def __init__(self, pool: asyncpg.Pool, settings: ServiceSettings) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._listener = PgListener(
            pool,
            CHANNEL,
            on_notify=self._on_notify,
            on_connected=self._wake_all,
            timeout_s=settings.database_timeout_s,
        )

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

    def _on_notify(self, payload: str) -> None:
        for event in self._waiters.get(payload, ()):
            event.set()

    async def _wake_all(self) -> None:
        """Results may have landed while nobody listened: every stream re-reads."""
        for waiters in self._waiters.values():
            for event in waiters:
                event.set()

    async def run(self) -> None:
        """Listen forever, reconnecting with jittered backoff after connection loss."""
        await self._listener.run()
