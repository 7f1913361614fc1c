"""OIDC bearer tokens: the provider's JWKS (fetched with a deadline, cached) and verification.

Only asymmetric algorithms are accepted (``RS256``, ``ES256``), chosen from the token's header
but checked against this list *before* any key is used, and the key's type must fit the
algorithm: ``alg: none`` and HS256 signed with a public key are refused. Issuer, audience,
``exp`` and ``nbf`` are checked with ``AUTH_LEEWAY_S`` of clock skew. An unknown ``kid`` makes
the cache fetch the JWKS again (key rotation), at most once per ``AUTH_JWKS_MIN_REFRESH_S``.
Cognito access tokens carry ``client_id`` instead of ``aud``: that is accepted as the audience.
A verified token is remembered (by its exact text, until its ``exp``; at most
``MAX_VERIFIED`` of them), so a client reusing its token pays the signature check once.

    verifier = JwtVerifier(settings)
    identity = await verifier.verify(token)     # Unauthorized with a reason, or an Identity
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
import jwt
from jwt import PyJWK, PyJWKSet

from services.common.errors import DependencyError, Unauthorized
from services.common.metrics import observe_dependency
from services.common.security.identity import SCOPES, Identity
from services.common.security.metrics import JWKS_REFRESHES
from services.common.settings import ServiceSettings

log = logging.getLogger(__name__)

#: Algorithm -> the JWK key type it needs.
ALGORITHMS: dict[str, str] = {"RS256": "RSA", "ES256": "EC"}
#: Verified tokens remembered per process (cleared when full).
MAX_VERIFIED = 10_000


class InvalidToken(Unauthorized):
    """A bearer token that fails verification; ``reason`` is a short metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        quoted = detail.replace('"', "'")
        super().__init__(
            detail,
            headers={
                "WWW-Authenticate": f'Bearer error="invalid_token", error_description="{quoted}"'
            },
        )
        self.reason = reason


class IdentityProviderUnavailable(DependencyError):
    type_slug = "identity-provider-unavailable"
    title = "Identity provider unavailable"
    dependency = "jwks"


class JwksCache:
    """The signing keys of the identity provider, by key id."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float,
        max_age_s: float,
        min_refresh_s: float,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.max_age_s = max_age_s
        self.min_refresh_s = min_refresh_s
        self._client = client or httpx.AsyncClient(trust_env=False)
        self._keys: dict[str | None, PyJWK] = {}
        self._fetched_at = float("-inf")
        self._attempted_at = float("-inf")
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        await self._client.aclose()

    async def key(self, kid: str | None) -> PyJWK:
        """The key ``kid`` (refreshing when stale or unknown); InvalidToken when absent."""
        if time.monotonic() - self._fetched_at > self.max_age_s:
            await self._refresh()
        found = self._find(kid)
        if found is None:
            await self._refresh()
            found = self._find(kid)
        if found is None:
            raise InvalidToken("unknown_key", "the token's key id is not in the issuer's JWKS")
        return found

    def _find(self, kid: str | None) -> PyJWK | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    async def _refresh(self) -> None:
        async with self._lock:
            now = time.monotonic()
            if now - self._attempted_at < self.min_refresh_s:
                return  # another request refreshed just now, or refreshes are rate-limited
            self._attempted_at = now
            try:
                with observe_dependency("http:jwks", "fetch"):
                    async with asyncio.timeout(self.timeout_s):
                        response = await self._client.get(self.url)
                    response.raise_for_status()
                    keyset = PyJWKSet.from_dict(response.json())
            except (httpx.HTTPError, TimeoutError, ValueError, jwt.PyJWKSetError) as exc:
                JWKS_REFRESHES.labels("error").inc()
                log.warning("JWKS fetch failed: %r", exc)
                if not self._keys:
                    raise IdentityProviderUnavailable(
                        "the identity provider's keys (AUTH_JWKS_URL) cannot be fetched"
                    ) from exc
                return
            JWKS_REFRESHES.labels("ok").inc()
            self._keys = {
                key.key_id: key
                for key in keyset.keys
                if key.public_key_use in (None, "sig") and key.key_type in ALGORITHMS.values()
            }
            self._fetched_at = time.monotonic()


def scopes_of(claims: dict[str, Any], prefix: str) -> frozenset[str]:
    """modelfleet scopes from ``scope`` (space separated) or ``scp`` (list), prefix removed."""
    raw = claims.get("scope", claims.get("scp", ""))
    words = raw.split() if isinstance(raw, str) else [str(w) for w in raw or ()]
    return frozenset(w[len(prefix) :] for w in words if w.startswith(prefix)) & frozenset(SCOPES)


class JwtVerifier:
    """Verifies bearer tokens against one issuer, audience and JWKS."""

    def __init__(self, settings: ServiceSettings, *, client: httpx.AsyncClient | None = None):
        self.issuer = settings.auth_issuer
        self.audience = settings.auth_audience
        self.leeway_s = settings.auth_leeway_s
        self.scope_prefix = settings.auth_scope_prefix
        self.jwks = JwksCache(
            settings.auth_jwks_url,
            timeout_s=settings.auth_jwks_timeout_s,
            max_age_s=settings.auth_jwks_cache_s,
            min_refresh_s=settings.auth_jwks_min_refresh_s,
            client=client,
        )
        self._verified: dict[str, tuple[Identity, float]] = {}

    async def close(self) -> None:
        await self.jwks.close()

    async def verify(self, token: str) -> Identity:
        """The token's identity; InvalidToken (401) with the reason when it does not verify."""
        known = self._verified.get(token)
        if known is not None:
            if time.time() < known[1] + self.leeway_s:
                return known[0]
            del self._verified[token]
        identity, expires = await self._verify(token)
        if len(self._verified) >= MAX_VERIFIED:
            self._verified.clear()
        self._verified[token] = (identity, expires)
        return identity

    async def _verify(self, token: str) -> tuple[Identity, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as exc:
            raise InvalidToken("malformed", "the bearer token is not a JWT") from exc
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise InvalidToken("algorithm", f"algorithm {alg!r} is not accepted")
        key = await self.jwks.key(header.get("kid"))
        if key.key_type != ALGORITHMS[alg]:
            raise InvalidToken("algorithm", f"algorithm {alg} does not fit the key's type")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": ["exp", "iss", "sub"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("expired", "the token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise InvalidToken("not_yet_valid", "the token is not valid yet") from exc
        except jwt.InvalidIssuerError as exc:
            raise InvalidToken("wrong_issuer", "the token's issuer is not accepted") from exc
        except jwt.InvalidSignatureError as exc:
            raise InvalidToken("bad_signature", "the token's signature does not verify") from exc
        except jwt.InvalidTokenError as exc:
            raise InvalidToken("invalid", f"the token is invalid: {exc}") from exc
        if not self._audience_ok(claims):
            raise InvalidToken("wrong_audience", "the token's audience is not accepted")
        identity = Identity(
            kind="jwt",
            subject=str(claims["sub"]),
            scopes=scopes_of(claims, self.scope_prefix),
        )
        return identity, float(claims["exp"])

    def _audience_ok(self, claims: dict[str, Any]) -> bool:
        aud = claims.get("aud")
        if aud is None:  # Cognito access tokens name the app client instead
            return bool(claims.get("client_id") == self.audience)
        audiences = [aud] if isinstance(aud, str) else list(aud)
        return self.audience in audiences
