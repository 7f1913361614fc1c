"""Security written once for every service: authentication, scopes, abuse limits, audit.

- :mod:`.guard`: the ASGI layer every :class:`~services.common.app.ServiceApp` runs, and
  :func:`require_scope` (how a route declares ``read`` / ``write`` / ``admin``).
- :mod:`.jwt`: OIDC bearer tokens (JWKS cached, RS256/ES256 only); :mod:`.apikeys`: API keys
  (hashed in Postgres, ``modelfleet apikey``); :mod:`.ratelimit`: per-identity token buckets.
- :mod:`.identity`: who is calling (:func:`current_identity`, :func:`actor_name`).
- :mod:`.audit`: ``await audit(pool, actor, action, target, before, after)``.

Settings: ``AUTH_MODE`` (none|jwt), ``AUTH_JWKS_URL``, ``AUTH_ISSUER``, ``AUTH_AUDIENCE`` ...
(:class:`services.common.settings.ServiceSettings`); docs/security.md explains the modes.
"""

from services.common.security.audit import audit
from services.common.security.guard import require_scope
from services.common.security.identity import Identity, actor_name, current_identity

__all__ = ["Identity", "actor_name", "audit", "current_identity", "require_scope"]
