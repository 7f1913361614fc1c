"""The security layer finds every request's route and its declared policy, in one place.

Included routers (FastAPI keeps them as one entry of ``app.routes``), path parameters, methods,
open paths, fast routes and body limits given as a function of the settings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from pydantic import BaseModel

from services.common.app import ServiceApp, create_service_app
from services.common.fastroute import ServiceRouter
from services.common.security import require_scope
from services.common.settings import ServiceSettings


class Body(BaseModel):
    n: int = 0


def app_under_test() -> ServiceApp:
    settings = ServiceSettings(log_json=False, max_body_bytes=2048)
    items = APIRouter(prefix="/v1/items")
    admin = APIRouter(prefix="/v1/admin", dependencies=[require_scope("admin")])
    hot = ServiceRouter(prefix="/v1")

    @items.post(
        "/upload",
        dependencies=[require_scope("write", max_body_bytes=lambda s: 3 * s.max_body_bytes)],
    )
    async def upload() -> dict[str, Any]:
        return {}

    @items.get("/{item_id}", dependencies=[require_scope("read")])
    async def get_item(item_id: str) -> dict[str, Any]:
        return {}

    @items.post("/{item_id}", dependencies=[require_scope("write", max_body_bytes=4096)])
    async def put_item(item_id: str) -> dict[str, Any]:
        return {}

    @admin.put("/table")
    async def put_table() -> dict[str, Any]:
        return {}

    @hot.json_route("POST", "/hot", body=Body, response_model=Body, scope="read")
    async def hot_route(state: object, body: Body) -> dict[str, Any]:
        return {"n": body.n}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield

    app = create_service_app(
        settings=settings,
        title="t",
        version="0",
        routers=[items, admin, hot],
        lifespan=lifespan,
    )
    assert isinstance(app, ServiceApp)
    return app


def policy(app: ServiceApp, method: str, path: str) -> tuple[str, str | None, int]:
    found = app.security.fast_policies.get((method, path)) or app.security.policy_of(
        {"type": "http", "method": method, "path": path, "headers": []}
    )
    return found.template, found.scope, found.max_body_bytes


def test_routes_of_included_routers_have_their_declared_scope() -> None:
    app = app_under_test()
    assert policy(app, "GET", "/v1/items/42") == ("/v1/items/{item_id}", "read", 0)
    assert policy(app, "POST", "/v1/items/42") == ("/v1/items/{item_id}", "write", 4096)
    assert policy(app, "PUT", "/v1/admin/table") == ("/v1/admin/table", "admin", 0)


def test_a_limit_may_be_a_function_of_the_settings() -> None:
    # declared before /{item_id}, so it is matched first, by the router and by the layer
    assert policy(app_under_test(), "POST", "/v1/items/upload") == (
        "/v1/items/upload",
        "write",
        6144,
    )


def test_unknown_paths_and_methods_are_unrouted() -> None:
    app = app_under_test()
    assert policy(app, "GET", "/v1/nothing") == ("unrouted", None, 2048)
    assert policy(app, "DELETE", "/v1/items/42") == ("unrouted", None, 2048)


def test_hot_routes_are_served_with_their_policy_and_documented() -> None:
    app = app_under_test()
    assert policy(app, "POST", "/v1/hot") == ("/v1/hot", "read", 0)
    operation = app.openapi()["paths"]["/v1/hot"]["post"]
    assert operation["operationId"].startswith("hot_route")
    assert "200" in operation["responses"]
