"""Hot JSON endpoints served before FastAPI's routing and dependency machinery.

A prediction endpoint's own work (validate, compute features, one Triton call) costs well under
a tenth of a millisecond; FastAPI's router, dependency solver and middleware stack cost several
times that on every request. A :class:`FastJsonRoute` serves one method + path before the
request enters FastAPI at all (:class:`services.common.app.ServiceApp` dispatches it first):
the body is validated by pydantic-core in one call (``model_validate_json``), the handler runs,
the answer is written with orjson. Everything else a FastAPI route gets is shared, not
rewritten: the problem+json mapping (:mod:`services.common.errors`), the HTTP metrics
(:func:`observe_http`), the request id (the helpers of :class:`RequestIdMiddleware`). The
service declares the same route in FastAPI too, calling the same handler: that declaration is
the OpenAPI contract, and serves when fast routes are off (``<SERVICE>_HTTP_FAST_ROUTES=false``).

    FastJsonRoute(method="POST", path="/v1/predict", body=Ride, handler=predict_one, scope="read")
    # handler(state, ride) -> a JSON-able dict; state is the app's ``app.state``
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import orjson
from prometheus_client import Counter as CounterChild
from prometheus_client import Histogram as HistogramChild
from pydantic import BaseModel, ValidationError
from starlette.datastructures import State
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from services.common.errors import (
    ModelfleetError,
    PayloadTooLarge,
    problem_for,
    unexpected_problem,
    validation_problem,
)
from services.common.logging import REQUEST_ID_HEADER, request_id_var
from services.common.metrics import HTTP_LATENCY, HTTP_REQUESTS, observe_http
from services.common.middleware import request_id_of, with_request_id

Handler = Callable[[State, Any], Awaitable[Any]]

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
_JSON_HEADERS = [(b"content-type", b"application/json")]
REQUEST_ID_HEADER_BYTES = REQUEST_ID_HEADER.encode()


@dataclass(frozen=True)
class FastJsonRoute:
    """One JSON endpoint: ``body`` is the pydantic model of the request body."""

    method: str
    path: str
    body: type[BaseModel]
    handler: Handler
    status: int = 200
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: read / write / admin, checked by services.common.security before the handler runs.
    scope: str = "admin"

    @cached_property
    def success_metrics(self) -> tuple[CounterChild, HistogramChild]:
        """The metric children of a successful request, looked up once."""
        return (
            HTTP_REQUESTS.labels(self.path, self.method, str(self.status)),
            HTTP_LATENCY.labels(self.path, self.method),
        )


class JsonResponse(Response):
    """A JSON response serialised with orjson (what FastAPI routes of modelfleet return)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


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


async def serve_fast_route(
    route: FastJsonRoute, state: State, scope: Scope, receive: Receive, send: Send
) -> None:
    """Serve one request of ``route``: request id, body, validation, handler, errors, metrics."""
    start = time.perf_counter()
    path: str = scope["path"]
    request_id = request_id_of(scope)
    token = request_id_var.set(request_id)
    raw_id = request_id.encode("latin-1")
    try:
        body = await _read_body(receive, route.max_body_bytes)
        payload = route.body.model_validate_json(body or b"null")
        result = await route.handler(state, payload)
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
                "headers": [
                    *_JSON_HEADERS,
                    (b"content-length", str(len(content)).encode()),
                    (REQUEST_ID_HEADER_BYTES, raw_id),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})
        requests_ok, latency = route.success_metrics
        requests_ok.inc()
        latency.observe(time.perf_counter() - start)
        return
    finally:
        request_id_var.reset(token)
    await response(scope, receive, with_request_id(send, request_id))
    observe_http(route.path, route.method, response.status_code, time.perf_counter() - start)
