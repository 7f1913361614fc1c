"""Hot JSON endpoints, declared once and served before FastAPI's routing and dependency machinery.

A prediction endpoint's own work (validate, compute features, one Triton call) costs well under
a tenth of a millisecond; FastAPI's router, dependency solver and middleware stack cost several
times that on every request. A hot route is declared once, on a :class:`ServiceRouter`:

    router = ServiceRouter(prefix="/v1", tags=["ride-duration"])

    @router.json_route("POST", "/predict", body=Ride, response_model=Prediction, scope="read",
                       summary="Predict the duration of one ride", responses=ERRORS)
    async def predict(state: RideDurationState, ride: Ride) -> PredictionBody: ...

That one declaration gives two things from the same handler: a :class:`FastJsonRoute`, which
:class:`services.common.app.ServiceApp` serves before the request enters FastAPI at all (the
body validated by pydantic-core in one call, ``model_validate_json``; the answer written with
orjson), and a FastAPI operation with the same path, body, response model, scope and OpenAPI
words, which is the contract and serves when fast routes are off
(``<SERVICE>_HTTP_FAST_ROUTES=false``). The policy (authentication, scope, body limit, deadline)
is applied to both by the security layer, in one place. Everything else a FastAPI route gets is
shared, not rewritten: the problem+json mapping (:mod:`services.common.errors`), the HTTP
metrics (:func:`observe_http`), the request id (the helpers of :class:`RequestIdMiddleware`).

A handler takes the service's typed state (:mod:`services.common.state`) and the parsed body,
and returns a JSON-able value of the response model's shape: a TypedDict on hot paths (built
without a second validation; tests check it against the model).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeVar

import orjson
from fastapi import APIRouter
from prometheus_client import Counter as CounterChild
from prometheus_client import Histogram as HistogramChild
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
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
from services.common.request_body import BodyTooLarge
from services.common.security.guard import BodyLimit, is_json_media_type, require_scope
from services.common.security.identity import Scope as ScopeName
from services.common.state import state_of

#: ``handler(state, body)``: the service's state dataclass and the parsed body.
Handler = Callable[[Any, Any], Awaitable[Any]]
H = TypeVar("H", bound=Handler)
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
    #: The body limit in bytes (0: the service's ``<P>_MAX_BODY_BYTES``) or a function of the
    #: service's settings, applied by the layer.
    max_body_bytes: BodyLimit = 0
    #: read / write / admin, checked by services.common.security before the handler runs.
    scope: str = "admin"
    #: True for the JSON door of an operation declared as an ordinary FastAPI route whose body
    #: also comes in other media types (:meth:`ServiceRouter.json_fast_path`): a request with
    #: another declared content type goes on to FastAPI.
    json_door: bool = False

    def serves(self, scope: Scope) -> bool:
        """Whether this request is the fast route's (a JSON door only takes JSON bodies)."""
        if not self.json_door:
            return True
        for name, value in scope["headers"]:
            if name == b"content-type":
                return is_json_media_type(value.decode("latin-1"))
        return True

    @cached_property
    def success_metrics(self) -> tuple[CounterChild, HistogramChild]:
        """The metric children of a successful request, looked up once."""
        return (
            HTTP_REQUESTS.labels(self.path, self.method, str(self.status)),
            HTTP_LATENCY.labels(self.path, self.method),
        )


class JsonResponse(JSONResponse):
    """A JSON response serialised with orjson (what FastAPI routes of modelfleet return).

    A :class:`~starlette.responses.JSONResponse`, so FastAPI documents a route's response model
    as the schema of what it sends (any other response class is documented ``type: string``).
    """

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


#: ``handler(request, values)``: a Starlette request on the raw scope and the path's values; it
#: answers every outcome itself (its protocol's errors included).
PathHandler = Callable[[Request, tuple[str, ...]], Awaitable[Response]]


@dataclass(frozen=True)
class FastPathRoute:
    """A hot route whose path carries values (``/v2/models/{name}/infer``), served before FastAPI.

    The FastAPI operations of the same paths stay the contract (and serve when fast routes are
    off); ``match`` reads the values from a path (None: not this route), ``template`` names
    the route in the HTTP metrics as FastAPI's would (one per shape of path).
    """

    method: str
    match: Callable[[str], tuple[str, tuple[str, ...]] | None]
    handler: PathHandler


