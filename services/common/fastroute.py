"""Hot JSON endpoints served beneath FastAPI's routing and dependency machinery.

A prediction endpoint's own work (validate, compute features, one Triton call) costs well under
a tenth of a millisecond; FastAPI's router, dependency solver and middleware stack cost several
times that on every request. A :class:`FastJsonRoute` serves one method + path straight from an
ASGI middleware: the body is validated by pydantic-core in one call
(``model_validate_json``), the handler runs, the answer is written with orjson. Everything
else a FastAPI route gets is kept and shared, not rewritten: the same problem+json mapping
(:mod:`services.common.errors`), the same HTTP metrics (:func:`observe_http`), the request id
(the outer :class:`RequestIdMiddleware`). The service still declares the same route in FastAPI,
calling the same handler: that declaration is the OpenAPI contract, and serves when fast routes
are turned off (``<SERVICE>_HTTP_FAST_ROUTES=false``).

    FastJsonRoute(method="POST", path="/v1/predict", body=Ride, handler=predict_one)
    # handler(state, ride) -> a JSON-able dict; state is the app's ``app.state``
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError
from starlette.datastructures import State
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from services.common.errors import (
    ModelfleetError,
    PayloadTooLarge,
    problem_for,
    unexpected_problem,
    validation_problem,
)
from services.common.metrics import observe_http

Handler = Callable[[State, Any], Awaitable[Any]]

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
_JSON_HEADERS = [(b"content-type", b"application/json")]


@dataclass(frozen=True)
class FastJsonRoute:
    """One JSON endpoint: ``body`` is the pydantic model of the request body."""

    method: str
    path: str
    body: type[BaseModel]
    handler: Handler
    status: int = 200
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES


class _BodyTooLarge(Exception):
    pass


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class FastRoutes:
    """ASGI middleware serving the given routes itself and passing everything else on."""

    def __init__(self, app: ASGIApp, *, routes: Sequence[FastJsonRoute]) -> None:
        self.app = app
        self.routes = {(route.method, route.path): route for route in routes}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = (
            self.routes.get((scope["method"], scope["path"])) if scope["type"] == "http" else None
        )
        if route is None:
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = await self._serve(route, scope, receive, send)
        observe_http(route.path, route.method, status, time.perf_counter() - start)

    async def _serve(self, route: FastJsonRoute, scope: Scope, receive: Receive, send: Send) -> int:
        path: str = scope["path"]
        try:
            body = await _read_body(receive, route.max_body_bytes)
            payload = route.body.model_validate_json(body or b"null")
            result = await route.handler(scope["app"].state, payload)
        except ValidationError as exc:
            response: Response = validation_problem(exc.errors(include_url=False), instance=path)
        except _BodyTooLarge:
            response = problem_for(
                PayloadTooLarge(f"request body over {route.max_body_bytes} bytes"), instance=path
            )
        except ModelfleetError as exc:
            response = problem_for(exc, instance=path)
        except Exception:
            response = unexpected_problem(instance=path)
        else:
            content = orjson.dumps(result)
            await send(
                {
                    "type": "http.response.start",
                    "status": route.status,
                    "headers": [*_JSON_HEADERS, (b"content-length", str(len(content)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": content})
            return route.status
        await response(scope, receive, send)
        return response.status_code
