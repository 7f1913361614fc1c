"""Migrations on the real Postgres: applied once, in order, recorded; edits and races caught."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import pytest

from services.common.migrations import MigrationError, apply_migrations
from services.stack.settings import StackSettings
from services.stack.supervisor import Stack

pytestmark = pytest.mark.integration


def write(folder: Path, name: str, sql: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(sql)


async def test_applied_once_in_order_and_recorded(
    stack: Stack, stack_settings: StackSettings, tmp_path: Path
) -> None:
    service = f"test_{uuid.uuid4().hex[:8]}"
    table = f"{service}_things"
    write(tmp_path, "0001_create.sql", f"create table {table} (id int primary key);")
    write(tmp_path, "0002_add_column.sql", f"alter table {table} add column name text;")
    pool = await asyncpg.create_pool(stack_settings.database_url, min_size=1, max_size=4)
    try:
        assert await apply_migrations(pool, service=service, directory=tmp_path) == [1, 2]
        assert await apply_migrations(pool, service=service, directory=tmp_path) == []
        write(tmp_path, "0003_seed.sql", f"insert into {table} values (1, 'one');")
        assert await apply_migrations(pool, service=service, directory=tmp_path) == [3]
        rows = await pool.fetch(
            "select version, name from schema_migrations where service = $1 order by version",
            service,
        )
        assert [(r["version"], r["name"]) for r in rows] == [
            (1, "create"),
            (2, "add_column"),
            (3, "seed"),
        ]
        assert await pool.fetchval(f"select name from {table} where id = 1") == "one"
    finally:
        await pool.close()


async def test_edited_migration_fails_fast(
    stack: Stack, stack_settings: StackSettings, tmp_path: Path
) -> None:
    service = f"test_{uuid.uuid4().hex[:8]}"
    write(tmp_path, "0001_create.sql", f"create table {service}_t (id int);")
    pool = await asyncpg.create_pool(stack_settings.database_url, min_size=1, max_size=2)
    try:
        await apply_migrations(pool, service=service, directory=tmp_path)
        write(tmp_path, "0001_create.sql", f"create table {service}_t (id bigint);")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await apply_migrations(pool, service=service, directory=tmp_path)
    finally:
        await pool.close()


async def test_failing_migration_leaves_nothing_half_applied(
    stack: Stack, stack_settings: StackSettings, tmp_path: Path
) -> None:
    service = f"test_{uuid.uuid4().hex[:8]}"
    write(
        tmp_path,
        "0001_broken.sql",
        f"create table {service}_t (id int); insert into {service}_t values ('not a number');",
    )
    pool = await asyncpg.create_pool(stack_settings.database_url, min_size=1, max_size=2)
    try:
        with pytest.raises(asyncpg.DataError):
            await apply_migrations(pool, service=service, directory=tmp_path)
        assert await pool.fetchval("select to_regclass($1)", f"{service}_t") is None
        recorded = await pool.fetchval(
            "select count(*) from schema_migrations where service = $1", service
        )
        assert recorded == 0
    finally:
        await pool.close()


async def test_replicas_starting_together_apply_each_migration_once(
    stack: Stack, stack_settings: StackSettings, tmp_path: Path
) -> None:
    service = f"test_{uuid.uuid4().hex[:8]}"
    # Not idempotent on purpose: a second run would fail with "already exists".
    write(tmp_path, "0001_create.sql", f"create table {service}_t (id int);")
    pools = [
        await asyncpg.create_pool(stack_settings.database_url, min_size=1, max_size=1)
        for _ in range(4)
    ]
    try:
        applied = await asyncio.gather(
            *(apply_migrations(p, service=service, directory=tmp_path) for p in pools)
        )
        assert sorted(len(a) for a in applied) == [0, 0, 0, 1]
    finally:
        await asyncio.gather(*(p.close() for p in pools))
