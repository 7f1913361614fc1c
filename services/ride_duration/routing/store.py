"""The routing tables in Postgres: read, write (versioned, optimistic concurrency), history.

Table ``model_routing`` (migration in ``migrations/``, applied by every model service as the
migration set ``routing``) holds one row per (service, version); the newest version is in force.
A write inserts version ``expected_version + 1``, records it in ``audit_log`` (before, after)
and notifies channel :data:`CHANNEL` with the service name in the same transaction, so every
replica hears of it on commit.

    table = await read_table(pool, service="ride-duration", default_model="ride_duration")
    table = await write_table(pool, service="ride-duration", spec=spec, updated_by="alice")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import orjson

from services.common.db import database_errors
from services.common.errors import Conflict
from services.common.security import audit
from services.ride_duration.routing.table import (
    RoutingSpec,
    RoutingTable,
    Variant,
    default_variants,
)

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_SET = "routing"
CHANNEL = "model_routing"

_COLUMNS = "service, version, variants, salt, comment, updated_at, updated_by"


def _table(row: asyncpg.Record) -> RoutingTable:
    variants: list[dict[str, Any]] = orjson.loads(row["variants"])
    return RoutingTable(
        service=row["service"],
        version=row["version"],
        variants=[Variant.model_validate(v) for v in variants],
        salt=row["salt"],
        comment=row["comment"],
        updated_at=row["updated_at"],
        updated_by=row["updated_by"],
    )


def unconfigured(service: str, default_model: str) -> RoutingTable:
    """Version 0: the table of a service nobody has written one for."""
    return RoutingTable(service=service, version=0, variants=default_variants(default_model))


async def read_table(
    pool: asyncpg.Pool, *, service: str, default_model: str, timeout_s: float | None = None
) -> RoutingTable:
    """The table in force for ``service`` (version 0 with the default variants when none)."""
    async with database_errors("routing_read"):
        row = await pool.fetchrow(
            f"select {_COLUMNS} from model_routing where service = $1 "
            "order by version desc limit 1",
            service,
            timeout=timeout_s,
        )
    return _table(row) if row is not None else unconfigured(service, default_model)


async def current_version(
    pool: asyncpg.Pool, *, service: str, timeout_s: float | None = None
) -> int:
    """The version in force (0 when none): the cheap check of the periodic poll."""
    async with database_errors("routing_poll"):
        value = await pool.fetchval(
            "select coalesce(max(version), 0) from model_routing where service = $1",
            service,
            timeout=timeout_s,
        )
    return int(value)


async def write_table(
    pool: asyncpg.Pool,
    *,
    service: str,
    spec: RoutingSpec,
    updated_by: str,
    timeout_s: float | None = None,
) -> RoutingTable:
    """Insert version ``spec.expected_version + 1``; :class:`Conflict` (409) when it moved on."""
    variants = orjson.dumps([v.model_dump(mode="json") for v in spec.variants]).decode()
    async with database_errors("routing_write"), pool.acquire() as conn, conn.transaction():
        current = await conn.fetchval(
            "select coalesce(max(version), 0) from model_routing where service = $1",
            service,
            timeout=timeout_s,
        )
        if current != spec.expected_version:
            raise Conflict(
                f"routing table of {service!r} is at version {current}, "
                f"not {spec.expected_version}: read it again and re-apply the change",
                extra={"current_version": current},
            )
        try:
            row = await conn.fetchrow(
                f"insert into model_routing ({_COLUMNS}) "
                "values ($1, $2, $3::jsonb, $4, $5, now(), $6) "
                f"returning {_COLUMNS}",
                service,
                spec.expected_version + 1,
                variants,
                spec.salt,
                spec.comment,
                updated_by,
                timeout=timeout_s,
            )
        except asyncpg.UniqueViolationError as exc:  # a concurrent writer got there first
            raise Conflict(
                f"routing table of {service!r} changed concurrently: read it again",
                extra={"current_version": spec.expected_version + 1},
            ) from exc
        assert row is not None
        table = _table(row)
        before = await conn.fetchrow(
            f"select {_COLUMNS} from model_routing where service = $1 and version = $2",
            service,
            spec.expected_version,
            timeout=timeout_s,
        )
        await audit(
            conn,
            updated_by,
            "routing.update",
            f"{service}/routing",
            _table(before).model_dump(mode="json") if before is not None else None,
            table.model_dump(mode="json"),
        )
        await conn.execute("select pg_notify($1, $2)", CHANNEL, service, timeout=timeout_s)
    return table


async def history(
    pool: asyncpg.Pool, *, service: str, limit: int, timeout_s: float | None = None
) -> list[RoutingTable]:
    """The newest ``limit`` versions of ``service``'s table, newest first."""
    async with database_errors("routing_history"):
        rows = await pool.fetch(
            f"select {_COLUMNS} from model_routing where service = $1 "
            "order by version desc limit $2",
            service,
            limit,
            timeout=timeout_s,
        )
    return [_table(row) for row in rows]
