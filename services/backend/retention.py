"""Retention of the backend's bookkeeping rows: what is kept only for a while.

- ``ride_idempotency``: a key is honoured for ``idempotency_key_ttl_s`` (24 h by default, the
  usual promise of an Idempotency-Key); after that it is deleted and the key may make a new ride.
- ``ride_outbox``: an event is kept ``outbox_retention_s`` after JetStream acknowledged it (for
  inspection and replays by hand); unsent events are never deleted.

Rides, telemetry and results are the product's data and are not touched here. A round deletes
at most ``prune_batch_size`` rows per table (short transactions, no long locks) and is repeated
while it finds a full batch; rounds run every ``prune_interval_s`` in every process that runs
the relay (replicas racing on the same rows delete each row once).

    deleted = await prune_once(pool, settings)   # {"ride_idempotency": 3, "ride_outbox": 0}
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from services.backend.metrics import PRUNED_ROWS
from services.backend.settings import BackendSettings
from services.common.db import database_errors
from services.common.errors import ModelfleetError

log = logging.getLogger(__name__)

_PRUNE = {
    "ride_idempotency": """
        delete from ride_idempotency where ctid = any(array(
            select ctid from ride_idempotency
            where created_at < now() - make_interval(secs => $1) limit $2))
    """,
    "ride_outbox": """
        delete from ride_outbox where ctid = any(array(
            select ctid from ride_outbox
            where sent_at is not null and sent_at < now() - make_interval(secs => $1) limit $2))
    """,
}


def _ages(settings: BackendSettings) -> dict[str, float]:
    return {
        "ride_idempotency": settings.idempotency_key_ttl_s,
        "ride_outbox": settings.outbox_retention_s,
    }


async def prune_once(pool: asyncpg.Pool, settings: BackendSettings) -> dict[str, int]:
    """Delete what is past its retention, batch by batch; the rows deleted per table."""
    deleted: dict[str, int] = {}
    timeout = settings.database_timeout_s
    for table, max_age_s in _ages(settings).items():
        total = 0
        while True:
            async with database_errors(f"prune_{table}"):
                status = await pool.execute(
                    _PRUNE[table], max_age_s, settings.prune_batch_size, timeout=timeout
                )
            count = int(status.rsplit(" ", 1)[-1])
            total += count
            if count < settings.prune_batch_size:
                break
        if total:
            PRUNED_ROWS.labels(table).inc(total)
        deleted[table] = total
    return deleted


async def run_retention(pool: asyncpg.Pool, settings: BackendSettings) -> None:
    """Prune every ``prune_interval_s`` until cancelled; a failed round is logged and retried."""
    while True:
        try:
            deleted = await prune_once(pool, settings)
        except ModelfleetError as exc:
            log.warning("retention round failed: %s", exc.detail)
        else:
            if any(deleted.values()):
                log.info("retention deleted %s", deleted)
        await asyncio.sleep(settings.prune_interval_s)
