"""The exception tree of modelfleet and its mapping to RFC 9457 problem+json.

Third-party errors (tritonclient, asyncpg, nats) are translated once, at the boundary that
sees them (``triton.py``, ``db.py``, ``nats.py``), into this tree with ``raise ... from exc``.
The HTTP layer maps the tree to responses in one place (:func:`install_error_handlers`):

    ModelfleetError                 500 (never raised on purpose)
    +-- ClientError                 4xx: the caller's input is wrong
    |   +-- InvalidInput            422
    |   +-- NotFound                404
    |   +-- Conflict                409
    |   +-- PayloadTooLarge         413
    |   +-- UnsupportedMediaType    415
    |   +-- Unauthorized            401 + WWW-Authenticate: no or invalid credentials
    |   +-- Forbidden               403: the credentials lack the route's scope
    |   +-- TooManyRequests         429 + Retry-After: over the identity's rate limit
    +-- DependencyError             503 + Retry-After: a dependency is down or not ready
    |   +-- TritonUnavailable, DatabaseUnavailable, BrokerUnavailable
    |   +-- DependencyTimeout       504: a dependency missed its deadline
    |       +-- RequestTimeout      504: the request missed ``<P>_REQUEST_TIMEOUT_S``
    +-- DependencyFailed            502: a dependency answered with an error

``except DependencyError`` catches every transient failure of a dependency (down, not ready,
too slow): what a caller retries or degrades on. DependencyFailed is not transient.

Every error body is :class:`Problem` (RFC 9457 with the ``errors`` extension: one
:class:`FieldError` per invalid field); the OpenAPI document of every service names it for every
error status (:mod:`services.common.openapi`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_BASE = "https://modelfleet.dev/problems/"

FieldLocation = Literal["body", "query", "path", "header"]


class FieldError(BaseModel):
    """One invalid part of a request: where it is and what is wrong with it."""

    field: str = Field(
        description="Dotted path in its location (`rides.3.trip_distance`), `(body)`: all of it."
    )
    in_: FieldLocation = Field(alias="in", description="Where the field is.")
    message: str
    type: str = Field(description="What kind of error (`missing`, `greater_than`, `duplicate`...).")


class Problem(BaseModel):
    """An error answer: RFC 9457 problem details (``application/problem+json``).

    Extension members a problem may carry: ``errors`` (every invalid field, on a 422), and what a
    status names on its own (``checks`` of a 503 of /readyz, ``ride_id`` or ``run`` of a 409...).
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    type: str = Field(description=f"A URI naming the kind of problem ({PROBLEM_TYPE_BASE}...).")
    title: str
    status: int = Field(ge=400, le=599, description="The HTTP status of the answer.")
    detail: str
    instance: str | None = Field(default=None, description="The path the request was for.")
    errors: list[FieldError] | None = Field(default=None, description="Every invalid field.")


log = logging.getLogger(__name__)


class ModelfleetError(Exception):
    """Base of every error modelfleet raises on purpose."""

    status: ClassVar[int] = 500
    type_slug: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        detail: str,
        *,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}
        self.headers = headers or {}


class ClientError(ModelfleetError):
    status = 400
    type_slug = "bad-request"
    title = "Bad request"


class InvalidInput(ClientError):
    status = 422
    type_slug = "validation"
    title = "Invalid input"


class NotFound(ClientError):
    status = 404
    type_slug = "not-found"
    title = "Not found"


class Conflict(ClientError):
    status = 409
    type_slug = "conflict"
    title = "Conflict"


class PayloadTooLarge(ClientError):
    status = 413
    type_slug = "payload-too-large"
    title = "Payload too large"


class UnsupportedMediaType(ClientError):
    status = 415
    type_slug = "unsupported-media-type"
    title = "Unsupported media type"


class Unauthorized(ClientError):
    """Missing or invalid credentials; ``headers`` carries ``WWW-Authenticate``."""

    status = 401
    type_slug = "unauthorized"
    title = "Unauthorized"


class Forbidden(ClientError):
    status = 403
    type_slug = "forbidden"
    title = "Forbidden"


class TooManyRequests(ClientError):
    """Over the rate limit; ``headers`` carries ``Retry-After``."""

    status = 429
    type_slug = "rate-limited"
    title = "Too many requests"


class DependencyError(ModelfleetError):
    """A dependency is down or not ready: retry later."""

    status = 503
    type_slug = "dependency-unavailable"
    title = "Dependency unavailable"
    retry_after_s: ClassVar[int] = 1
    dependency: ClassVar[str] = "dependency"


class TritonUnavailable(DependencyError):
    type_slug = "triton-unavailable"
    title = "Inference server unavailable"
    dependency = "triton"


