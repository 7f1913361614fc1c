"""The security layer end to end: a real local issuer (JWKS over HTTP), real tokens, API keys in
the session's Postgres, rate limits, body limits, deadlines, CORS, identity in metrics.

The app under test is a small probe service built with the same factory as every service
(``create_service_app``): one route per scope, an undeclared route, a fast route, a slow route.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from prometheus_client import REGISTRY
from pydantic import BaseModel

from services.common.app import create_service_app
from services.common.fastroute import ServiceRouter
from services.common.logging import identity_var
from services.common.security import current_identity, require_scope
from services.common.security.apikeys import apply_security_migrations, create_key, revoke_key
from services.common.settings import ServiceSettings
from services.stack.settings import StackSettings
from services.stack.supervisor import Stack
from tests.asgi import asgi_client
from tests.oidc import LocalIssuer

PROBLEM = "application/problem+json"


class Echo(BaseModel):
    text: str = ""


class EchoAnswer(BaseModel):
    text: str
    who: str | None


async def fast_echo(state: object, body: Echo) -> dict[str, Any]:
    identity = current_identity()
    return {"text": body.text, "who": identity.label if identity else None}


def probe_app(**overrides: Any) -> FastAPI:
    settings = ServiceSettings(service_name="probe", log_json=False, **overrides)
    router = ServiceRouter(prefix="/v1")
    router.json_route("POST", "/fast", body=Echo, response_model=EchoAnswer, scope="read")(
        fast_echo
    )

    @router.get("/read", dependencies=[require_scope("read")])
    async def read() -> dict[str, Any]:
        identity = current_identity()
        return {"who": identity.label if identity else None, "log_identity": identity_var.get()}

    @router.post("/write", dependencies=[require_scope("write")])
    async def write(body: Echo) -> dict[str, Any]:
        return {"text": body.text}

    @router.put("/admin", dependencies=[require_scope("admin")])
    async def admin() -> dict[str, Any]:
        return {"ok": True}

    @router.get("/undeclared")
    async def undeclared() -> dict[str, Any]:
        return {"ok": True}

    @router.get("/slow", dependencies=[require_scope("read")])
    async def slow() -> dict[str, Any]:
        await asyncio.sleep(5)
        return {"ok": True}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield

    return create_service_app(
        settings=settings,
        title="probe",
        version="1",
        routers=[router],
        lifespan=lifespan,
    )


Client = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest_asyncio.fixture(scope="module")
async def issuer() -> AsyncIterator[LocalIssuer]:
    async with LocalIssuer() as running:
        yield running


@pytest_asyncio.fixture(scope="module")
async def client(issuer: LocalIssuer) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(probe_app(**issuer.settings())) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].endswith("/" + slug)
    return body


def assert_unauthorized(response: httpx.Response) -> None:
    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")


# -- tokens ---------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["rsa", "ec"])
async def test_valid_token_is_served(
    client: httpx.AsyncClient, issuer: LocalIssuer, key: str
) -> None:
    response = await client.get(
        "/v1/read", headers=bearer(issuer.token(sub=f"user-{key}", key=key))
    )
    assert response.status_code == 200
    assert response.json() == {"who": f"user-{key}", "log_identity": f"user-{key}"}


async def test_missing_credentials_get_401_with_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/read")
    assert_unauthorized(response)
    assert 'realm="modelfleet"' in response.headers["www-authenticate"]
    assert_unauthorized(await client.get("/v1/read", headers={"authorization": "Basic YTpi"}))


async def test_open_paths_need_no_credentials(client: httpx.AsyncClient) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert (await client.get(path)).status_code == 200, path


@pytest.mark.parametrize(
    ("claims", "detail"),
    [
        ({"exp": -120}, "expired"),
        ({"nbf": 300}, "not valid yet"),
        ({"iss": "https://evil.example/realms/test"}, "issuer"),
        ({"aud": "another-api"}, "audience"),
    ],
)
async def test_rejected_claims(
    client: httpx.AsyncClient, issuer: LocalIssuer, claims: dict[str, Any], detail: str
) -> None:
    now = int(time.time())
    override = {k: (now + v if k in ("exp", "nbf") else v) for k, v in claims.items()}
    response = await client.get("/v1/read", headers=bearer(issuer.token(**override)))
    assert_unauthorized(response)
    assert detail in response.json()["detail"]
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_clock_skew_is_tolerated(client: httpx.AsyncClient, issuer: LocalIssuer) -> None:
    now = int(time.time())
    token = issuer.token(exp=now - 10, nbf=now + 10)  # within AUTH_LEEWAY_S (30 s)
    assert (await client.get("/v1/read", headers=bearer(token))).status_code == 200


async def test_a_remembered_token_still_expires(issuer: LocalIssuer) -> None:
    app = probe_app(**issuer.settings(), auth_leeway_s=0)
    token = bearer(issuer.token(exp=int(time.time()) + 2))
    async with asgi_client(app) as client:
        assert (await client.get("/v1/read", headers=token)).status_code == 200
        assert (await client.get("/v1/read", headers=token)).status_code == 200  # remembered
        await asyncio.sleep(3)
        response = await client.get("/v1/read", headers=token)
    assert_unauthorized(response)
    assert "expired" in response.json()["detail"]


async def test_cognito_access_token_audience_is_client_id(
    client: httpx.AsyncClient, issuer: LocalIssuer
) -> None:
    token = issuer.token(aud=None, client_id=issuer.audience)
    assert (await client.get("/v1/read", headers=bearer(token))).status_code == 200
    token = issuer.token(aud=None, client_id="someone-else")
    assert_unauthorized(await client.get("/v1/read", headers=bearer(token)))


async def test_bad_signature(client: httpx.AsyncClient, issuer: LocalIssuer) -> None:
    impostor = issuer.add_key("impostor", "rsa", publish=False)
    impostor.kid = issuer.keys["rsa"].kid  # the published key's id, another private key
    response = await client.get("/v1/read", headers=bearer(issuer.token(key="impostor")))
    assert_unauthorized(response)
    assert "signature" in response.json()["detail"]


async def test_unknown_kid_refreshes_the_jwks_then_rejects(
    client: httpx.AsyncClient, issuer: LocalIssuer
) -> None:
    issuer.add_key("rotated", "ec", publish=False)
    before = issuer.jwks_requests
    response = await client.get("/v1/read", headers=bearer(issuer.token(key="rotated")))
    assert_unauthorized(response)
    assert "key id" in response.json()["detail"]
    assert issuer.jwks_requests == before + 1
    issuer.published.append("rotated")  # the provider rotates: the next refresh finds it
    response = await client.get("/v1/read", headers=bearer(issuer.token(key="rotated")))
    assert response.status_code == 200


@pytest.mark.parametrize("alg", ["none", "HS256"])
async def test_forged_algorithms_are_refused(
    client: httpx.AsyncClient, issuer: LocalIssuer, alg: str
) -> None:
    response = await client.get("/v1/read", headers=bearer(issuer.forged(alg)))
    assert_unauthorized(response)
    assert "algorithm" in response.json()["detail"]


async def test_garbage_token_is_401(client: httpx.AsyncClient) -> None:
    assert_unauthorized(await client.get("/v1/read", headers=bearer("not-a-jwt")))


# -- scopes ---------------------------------------------------------------------------------
async def test_missing_scope_is_403(client: httpx.AsyncClient, issuer: LocalIssuer) -> None:
    reader = bearer(issuer.token(scopes=["read"]))
    body = assert_problem(
        await client.post("/v1/write", json={"text": "x"}, headers=reader), 403, "forbidden"
    )
    assert "'write'" in body["detail"]
    assert_problem(await client.put("/v1/admin", headers=reader), 403, "forbidden")
    writer = bearer(issuer.token(scopes=["write"]))
    assert (await client.post("/v1/write", json={"text": "x"}, headers=writer)).status_code == 200
    assert_problem(await client.get("/v1/read", headers=writer), 403, "forbidden")


async def test_admin_passes_every_scope(client: httpx.AsyncClient, issuer: LocalIssuer) -> None:
    admin = bearer(issuer.token(scopes=["admin"]))
    assert (await client.get("/v1/read", headers=admin)).status_code == 200
    assert (await client.post("/v1/write", json={}, headers=admin)).status_code == 200
    assert (await client.put("/v1/admin", headers=admin)).status_code == 200


async def test_a_route_without_a_declared_scope_needs_admin(
    client: httpx.AsyncClient, issuer: LocalIssuer
) -> None:
    reader = bearer(issuer.token(scopes=["read", "write"]))
    assert_problem(await client.get("/v1/undeclared", headers=reader), 403, "forbidden")
    admin = bearer(issuer.token(scopes=["admin"]))
    assert (await client.get("/v1/undeclared", headers=admin)).status_code == 200


async def test_fast_route_is_guarded_the_same_way(
    client: httpx.AsyncClient, issuer: LocalIssuer
) -> None:
    assert_unauthorized(await client.post("/v1/fast", json={"text": "hi"}))
    writer = bearer(issuer.token(scopes=["write"]))
    assert_problem(
        await client.post("/v1/fast", json={"text": "hi"}, headers=writer), 403, "forbidden"
    )
    reader = bearer(issuer.token(sub="fast-reader", scopes=["read"]))
    response = await client.post("/v1/fast", json={"text": "hi"}, headers=reader)
    assert response.status_code == 200
    assert response.json() == {"text": "hi", "who": "fast-reader"}


# -- API keys (the session's Postgres) ------------------------------------------------------
@pytest_asyncio.fixture(scope="module")
async def pool(stack: Stack, stack_settings: StackSettings) -> AsyncIterator[asyncpg.Pool]:
    db = await asyncpg.create_pool(stack_settings.database_url, min_size=0, max_size=2)
    await apply_security_migrations(db)
    yield db
    await db.close()


async def test_api_key_scopes_and_revocation(
    issuer: LocalIssuer, pool: asyncpg.Pool, stack_settings: StackSettings
) -> None:
    created = await create_key(pool, name="probe-reader", scopes=["read"], created_by="test")
    stored = await pool.fetchrow("select key_hash from api_keys where key_id = $1", created.key_id)
    assert stored is not None and created.key not in stored["key_hash"]  # only a hash is kept
    app = probe_app(
        **issuer.settings(), database_url=stack_settings.database_url, auth_api_key_cache_s=0.5
    )
    async with asgi_client(app) as client:
        for headers in (bearer(created.key), {"x-api-key": created.key}):
            response = await client.get("/v1/read", headers=headers)
            assert response.status_code == 200
            assert response.json()["who"] == f"apikey:{created.key_id}"
        assert_problem(
            await client.post("/v1/write", json={}, headers={"x-api-key": created.key}),
            403,
            "forbidden",
        )
        assert_unauthorized(await client.get("/v1/read", headers={"x-api-key": created.key + "x"}))
        await revoke_key(pool, created.key_id)
        refused_after = None
        start = time.monotonic()
        while time.monotonic() - start < 5:
            response = await client.get("/v1/read", headers={"x-api-key": created.key})
            if response.status_code == 401:
                refused_after = time.monotonic() - start
                break
            await asyncio.sleep(0.1)
        assert refused_after is not None and refused_after <= 1.5  # the cache bound (0.5 s)
        assert "revoked" in response.json()["detail"]


# -- abuse limits ---------------------------------------------------------------------------
async def test_burst_over_the_rate_limit_gets_429(issuer: LocalIssuer) -> None:
    app = probe_app(**issuer.settings(), rate_limit_per_s=0.5, rate_limit_burst=5)
    alice, bob = bearer(issuer.token(sub="alice")), bearer(issuer.token(sub="bob"))
    async with asgi_client(app) as client:
        statuses = [(await client.get("/v1/read", headers=alice)).status_code for _ in range(5)]
        assert statuses == [200] * 5
        response = await client.get("/v1/read", headers=alice)
        assert_problem(response, 429, "rate-limited")
        assert int(response.headers["retry-after"]) >= 1
        assert (await client.get("/v1/read", headers=bob)).status_code == 200  # per identity
        assert_problem(await client.post("/v1/fast", json={}, headers=alice), 429, "rate-limited")


async def test_under_the_rate_limit_nothing_is_refused(issuer: LocalIssuer) -> None:
    app = probe_app(**issuer.settings(), rate_limit_per_s=1000, rate_limit_burst=50)
    headers = bearer(issuer.token(sub="steady"))
    async with asgi_client(app) as client:
        responses = await asyncio.gather(
            *(client.get("/v1/read", headers=headers) for _ in range(50))
        )
    assert [r.status_code for r in responses] == [200] * 50


async def test_rate_limit_by_client_ip_without_auth() -> None:
    async with asgi_client(probe_app(rate_limit_per_s=0.5, rate_limit_burst=2)) as client:
        assert [(await client.get("/v1/read")).status_code for _ in range(3)] == [200, 200, 429]


async def test_body_over_the_limit_is_413(issuer: LocalIssuer) -> None:
    app = probe_app(**issuer.settings(), max_body_bytes=2048)
    writer = bearer(issuer.token(scopes=["write"]))
    async with asgi_client(app) as client:
        response = await client.post("/v1/write", json={"text": "x" * 4096}, headers=writer)
        assert_problem(response, 413, "payload-too-large")

        async def chunks() -> AsyncIterator[bytes]:  # no content-length: counted while read
            yield b'{"text": "'
            yield b"x" * 4096
            yield b'"}'

        response = await client.post(
            "/v1/write", content=chunks(), headers={**writer, "content-type": "application/json"}
        )
        assert_problem(response, 413, "payload-too-large")


async def test_slow_request_gets_504() -> None:
    async with asgi_client(probe_app(request_timeout_s=0.3)) as client:
        started = time.monotonic()
        response = await client.get("/v1/slow")
    assert_problem(response, 504, "request-timeout")
    assert time.monotonic() - started < 3


async def test_cors_is_off_unless_configured() -> None:
    origin = {"origin": "https://shop.example"}
    async with asgi_client(probe_app()) as client:
        assert (
            "access-control-allow-origin"
            not in (await client.get("/v1/read", headers=origin)).headers
        )
    async with asgi_client(probe_app(cors_origins="https://shop.example")) as client:
        response = await client.get("/v1/read", headers=origin)
        assert response.headers["access-control-allow-origin"] == "https://shop.example"
        preflight = await client.options(
            "/v1/read", headers={**origin, "access-control-request-method": "GET"}
        )
        assert preflight.status_code == 200


# -- identity in metrics --------------------------------------------------------------------
def _identity_count(identity: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "modelfleet_identity_requests_total", {"identity": identity, "outcome": outcome}
    )
    return value or 0.0


async def test_per_identity_metrics_are_bounded(issuer: LocalIssuer) -> None:
    app = probe_app(**issuer.settings(), identity_metrics_top_n=1)
    async with asgi_client(app) as client:
        other_before = _identity_count("other", "admitted")
        await client.get("/v1/read", headers=bearer(issuer.token(sub="first-user")))
        await client.get("/v1/read", headers=bearer(issuer.token(sub="second-user")))
        await client.post("/v1/write", json={}, headers=bearer(issuer.token(sub="first-user")))
    assert _identity_count("first-user", "admitted") >= 1
    assert _identity_count("first-user", "forbidden") >= 1
    assert _identity_count("second-user", "admitted") == 0
    assert _identity_count("other", "admitted") == other_before + 1


def test_cli_apikey_create_list_revoke(
    pool: asyncpg.Pool,
    stack_settings: StackSettings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from services.cli import main

    monkeypatch.setenv("DATABASE_URL", stack_settings.database_url)
    assert main(["apikey", "--by", "ops", "create", "cli-scorer", "--scopes", "read,write"]) == 0
    lines = capsys.readouterr().out.splitlines()
    key_id = lines[0].split()[2]
    assert lines[1].startswith(f"mfk_{key_id}_") and "shown once" in lines[2]
    assert main(["apikey", "list"]) == 0
    listing = capsys.readouterr().out
    assert key_id in listing and "read,write" in listing and lines[1] not in listing
    assert main(["apikey", "--by", "ops", "revoke", key_id]) == 0
    assert main(["apikey", "revoke", "000000000000"]) == 2  # unknown key: a clear message
    assert main(["apikey", "create", "bad", "--scopes", "root"]) == 2
    assert "revoked" in (capsys.readouterr().out + "")
    audit_rows = asyncio.run(_audit_rows(stack_settings.database_url, f"apikey:{key_id}"))
    assert audit_rows == [("ops", "apikey.create"), ("ops", "apikey.revoke")]


async def _audit_rows(dsn: str, target: str) -> list[tuple[str, str]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "select actor, action from audit_log where target = $1 order by id", target
        )
    finally:
        await conn.close()
    return [(r["actor"], r["action"]) for r in rows]
