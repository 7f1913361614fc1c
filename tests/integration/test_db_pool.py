"""The shared pool (services/common/db.py) gives connections back without asyncpg's server-side
reset query: what that reset would have cleaned must not be left behind by our own code."""

from __future__ import annotations

import asyncpg
import pytest

from services.common.db import PooledConnection, create_pool
from services.common.settings import ServiceSettings
from services.stack.settings import StackSettings
from services.stack.supervisor import Stack

pytestmark = pytest.mark.integration


async def one_connection_pool(stack_settings: StackSettings) -> asyncpg.Pool:
    settings = ServiceSettings(
        database_url=stack_settings.database_url, database_pool_min_size=1, database_pool_max_size=1
    )
    return await create_pool(settings)


async def test_an_open_transaction_is_rolled_back_on_release(
    stack: Stack, stack_settings: StackSettings
) -> None:
    pool = await one_connection_pool(stack_settings)
    try:
        async with pool.acquire() as conn:
            assert isinstance(conn._con, PooledConnection)  # type: ignore[attr-defined]
            await conn.execute("create temporary table if not exists pool_probe (x int)")
            await conn.execute("begin")
            await conn.execute("insert into pool_probe values (1)")
        async with pool.acquire() as conn:  # the same (only) connection
            assert await conn.fetchval("select count(*) from pool_probe") == 0
            assert not conn.is_in_transaction()
    finally:
        await pool.close()


async def test_set_local_and_listeners_leave_nothing_on_the_connection(
    stack: Stack, stack_settings: StackSettings
) -> None:
    pool = await one_connection_pool(stack_settings)

    def ignore(*_: object) -> None:
        pass

    try:
        async with pool.acquire() as conn:
            async with conn.transaction():
                await conn.execute("set local statement_timeout = 1234")
            await conn.add_listener("pool_probe", ignore)
            await conn.remove_listener("pool_probe", ignore)  # what services/common/pg_listen does
        async with pool.acquire() as conn:
            assert await conn.fetchval("show statement_timeout") != "1234ms"
            assert await conn.fetch("select pg_listening_channels()") == []
    finally:
        await pool.close()
