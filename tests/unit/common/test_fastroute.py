"""Fast routes: same validation, errors, metrics and request id as FastAPI routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest_asyncio
from fastapi import FastAPI
from prometheus_client import REGISTRY
from pydantic import BaseModel, Field

from services.common.app import create_service_app
from services.common.errors import DependencyTimeout
from services.common.fastroute import ServiceRouter
from services.common.logging import request_id_var
from services.common.settings import ServiceSettings
from services.common.state import ServiceState
from tests.asgi import asgi_client


class Item(BaseModel):
    n: int = Field(ge=0)


class Doubled(BaseModel):
    double: int
    request_id: str
    tag: str


@dataclass(kw_only=True)
class TagState(ServiceState):
    tag: str


router = ServiceRouter()


@router.json_route(
    "POST", "/double", body=Item, response_model=Doubled, scope="admin", max_body_bytes=64
)
async def double(state: TagState, item: Item) -> dict[str, Any]:
    if item.n == 13:
        raise DependencyTimeout("unlucky")
    if item.n == 666:
        raise RuntimeError("secret internals")
    return {"double": item.n * 2, "request_id": request_id_var.get(), "tag": state.tag}


@pytest_asyncio.fixture(scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    settings = ServiceSettings(log_json=False)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[TagState]:
        yield TagState(settings=settings, tag="from-state")

    app = create_service_app(
        settings=settings, title="t", version="0", routers=[router], lifespan=lifespan
    )
    async with asgi_client(app) as test_client:
        yield test_client


def served(status: str) -> float:
    value = REGISTRY.get_sample_value(
        "http_requests_total", {"handler": "/double", "method": "POST", "status": status}
    )
    return value or 0.0


async def test_serves_the_handler_with_state_and_request_id(client: httpx.AsyncClient) -> None:
    before = served("200")
    response = await client.post("/double", json={"n": 21}, headers={"x-request-id": "r-1"})
    assert response.status_code == 200
    assert response.json() == {"double": 42, "request_id": "r-1", "tag": "from-state"}
    assert response.headers["x-request-id"] == "r-1"
    assert served("200") == before + 1


async def test_invalid_body_is_422_naming_the_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/double", json={"n": -1})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == "n"
    broken = await client.post("/double", content=b"{")
    assert broken.status_code == 422
    empty = await client.post("/double")
    assert empty.status_code == 422


async def test_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post("/double", content=b'{"n": 1' + b" " * 100 + b"}")
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"


async def test_errors_map_like_fastapi_routes(client: httpx.AsyncClient) -> None:
    timeout = await client.post("/double", json={"n": 13})
    assert timeout.status_code == 504
    assert timeout.json()["type"].endswith("/dependency-timeout")
    before = served("500")
    bug = await client.post("/double", json={"n": 666})
    assert bug.status_code == 500
    assert "secret" not in bug.text
    assert served("500") == before + 1


async def test_other_methods_and_paths_reach_fastapi(client: httpx.AsyncClient) -> None:
    # not a fast route: FastAPI answers (the one declaration gave it the POST operation only)
    other_method = await client.get("/double")
    assert other_method.status_code == 405
    assert other_method.headers["content-type"] == "application/problem+json"
    assert (await client.get("/healthz")).status_code == 200