class ServiceRouter(APIRouter):
    """An APIRouter whose hot JSON routes are declared once, with :meth:`json_route`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fast_routes: list[FastJsonRoute] = []
        self.fast_path_routes: list[FastPathRoute] = []

    def json_route(
        self,
        method: str,
        path: str,
        *,
        body: type[BaseModel],
        response_model: type[BaseModel],
        scope: ScopeName,
        status_code: int = 200,
        max_body_bytes: int = 0,
        **operation: Any,
    ) -> Callable[[H], H]:
        """Declare a hot JSON route: its fast route and its FastAPI operation, from one handler.

        ``operation`` is what FastAPI's ``add_api_route`` takes besides (``summary``,
        ``responses``, ``description``...); the operation is named after the handler.
        """

        def register(handler: H) -> H:
            self.fast_routes.append(
                FastJsonRoute(
                    method=method,
                    path=self.prefix + path,
                    body=body,
                    handler=handler,
                    status=status_code,
                    max_body_bytes=max_body_bytes,
                    scope=scope,
                )
            )
            body_name = list(inspect.signature(handler).parameters)[1]

            async def endpoint(request: Request, **values: Any) -> Response:
                result = await handler(state_of(request), values[body_name])
                return JsonResponse(result, status_code=status_code)

            endpoint.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
                [
                    inspect.Parameter(
                        "request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request
                    ),
                    inspect.Parameter(body_name, inspect.Parameter.KEYWORD_ONLY, annotation=body),
                ]
            )
            self.add_api_route(
                path,
                endpoint,
                methods=[method],
                name=handler.__name__,
                response_model=response_model,
                status_code=status_code,
                dependencies=[require_scope(scope, max_body_bytes=max_body_bytes or None)],
                **operation,
            )
            return handler

        return register

    def json_fast_path(
        self,
        method: str,
        path: str,
        *,
        body: type[BaseModel],
        scope: ScopeName,
        max_body_bytes: BodyLimit = 0,
    ) -> Callable[[H], H]:
        """The fast JSON door of an operation this router declares as an ordinary FastAPI route.

        For an operation whose body comes as JSON or in another media type (a multipart
        upload): the FastAPI route is the contract and serves the other media types; JSON
        bodies are served by ``handler(state, body)`` before FastAPI. Both must declare the
        same scope and body limit (the layer applies the fast route's policy to both).
        """

        def register(handler: H) -> H:
            self.fast_routes.append(
                FastJsonRoute(
                    method=method,
                    path=self.prefix + path,
                    body=body,
                    handler=handler,
                    max_body_bytes=max_body_bytes,
                    scope=scope,
                    json_door=True,
                )
            )
            return handler

        return register


async def _read_body(receive: Receive) -> bytes:
    """The whole body (the layer limits it: :func:`services.common.request_body.limit_body`)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def serve_fast_path_route(
    route: FastPathRoute,
    template: str,
    values: tuple[str, ...],
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    """Serve one request of ``route``: request id, the handler's answer, metrics (no FastAPI).

    ``scope["app"]`` must be the service's app (the handler's request reads its state there).
    """
    start = time.perf_counter()
    request_id = request_id_of(scope)
    token = request_id_var.set(request_id)
    try:
        response = await route.handler(Request(scope, receive), values)
    except Exception:
        response = unexpected_problem(instance=scope["path"])
    finally:
        request_id_var.reset(token)
    await response(scope, receive, with_request_id(send, request_id))
    observe_http(template, route.method, response.status_code, time.perf_counter() - start)


async def serve_fast_route(
    route: FastJsonRoute, state: Any, scope: Scope, receive: Receive, send: Send
) -> None:
    """Serve one request of ``route``: request id, body, validation, handler, errors, metrics."""
    start = time.perf_counter()
    path: str = scope["path"]
    request_id = request_id_of(scope)
    token = request_id_var.set(request_id)
    raw_id = request_id.encode("latin-1")
    try:
        body = await _read_body(receive)
        payload = route.body.model_validate_json(body or b"null")
        result = await route.handler(state, payload)
    except ValidationError as exc:
        response: Response = validation_problem(exc.errors(include_url=False), instance=path)
    except BodyTooLarge as exc:
        response = problem_for(PayloadTooLarge(str(exc.detail)), instance=path)
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
