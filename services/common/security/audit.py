"""The audit log of admin actions: who did what to which target, when, before and after.

Call it in the same transaction as the change when you can (a connection), or with the pool:

    await audit(pool, actor_name(), "routing.update", "ride-duration/routing", before, after)

``before``/``after`` are JSON-able (dicts, lists, strings) or None; the request id is recorded.
The table ``audit_log`` is created by the security migrations every service with a pool runs.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

from services.common.db import database_errors
from services.common.logging import request_id_var

Executor = asyncpg.Pool | asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value, default=str).decode()


async def audit(
    db: Executor,
    actor: str,
    action: str,
    target: str,
    before: Any = None,
    after: Any = None,
    *,
    timeout_s: float = 2.0,
) -> None:
    """Append one row to ``audit_log``."""
    async with database_errors("audit"):
        await db.execute(
            "insert into audit_log (actor, action, target, before, after, request_id)"
            " values ($1, $2, $3, $4::jsonb, $5::jsonb, $6)",
            actor,
            action,
            target,
            _json(before),
            _json(after),
            request_id_var.get(),
            timeout=timeout_s,
        )
