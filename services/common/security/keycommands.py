"""`modelfleet apikey create|list|revoke`: the work behind the CLI, audited.

    lines = asyncio.run(run_apikey(settings, "create", name="scorer", scopes=["read"], by="ops"))

The new key is printed once and never stored; each create and revoke is an audit_log row.
"""

from __future__ import annotations

from services.common.db import create_pool
from services.common.security.apikeys import (
    apply_security_migrations,
    create_key,
    list_keys,
    revoke_key,
)
from services.common.security.audit import audit
from services.common.settings import ServiceSettings


async def run_apikey(
    settings: ServiceSettings,
    action: str,
    *,
    by: str,
    name: str = "",
    scopes: list[str] | None = None,
    key_id: str = "",
) -> list[str]:
    """Run one ``apikey`` action; return the lines to print."""
    pool = await create_pool(settings)
    try:
        await apply_security_migrations(pool)
        pepper = settings.auth_api_key_pepper.get_secret_value()
        if action == "create":
            created = await create_key(
                pool, name=name, scopes=scopes or ["read"], created_by=by, pepper=pepper
            )
            after = {"name": created.name, "scopes": list(created.scopes)}
            await audit(pool, by, "apikey.create", f"apikey:{created.key_id}", None, after)
            return [
                f"key id: {created.key_id}  name: {created.name}  scopes: "
                + ",".join(created.scopes),
                created.key,
                "(shown once: store it now; only its hash is kept)",
            ]
        if action == "revoke":
            revoked = await revoke_key(pool, key_id)
            after = {"revoked_at": revoked.isoformat()}
            await audit(pool, by, "apikey.revoke", f"apikey:{key_id}", None, after)
            return [f"revoked {key_id} at {revoked.isoformat()}"]
        rows = await list_keys(pool)
        lines = ["KEY ID        NAME                 SCOPES             CREATED              STATE"]
        for row in rows:
            state = "revoked" if row["revoked_at"] is not None else "active"
            lines.append(
                f"{row['key_id']:<13} {row['name'][:20]:<20} {','.join(row['scopes']):<18} "
                f"{row['created_at']:%Y-%m-%d %H:%M}     {state}"
            )
        return lines
    finally:
        await pool.close()
