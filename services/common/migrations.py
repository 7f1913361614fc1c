"""SQL migrations: applied in order, once, recorded in a table, safe with many replicas.

Each service keeps its migrations as ``NNNN_description.sql`` files in its own ``migrations``
package folder. :func:`apply_migrations` takes a Postgres advisory lock (so replicas starting
together do not race), applies every file not yet recorded in ``schema_migrations`` in its own
transaction, and fails fast when an applied file was edited afterwards (checksum mismatch).

    await apply_migrations(pool, service="ride_duration",
                           directory=Path(__file__).parent / "migrations")
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

_FILE_PATTERN = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x6D6F64656C  # "model": one advisory lock for every service's migrations

_CREATE_TABLE = """
create table if not exists schema_migrations (
    service    text not null,
    version    integer not null,
    name       text not null,
    checksum   text not null,
    applied_at timestamptz not null default now(),
    primary key (service, version)
)
"""


class MigrationError(RuntimeError):
    """The migrations on disk and the ones recorded in the database disagree."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path) -> list[Migration]:
    """The migration files of a folder, in version order; a badly named .sql file is an error."""
    migrations: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_PATTERN.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_description.sql")
        migrations.append(Migration(int(match[1]), match[2], path.read_text(encoding="utf-8")))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"{directory}: two migrations share a version number")
    return migrations


async def apply_migrations(
    pool: asyncpg.Pool, *, service: str, directory: Path, timeout_s: float = 300.0
) -> list[int]:
    """Apply the pending migrations of ``service``; return the versions applied now.

    ``timeout_s`` bounds the wait for the lock (another replica migrating) and each migration:
    schema changes can take longer than the pool's per-query deadline.
    """
    migrations = discover(directory)
    applied_now: list[int] = []
    async with pool.acquire() as conn:
        await conn.execute("select pg_advisory_lock($1)", _LOCK_KEY, timeout=timeout_s)
        try:
            await conn.execute(_CREATE_TABLE, timeout=timeout_s)
            rows = await conn.fetch(
                "select version, checksum from schema_migrations where service = $1", service
            )
            recorded = {row["version"]: row["checksum"] for row in rows}
            for migration in migrations:
                checksum = recorded.get(migration.version)
                if checksum is not None:
                    if checksum != migration.checksum:
                        raise MigrationError(
                            f"{service} migration {migration.version:04d}_{migration.name} was "
                            "changed after it was applied; add a new migration instead"
                        )
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql, timeout=timeout_s)
                    await conn.execute(
                        "insert into schema_migrations (service, version, name, checksum) "
                        "values ($1, $2, $3, $4)",
                        service,
                        migration.version,
                        migration.name,
                        migration.checksum,
                    )
                applied_now.append(migration.version)
                log.info(
                    "migration applied",
                    extra={"migration": f"{migration.version:04d}_{migration.name}"},
                )
        finally:
            await conn.execute("select pg_advisory_unlock($1)", _LOCK_KEY)
    return applied_now
