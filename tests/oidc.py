"""A real local OIDC-shaped issuer for tests: keys made at test time, a JWKS served over HTTP.

    async with LocalIssuer() as issuer:              # aiohttp on a free loopback port
        settings = dict(auth_mode="jwt", auth_jwks_url=issuer.jwks_url,
                        auth_issuer=issuer.issuer, auth_audience=issuer.audience)
        token = issuer.token(sub="alice", scopes=["read"])              # RS256
        token = issuer.token(sub="bob", scopes=["write"], key="ec")     # ES256

Forged tokens (``alg: none``, HS256 keyed with the public key) are built by hand, since a JWT
library refuses to make them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from services.stack.testing import free_port

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass
class SigningKey:
    kid: str
    alg: str
    private: PrivateKey

    @property
    def public_jwk(self) -> dict[str, Any]:
        algorithm = (
            jwt.algorithms.RSAAlgorithm if self.alg == "RS256" else jwt.algorithms.ECAlgorithm
        )
        jwk: dict[str, Any] = json.loads(algorithm.to_jwk(self.private.public_key()))
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}

    @property
    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def new_key(kind: str) -> SigningKey:
    if kind == "rsa":
        return SigningKey(uuid.uuid4().hex[:8], "RS256", rsa.generate_private_key(65537, 2048))
    return SigningKey(uuid.uuid4().hex[:8], "ES256", ec.generate_private_key(ec.SECP256R1()))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class LocalIssuer:
    audience: str = "modelfleet-api"
    scope_prefix: str = "modelfleet:"
    keys: dict[str, SigningKey] = field(default_factory=dict)
    published: list[str] = field(default_factory=list)
    jwks_requests: int = 0
    port: int = 0

    def __post_init__(self) -> None:
        self.port = free_port()
        for kind in ("rsa", "ec"):
            key = new_key(kind)
            self.keys[kind] = key
            self.published.append(kind)
        self._runner: web.AppRunner | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}/realms/test"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/certs"

    def add_key(self, name: str, kind: str, *, publish: bool) -> SigningKey:
        self.keys[name] = new_key(kind)
        if publish:
            self.published.append(name)
        return self.keys[name]

    def settings(self) -> dict[str, Any]:
        return {
            "auth_mode": "jwt",
            "auth_jwks_url": self.jwks_url,
            "auth_issuer": self.issuer,
            "auth_audience": self.audience,
            "auth_jwks_min_refresh_s": 0.0,
        }

    def claims(self, *, sub: str, scopes: list[str], **override: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": sub,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "scope": " ".join(self.scope_prefix + s for s in scopes),
        }
        claims.update(override)
        return {k: v for k, v in claims.items() if v is not None}

    def token(
        self,
        *,
        sub: str = "alice",
        scopes: list[str] | None = None,
        key: str = "rsa",
        **override: Any,
    ) -> str:
        signing = self.keys[key]
        claims = self.claims(sub=sub, scopes=["read"] if scopes is None else scopes, **override)
        return jwt.encode(
            claims, signing.private, algorithm=signing.alg, headers={"kid": signing.kid}
        )

    def forged(self, alg: str, *, sub: str = "mallory", scopes: list[str] | None = None) -> str:
        """``alg: none`` (no signature) or ``HS256`` keyed with the RSA public key's PEM."""
        header = {"alg": alg, "typ": "JWT", "kid": self.keys["rsa"].kid}
        claims = self.claims(sub=sub, scopes=scopes or ["admin"])
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        if alg == "none":
            return signing_input + "."
        mac = hmac.new(self.keys["rsa"].public_pem, signing_input.encode(), hashlib.sha256)
        return f"{signing_input}.{_b64(mac.digest())}"

    async def _jwks(self, request: web.Request) -> web.Response:
        self.jwks_requests += 1
        return web.json_response({"keys": [self.keys[n].public_jwk for n in self.published]})

    async def __aenter__(self) -> LocalIssuer:
        app = web.Application()
        app.router.add_get("/realms/test/protocol/openid-connect/certs", self._jwks)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    @contextmanager
    def in_thread(self) -> Iterator[LocalIssuer]:
        """Serve from a thread of its own (for servers called while the test's loop is idle)."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="local-issuer", daemon=True)
        thread.start()
        asyncio.run_coroutine_threadsafe(self.__aenter__(), loop).result(timeout=10)
        try:
            yield self
        finally:
            asyncio.run_coroutine_threadsafe(self.__aexit__(), loop).result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()
