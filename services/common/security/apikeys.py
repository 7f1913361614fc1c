"""API keys for machine clients: created, listed and revoked with ``modelfleet apikey``.

A key looks like ``mfk_<key id>_<secret>``: 12 hex characters of public id (shown in lists,
logs and metrics as ``apikey:<id>``) and 256 bits of secret. Postgres keeps only
HMAC-SHA256(``AUTH_API_KEY_PEPPER``, key); the key itself is printed once, at creation.
Verification caches each key id's row for ``AUTH_API_KEY_CACHE_S`` seconds (default 5), so a
revoked key stops working on every replica within that time.

    created = await create_key(pool, name="batch-scorer", scopes=["read"], created_by="ops")
    print(created.key)                          # the only time the secret is shown
    identity = await verifier.verify(created.key)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from services.common.db import database_errors
from services.common.errors import InvalidInput, NotFound, Unauthorized
from services.common.migrations import apply_migrations
from services.common.security.identity import SCOPES, Identity

PREFIX = "mfk_"
MIGRATIONS = Path(__file__).parent / "migrations"
_DEFAULT_PEPPER = b"modelfleet-api-key"


async def apply_security_migrations(pool: asyncpg.Pool) -> None:
    """Create ``api_keys`` and ``audit_log`` (idempotent; every service with a pool runs it)."""
    await apply_migrations(pool, service="security", directory=MIGRATIONS)


def hash_key(key: str, pepper: str) -> str:
    """What Postgres stores for ``key``."""
    secret = pepper.encode() or _DEFAULT_PEPPER
    return hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()


def key_id_of(key: str) -> str | None:
    """The public id of a key string, or None when it is not shaped like a modelfleet key."""
    if not key.startswith(PREFIX):
        return None
    key_id, sep, secret = key[len(PREFIX) :].partition("_")
    if not sep or len(key_id) != 12 or not secret:
        return None
    return key_id


class InvalidApiKey(Unauthorized):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        self.reason = reason


@dataclass(frozen=True)
class CreatedKey:
    key_id: str
    key: str
    name: str
    scopes: tuple[str, ...]


def _check_scopes(scopes: list[str]) -> tuple[str, ...]:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise InvalidInput(f"scopes must be a non-empty subset of {list(SCOPES)}; got {scopes}")
    return tuple(s for s in SCOPES if s in scopes)


async def create_key(
    pool: asyncpg.Pool, *, name: str, scopes: list[str], created_by: str, pepper: str = ""
) -> CreatedKey:
    """Make and store a new key; the returned ``key`` is never retrievable again."""
    ordered = _check_scopes(scopes)
    key_id = secrets.token_hex(6)
    key = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    async with database_errors("create_api_key"):
        await pool.execute(
            "insert into api_keys (key_id, name, key_hash, scopes, created_by)"
            " values ($1, $2, $3, $4, $5)",
            key_id,
            name,
            hash_key(key, pepper),
            list(ordered),
            created_by,
        )
    return CreatedKey(key_id=key_id, key=key, name=name, scopes=ordered)


async def list_keys(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    """Every key's id, name, scopes and dates (never a hash or a secret)."""
    async with database_errors("list_api_keys"):
        rows = await pool.fetch(
            "select key_id, name, scopes, created_at, created_by, revoked_at"
            " from api_keys order by created_at"
        )
    return [dict(row) for row in rows]


async def revoke_key(pool: asyncpg.Pool, key_id: str) -> datetime:
    """Revoke ``key_id`` (idempotent); returns when it was revoked. NotFound when unknown."""
    async with database_errors("revoke_api_key"):
        revoked: datetime | None = await pool.fetchval(
            "update api_keys set revoked_at = coalesce(revoked_at, now())"
            " where key_id = $1 returning revoked_at",
            key_id,
        )
    if revoked is None:
        raise NotFound(f"no API key {key_id}")
    return revoked


class ApiKeyVerifier:
    """Checks presented keys against Postgres, caching each key id's row briefly."""

    def __init__(
        self,
        *,
        pepper: str,
        cache_s: float,
        timeout_s: float,
        max_cached: int = 10_000,
    ) -> None:
        self.pepper = pepper
        self.cache_s = cache_s
        self.timeout_s = timeout_s
        self.max_cached = max_cached
        self._cache: dict[str, tuple[float, str | None, frozenset[str], bool]] = {}

    async def verify(self, pool: asyncpg.Pool, key: str) -> Identity:
        key_id = key_id_of(key)
        if key_id is None:
            raise InvalidApiKey("malformed", "the API key is malformed")
        stored_hash, scopes, revoked = await self._row(pool, key_id)
        if stored_hash is None or not hmac.compare_digest(stored_hash, hash_key(key, self.pepper)):
            raise InvalidApiKey("unknown_key", "the API key is not valid")
        if revoked:
            raise InvalidApiKey("revoked_key", "the API key has been revoked")
        return Identity(kind="api_key", subject=f"apikey:{key_id}", scopes=scopes)

    async def _row(
        self, pool: asyncpg.Pool, key_id: str
    ) -> tuple[str | None, frozenset[str], bool]:
        now = time.monotonic()
        cached = self._cache.get(key_id)
        if cached is not None and cached[0] > now:
            return cached[1], cached[2], cached[3]
        try:
            async with database_errors("verify_api_key"):
                row = await pool.fetchrow(
                    "select key_hash, scopes, revoked_at is not null as revoked"
                    " from api_keys where key_id = $1",
                    key_id,
                    timeout=self.timeout_s,
                )
        except asyncpg.exceptions.UndefinedTableError:
            row = None  # no key was ever created here
        entry = (
            (now + self.cache_s, None, frozenset[str](), False)
            if row is None
            else (now + self.cache_s, row["key_hash"], frozenset(row["scopes"]), row["revoked"])
        )
        if len(self._cache) >= self.max_cached:
            self._cache.clear()
        self._cache[key_id] = entry
        return entry[1], entry[2], entry[3]
