"""The outbox relay: ride events from Postgres to JetStream, at least once, deduplicated.

It runs as a background task of the backend process (every replica runs one; ``FOR UPDATE SKIP
LOCKED`` lets them share the work). One round: lock up to ``relay_batch_size`` unsent outbox rows
in seq order, publish each to its subject with ``Nats-Msg-Id`` = event id (concurrently, each
waiting for its PubAck), mark the acknowledged ones sent, commit. A crash between PubAck and commit
publishes those events again on the next round: JetStream drops the repeat (duplicate window 15
min), and the workers are idempotent anyway.

Outages: while NATS or Postgres is down a round fails, is counted in
``modelfleet_backend_relay_errors_total`` and retried with jittered backoff (capped at
``relay_retry_max_s``); the rides keep being accepted into the outbox meanwhile. The NATS
connection is made lazily, so the backend starts (and takes rides) without NATS.

    relay = OutboxRelay(pool, settings)
    task = asyncio.create_task(relay.run())
    relay.wake()  # after a commit: publish now instead of at the next poll

Backlog: :meth:`OutboxRelay.watch_backlog` sets ``modelfleet_backend_outbox_unsent_events`` and
``modelfleet_backend_outbox_oldest_unsent_age_seconds`` from the table every
``outbox_stats_interval_s`` (alert ``ModelfleetOutboxBacklog``).
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import orjson
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from tenacity import AsyncRetrying, RetryCallState

from services.backend.metrics import (
    OUTBOX_OLDEST_AGE,
    OUTBOX_PUBLISHED,
    OUTBOX_UNSENT,
    RELAY_ERRORS,
)
from services.backend.settings import BackendSettings
from services.common.db import database_errors
from services.common.errors import BrokerUnavailable, ModelfleetError
from services.common.jetstream import ensure_stream, publish
from services.common.nats import connect
from services.common.retry import exception_of, retry_forever

log = logging.getLogger(__name__)

_BACKLOG = """
select count(*) as unsent,
       coalesce(extract(epoch from now() - min(created_at)), 0)::float8 as oldest_age_s
from ride_outbox where sent_at is null
"""
_SELECT_UNSENT = """
select seq, event_id, subject, payload::text as payload from ride_outbox
where sent_at is null order by seq limit $1 for update skip locked
"""
_MARK_SENT = "update ride_outbox set sent_at = now() where seq = any($1::bigint[])"
_BACKOFF_BASE_S = 0.05


def _round_failed(state: RetryCallState) -> None:
    exc = exception_of(state)
    RELAY_ERRORS.labels(type(exc).__name__).inc()
    log.warning(
        "outbox relay round failed: %s", exc.detail if isinstance(exc, ModelfleetError) else exc
    )


def round_retrying(settings: BackendSettings) -> AsyncRetrying:
    """The relay's retry policy for one round (NATS or Postgres down: a ModelfleetError).

    Retried forever, pauses from 50 ms doubling to ``relay_retry_max_s``; each failure is counted
    in ``modelfleet_backend_relay_errors_total`` and logged.
    """
    return retry_forever(
        errors=(ModelfleetError,),
        first_s=_BACKOFF_BASE_S,
        max_s=settings.relay_retry_max_s,
        before_sleep=_round_failed,
    )


def event_body(payload: str, seq: int) -> bytes:
    """The message body: the stored event JSON with its outbox ``seq`` added."""
    event = orjson.loads(payload)
    event["seq"] = seq
    return orjson.dumps(event)


class OutboxRelay:
    """Publishes the outbox to JetStream until cancelled."""

    def __init__(self, pool: asyncpg.Pool, settings: BackendSettings) -> None:
        self.pool = pool
        self.settings = settings
        self._wake = asyncio.Event()
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None

    @property
    def is_connected(self) -> bool:
        """Whether the relay holds a live NATS connection (the backend's readiness check)."""
        return self._nc is not None and self._nc.is_connected

    def wake(self) -> None:
        """Ask for a round now (called after a commit that wrote outbox rows)."""
        self._wake.set()

    async def close(self) -> None:
        if self._nc is not None:
            await self._nc.close()
            self._nc = None

    async def _jetstream(self) -> JetStreamContext:
        if self._js is None:
            nc = await connect(self.settings.nats_url, name=f"{self.settings.service_name}-relay")
            js = nc.jetstream(timeout=self.settings.relay_publish_timeout_s)
            try:
                await ensure_stream(js)
            except ModelfleetError:
                await nc.close()
                raise
            self._nc, self._js = nc, js
        return self._js

    async def run(self) -> None:
        """Relay forever; errors are logged, counted and retried with jittered backoff."""
        while True:
            sent: int = await round_retrying(self.settings)(self._round)
            if sent >= self.settings.relay_batch_size:
                continue  # more may be waiting
            try:
                await asyncio.wait_for(self._wake.wait(), self.settings.relay_idle_interval_s)
            except TimeoutError:
                pass

    async def _round(self) -> int:
        self._wake.clear()
        js = await self._jetstream()
        return await self.relay_once(js)

    async def watch_backlog(self) -> None:
        """Refresh the backlog gauges every ``outbox_stats_interval_s`` (kept during outages).

        A separate task from :meth:`run`, so the gauges move while NATS is down and the relay
        rounds fail: that is when the backlog grows.
        """
        timeout = self.settings.database_timeout_s
        while True:
            try:
                async with database_errors("outbox_backlog"):
                    row = await self.pool.fetchrow(_BACKLOG, timeout=timeout)
            except ModelfleetError as exc:
                log.warning("outbox backlog not measured: %s", exc.detail)
            else:
                if row is not None:
                    OUTBOX_UNSENT.set(row["unsent"])
                    OUTBOX_OLDEST_AGE.set(row["oldest_age_s"])
            await asyncio.sleep(self.settings.outbox_stats_interval_s)

    async def relay_once(self, js: JetStreamContext) -> int:
        """One round; returns how many events were published (and marked sent)."""
        timeout = self.settings.database_timeout_s
        async with database_errors("outbox_relay"):
            async with self.pool.acquire(timeout=timeout) as conn, conn.transaction():
                rows = await conn.fetch(
                    _SELECT_UNSENT, self.settings.relay_batch_size, timeout=timeout
                )
                if not rows:
                    return 0
                # Publish errors are returned, not raised: the acknowledged events are still
                # marked sent in this transaction.
                outcomes = await asyncio.gather(
                    *(
                        publish(
                            js,
                            row["subject"],
                            event_body(row["payload"], row["seq"]),
                            msg_id=str(row["event_id"]),
                            timeout_s=self.settings.relay_publish_timeout_s,
                        )
                        for row in rows
                    ),
                    return_exceptions=True,
                )
                acked = [
                    row["seq"]
                    for row, outcome in zip(rows, outcomes, strict=True)
                    if isinstance(outcome, bool)
                ]
                if acked:
                    await conn.execute(_MARK_SENT, acked, timeout=timeout)
        for outcome in outcomes:
            if isinstance(outcome, bool):
                OUTBOX_PUBLISHED.labels("duplicate" if outcome else "sent").inc()
        for outcome in outcomes:
            if isinstance(outcome, ModelfleetError):
                raise outcome
            if isinstance(outcome, BaseException):
                raise BrokerUnavailable(f"publish failed: {outcome!r}") from outcome
        return len(acked)
