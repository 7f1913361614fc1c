"""The HTTP error mapping: every failure is problem+json with the right status, never a bare 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import pytest_asyncio
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, Field

from services.common import errors
from services.common.app import create_service_app
from services.common.health import register_readiness
from services.common.settings import ServiceSettings
from tests.asgi import asgi_client


class Body(BaseModel):
    n: int = Field(ge=0)
    items: list[int] = Field(default_factory=list)


router = APIRouter()


@router.post("/echo")
async def echo(body: Body) -> dict[str, int]:
    return {"n": body.n}


@router.get("/raise/{kind}")
async def raise_kind(kind: str) -> None:
    raise {
        "triton": errors.TritonUnavailable("triton down"),
        "db": errors.DatabaseUnavailable("db down"),
        "timeout": errors.DependencyTimeout("too slow"),
        "notfound": errors.NotFound("no such ride"),
        "bug": ZeroDivisionError("secret detail"),
    }[kind]


async def failing_check() -> None:
    raise errors.TritonUnavailable("model not loaded")


async def ok_check() -> None:
    return None


@pytest_asyncio.fixture(scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        register_readiness(app, "ok", ok_check)
        register_readiness(app, "optional", failing_check, critical=False)
        yield

    app = create_service_app(
        settings=ServiceSettings(log_json=False),
        title="t",
        version="0",
        routers=[router],
        lifespan=lifespan,
    )
    async with asgi_client(app) as test_client:
        yield test_client


async def test_validation_error_names_the_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/echo", json={"n": -1, "items": [1, "x"]})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 422
    assert body["type"].endswith("/validation")
    assert {e["field"] for e in body["errors"]} == {"n", "items.1"}


async def test_malformed_json_is_422_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/echo", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("kind", "status", "retry_after"),
    [("triton", 503, "1"), ("db", 503, "1"), ("timeout", 504, None), ("notfound", 404, None)],
)
async def test_error_tree_maps_to_status(
    client: httpx.AsyncClient, kind: str, status: int, retry_after: str | None
) -> None:
    response = await client.get(f"/raise/{kind}")
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers.get("retry-after") == retry_after
    assert response.json()["instance"] == f"/raise/{kind}"


async def test_unexpected_error_is_problem_without_details(client: httpx.AsyncClient) -> None:
    response = await client.get("/raise/bug")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "secret" not in response.text


async def test_unknown_route_is_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/nope")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_request_id_is_echoed_or_made(client: httpx.AsyncClient) -> None:
    given = await client.get("/healthz", headers={"x-request-id": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = await client.get("/healthz")
    assert len(made.headers["x-request-id"]) == 32


async def test_readiness_ignores_non_critical_failures_but_reports_them(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "degraded",
        "checks": {"ok": "ok", "optional": "model not loaded"},
    }


async def test_metrics_endpoint_serves_prometheus_text(client: httpx.AsyncClient) -> None:
    await client.post("/echo", json={"n": 1})
    text = (await client.get("/metrics")).text
    assert "http_requests_total" in text
    assert "modelfleet_dependency_request_duration_seconds" in text
