"""The OpenAPI document tells what a route answers: derived from its policy, once, for all routes.

A small service built by the same factory: a JSON body route, a hot route, a route with a path
parameter, an event stream; in AUTH_MODE=none and jwt, with and without a rate limit. And what the
document promises the service does: 415 for a JSON route given another media type, a 405 naming
every method of its path.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, ConfigDict
from starlette.responses import StreamingResponse

from services.common import sse
from services.common.app import create_service_app
from services.common.errors import PROBLEM_JSON, Problem, validation_problem
from services.common.fastroute import ServiceRouter
from services.common.openapi import hoist_defs
from services.common.security import require_scope
from services.common.settings import ServiceSettings
from tests.asgi import asgi_client

JWT = {
    "auth_mode": "jwt",
    "auth_jwks_url": "http://127.0.0.1:9/jwks",
    "auth_issuer": "http://127.0.0.1:9",
    "auth_audience": "test",
}


class Item(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    n: int


class Inner(BaseModel):
    x: int


class Outer(BaseModel):
    inner: Inner


def app_under_test(**settings: Any) -> FastAPI:
    items = APIRouter(prefix="/v1/items")
    hot = ServiceRouter(prefix="/v1")

    @items.post("", response_model=Item, dependencies=[require_scope("write")])
    async def create(item: Item) -> Item:
        return item

    @items.get("/{item_id}", response_model=Item, dependencies=[require_scope("read")])
    async def read(item_id: int) -> Item:
        return Item(n=item_id)

    @items.delete("/{item_id}", dependencies=[require_scope("admin")])
    async def delete(item_id: int) -> None:
        return None

    @items.get(
        "/{item_id}/events",
        response_class=StreamingResponse,
        responses={200: {"content": {sse.MEDIA_TYPE: sse.openapi_content({"outer": Outer})}}},
        dependencies=[require_scope("read")],
    )
    async def events(item_id: int) -> StreamingResponse:
        raise NotImplementedError

    @hot.json_route("POST", "/hot", body=Item, response_model=Item, scope="read")
    async def hot_route(state: object, body: Item) -> dict[str, Any]:
        return {"n": body.n}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield

    return create_service_app(
        settings=ServiceSettings(log_json=False, **settings),
        title="t",
        version="0",
        routers=[items, hot],
        lifespan=lifespan,
    )


def _responses(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    responses: dict[str, Any] = document["paths"][path][method]["responses"]
    return responses


def test_a_success_is_documented_with_the_model_sent_and_errors_as_problems() -> None:
    document = app_under_test().openapi()
    created = _responses(document, "post", "/v1/items")
    assert created["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Item"
    }
    # a body FastAPI reads: 400, 413, 415, 422; every guarded route: 503 (+ Retry-After), 504
    assert sorted(created) == ["200", "400", "413", "415", "422", "503", "504"]
    for status in ("400", "413", "415", "422", "503", "504"):
        assert created[status]["content"] == {
            PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}
        }
    assert created["503"]["headers"]["Retry-After"]["required"] is True
    assert all("x-request-id" in response["headers"] for response in created.values())
    # a path parameter: 422; the hot route documents its model like any other
    assert sorted(_responses(document, "get", "/v1/items/{item_id}")) == [
        "200",
        "422",
        "503",
        "504",
    ]
    hot = _responses(document, "post", "/v1/hot")
    assert hot["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Item")
    # FastAPI's own validation error is gone: our 422 is a problem
    assert "HTTPValidationError" not in document["components"]["schemas"]
    problem = document["components"]["schemas"]["Problem"]
    assert problem["properties"]["errors"]["anyOf"][0]["items"] == {
        "$ref": "#/components/schemas/FieldError"
    }
    # open paths answer without the guard's statuses
    assert sorted(_responses(document, "get", "/healthz")) == ["200"]


def test_security_is_documented_only_when_it_is_enforced() -> None:
    none = json.dumps(app_under_test().openapi())
    assert '"security"' not in none and "securitySchemes" not in none
    assert '"401"' not in none and '"403"' not in none

    document = app_under_test(**JWT).openapi()
    schemes = document["components"]["securitySchemes"]
    assert schemes["BearerToken"]["scheme"] == "bearer"
    assert schemes["ApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": schemes["ApiKey"]["description"],
    }
    operation = document["paths"]["/v1/items"]["post"]
    assert operation["security"] == [{"BearerToken": []}, {"ApiKey": []}]
    assert operation["responses"]["401"]["headers"]["WWW-Authenticate"]["required"] is True
    assert "403" in operation["responses"]
    assert "security" not in document["paths"]["/healthz"]["get"]


def test_a_rate_limit_adds_429_with_retry_after() -> None:
    assert "429" not in _responses(app_under_test().openapi(), "post", "/v1/items")
    limited = _responses(app_under_test(rate_limit_per_s=5).openapi(), "post", "/v1/items")
    assert limited["429"]["headers"]["Retry-After"]["required"] is True


def test_an_event_stream_names_each_event_and_its_data_model() -> None:
    document = app_under_test().openapi()
    ok = _responses(document, "get", "/v1/items/{item_id}/events")["200"]
    assert list(ok["content"]) == [sse.MEDIA_TYPE]  # no application/json for a stream
    (event,) = ok["content"][sse.MEDIA_TYPE]["schema"]["oneOf"]
    assert event["properties"]["event"] == {"const": "outer"}
    data = event["properties"]["data"]
    assert data["contentMediaType"] == "application/json"
    # the model's nested schema moved into components, its reference rewritten
    assert data["contentSchema"]["properties"]["inner"] == {"$ref": "#/components/schemas/Inner"}
    assert document["components"]["schemas"]["Inner"]["properties"]["x"]["type"] == "integer"


def test_two_different_schemas_of_one_name_are_refused() -> None:
    schemas: dict[str, Any] = {"A": {"type": "string"}}
    with pytest.raises(ValueError, match="'A'"):
        hoist_defs({"$defs": {"A": {"type": "integer"}}}, schemas)


def test_the_problem_model_is_what_the_service_sends() -> None:
    response = validation_problem(
        [{"loc": ("body", "n"), "msg": "bad", "type": "int_type"}], instance="/v1/items"
    )
    body = json.loads(bytes(response.body))
    assert Problem.model_validate(body).errors is not None
    assert body["errors"] == [{"field": "n", "in": "body", "message": "bad", "type": "int_type"}]


async def test_a_json_route_refuses_another_media_type_with_415_and_reads_json_without_one() -> (
    None
):
    async with asgi_client(app_under_test()) as client:
        for path in ("/v1/items", "/v1/hot"):  # a FastAPI route and a fast route
            refused = await client.post(
                path, content=b'{"n": 1}', headers={"content-type": "text/plain"}
            )
            assert refused.status_code == 415, path
            assert refused.headers["content-type"] == PROBLEM_JSON
            typed = await client.post(
                path, content=b'{"n": 1}', headers={"content-type": "application/json"}
            )
            assert typed.status_code == 200, path
        untyped = await client.post("/v1/items", content=b'{"n": 1}')
        assert untyped.status_code == 200
        # strict: a number as text is not an integer
        as_text = await client.post("/v1/items", json={"n": "1"})
        assert as_text.status_code == 422


async def test_a_405_names_every_method_of_the_path() -> None:
    async with asgi_client(app_under_test()) as client:
        response = await client.put("/v1/items/7")
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET"