class DatabaseUnavailable(DependencyError):
    type_slug = "database-unavailable"
    title = "Database unavailable"
    dependency = "postgres"


class BrokerUnavailable(DependencyError):
    type_slug = "broker-unavailable"
    title = "Message broker unavailable"
    dependency = "nats"


class DependencyTimeout(DependencyError):
    """A dependency did not answer within its deadline (transient, like the 503s)."""

    status = 504
    type_slug = "dependency-timeout"
    title = "Dependency timed out"


class RequestTimeout(DependencyTimeout):
    """The whole request missed its deadline before its response started."""

    type_slug = "request-timeout"
    title = "Request timed out"


class DependencyFailed(ModelfleetError):
    """A dependency answered with an error that retrying will not fix."""

    status = 502
    type_slug = "dependency-failed"
    title = "Dependency failed"


def problem_response(
    *,
    status: int,
    type_slug: str,
    title: str,
    detail: str,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    """Build an RFC 9457 problem+json response."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + type_slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return Response(
        content=orjson.dumps(body),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Pydantic/FastAPI validation errors as ``{"field", "message", "type"}`` with dotted paths.

    The leading ``body``/``query``/``path`` location is kept out of ``field`` and given as
    ``in`` so a client sees ``rides.3.trip_distance``, not ``body.rides.3.trip_distance``.
    """
    out: list[dict[str, Any]] = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        where = loc[0] if loc and loc[0] in {"body", "query", "path", "header"} else "body"
        path = loc[1:] if loc and loc[0] in {"body", "query", "path", "header"} else loc
        out.append(
            {
                "field": ".".join(path) or "(body)",
                "in": where,
                "message": str(err.get("msg", "invalid")),
                "type": str(err.get("type", "value_error")),
            }
        )
    return out


def problem_for(exc: ModelfleetError, *, instance: str) -> Response:
    """The problem+json response of one error of the tree (Retry-After on 503s)."""
    headers: dict[str, str] = dict(exc.headers)
    if isinstance(exc, DependencyError) and exc.status == 503:
        headers["Retry-After"] = str(exc.retry_after_s)
    if exc.status >= 500:
        log.warning("request failed: %s", exc.detail, extra={"error_type": exc.type_slug})
    return problem_response(
        status=exc.status,
        type_slug=exc.type_slug,
        title=exc.title,
        detail=exc.detail,
        instance=instance,
        headers=headers or None,
        **exc.extra,
    )


def validation_problem(errors: Sequence[Any], *, instance: str) -> Response:
    """422 problem+json listing every invalid field (pydantic/FastAPI error dicts)."""
    fields = validation_errors(errors)
    names = ", ".join(e["field"] for e in fields[:5])
    return problem_response(
        status=422,
        type_slug=InvalidInput.type_slug,
        title=InvalidInput.title,
        detail=f"{len(fields)} invalid field(s): {names}",
        instance=instance,
        errors=fields,
    )


def unexpected_problem(*, instance: str) -> Response:
    """500 problem+json that tells the client nothing about the internals (logged instead)."""
    log.exception("unhandled error", extra={"path": instance})
    return problem_response(
        status=500,
        type_slug="internal",
        title="Internal error",
        detail="An unexpected error occurred; it has been logged.",
        instance=instance,
    )


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """Every method some route of ``app`` serves at ``path`` (a 405's ``Allow``): Starlette's
    names only those of the first route whose path matches, and a path often has several."""
    from starlette.routing import compile_path

    from services.common.security.guard import api_routes  # the guard imports this module

    methods: set[str] = set()
    for template, route in api_routes(app.routes):
        if compile_path(template)[0].match(path):
            methods.update(route.methods or ())
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    """Map the exception tree, validation errors and HTTP errors to problem+json, once."""

    async def on_modelfleet_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ModelfleetError)
        return problem_for(exc, instance=request.url.path)

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return validation_problem(exc.errors(), instance=request.url.path)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        slug = {
            400: ClientError.type_slug,
            404: "not-found",
            405: "method-not-allowed",
            413: "payload-too-large",
            415: "unsupported-media-type",
        }.get(exc.status_code, f"http-{exc.status_code}")
        headers = dict(exc.headers) if exc.headers else {}
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request.app, request.url.path))
        return problem_response(
            status=exc.status_code,
            type_slug=slug,
            title=str(exc.detail) if exc.status_code < 500 else "Server error",
            detail=str(exc.detail),
            instance=request.url.path,
            headers=headers or None,
        )

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        return unexpected_problem(instance=request.url.path)

    app.add_exception_handler(ModelfleetError, on_modelfleet_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
