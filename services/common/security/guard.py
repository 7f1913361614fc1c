"""The security layer in front of every service: who calls, may they, how much, how long.

:class:`SecurityLayer` wraps a service's ASGI entry (fast routes and FastAPI alike, see
:class:`services.common.app.ServiceApp`). For every request except the open paths
(``/healthz``, ``/readyz``, ``/metrics``, ``/docs``, ``/redoc``, ``/openapi.json``, the OIP's
``/v2/health/live`` and ``/v2/health/ready``) it:

1. authenticates (``AUTH_MODE=jwt``): an OIDC bearer token or an API key (``Authorization:
   Bearer mfk_...`` or ``X-API-Key``), else 401 + ``WWW-Authenticate``;
2. rate-limits per identity (API key id / subject; client IP when AUTH_MODE=none): 429 +
   ``Retry-After`` (``<P>_RATE_LIMIT_PER_S``, off at 0);
3. checks the route's scope: 403;
4. limits the request body (the route's ``max_body_bytes``, else ``<P>_MAX_BODY_BYTES``): 413,
   with the one limiter of :mod:`services.common.request_body`; a route whose body is a JSON
   model (a fast route, a FastAPI body model) refuses another declared content type: 415;
5. bounds the time until the response starts (``<P>_REQUEST_TIMEOUT_S``, or the caller's
   ``X-Request-Budget-Ms`` when shorter, kept for what the request calls:
   :mod:`services.common.deadline`): 504, at once when the caller's budget is already spent.

Every policy is applied here, in one place, for fast routes and FastAPI routes alike: the layer
finds the route a request is for (the fast-route table, else the FastAPI route that matches)
before anything else runs. Routes declare their policy once, with :func:`require_scope` (a
FastAPI route's dependency, also what puts the bearer scheme into OpenAPI) or through
:meth:`services.common.fastroute.ServiceRouter.json_route` (which declares both):

    @router.post("/feedback", dependencies=[require_scope("write")])
    @router.post("/classify", dependencies=[require_scope("read", max_body_bytes=image_limit)])
    @router.json_route("POST", "/predict", body=Ride, response_model=Prediction, scope="read")

A body limit is bytes, or a function of the service's settings (``lambda s: s.max_upload_bytes
+ 64 * 1024``) resolved once when the layer is built. A route that declares no scope needs
``admin`` (secure by default). With AUTH_MODE=none and no rate limit, a request costs a route
lookup, a body counter and a deadline timer more than without the layer.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, params
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.routing import BaseRoute, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.deadline import BUDGET_HEADER, parse_budget, request_deadline
from services.common.errors import (
    Forbidden,
    ModelfleetError,
    RequestTimeout,
    TooManyRequests,
    Unauthorized,
    UnsupportedMediaType,
    problem_for,
)
from services.common.logging import identity_var
from services.common.metrics import observe_http
from services.common.middleware import request_id_of, with_request_id
from services.common.request_body import limit_body
from services.common.security.apikeys import ApiKeyVerifier, InvalidApiKey
from services.common.security.identity import Identity, identity_of_request
from services.common.security.identity import Scope as ScopeName
from services.common.security.jwt import InvalidToken, JwtVerifier
from services.common.security.metrics import AUTH_FAILURES, IdentityLabels
from services.common.security.ratelimit import TokenBuckets
from services.common.settings import ServiceSettings

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset(
    {
        "/healthz",
        "/readyz",
        "/metrics",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/openapi.json",
        # the Open Inference Protocol's probes (services.common.oip): what /healthz and /readyz
        # are, for clients and orchestrators (KServe) that probe the protocol's paths
        "/v2/health/live",
        "/v2/health/ready",
    }
)
IDENTITY_SCOPE_KEY = "modelfleet.identity"
_BEARER = HTTPBearer(auto_error=False, description="An OIDC access token or an API key (mfk_...)")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="modelfleet"'}


BodyLimit = int | Callable[[ServiceSettings], int] | None


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    """What a route demands: a scope (None: authentication only), a body limit (0: default),
    and whether its body is a JSON model (then another declared content type is a 415)."""

    template: str
    scope: str | None
    max_body_bytes: int
    json_body: bool = False


def is_json_media_type(content_type: str) -> bool:
    """``application/json`` or ``application/<anything>+json``, parameters ignored."""
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def has_json_body(route: APIRoute) -> bool:
    """The route's body is a pydantic model FastAPI reads as JSON (not a form, not its own)."""
    field = route.body_field
    return field is not None and not isinstance(field.field_info, params.Form)


class ScopeCheck:
    """The dependency :func:`require_scope` returns: a declaration the layer reads."""

    def __init__(self, scope: ScopeName, max_body_bytes: BodyLimit) -> None:
        self.scope = scope
        self.max_body_bytes = max_body_bytes

    async def __call__(
        self, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]
    ) -> None:
        """Nothing to do: the layer has checked; this puts the bearer scheme into OpenAPI."""


def require_scope(scope: ScopeName, *, max_body_bytes: BodyLimit = None) -> Any:
    """Declare a route's scope (and optionally its body limit): ``dependencies=[...]``."""
    return Depends(ScopeCheck(scope, max_body_bytes))


def body_limit_of(limit: BodyLimit, settings: ServiceSettings | None) -> int:
    """A declared body limit in bytes (0: the service's default)."""
    if callable(limit):
        return limit(settings) if settings is not None else 0
    return limit or 0


def policy_of_route(route: APIRoute, settings: ServiceSettings | None = None) -> RoutePolicy:
    """A FastAPI route's policy from its :class:`ScopeCheck` (none declared: ``admin``)."""
    checks = [d.dependency for d in route.dependencies if isinstance(d.dependency, ScopeCheck)]
    if not checks:
        log.warning("route %s %s declares no scope: it needs 'admin'", route.methods, route.path)
        return RoutePolicy(
            template=route.path, scope="admin", max_body_bytes=0, json_body=has_json_body(route)
        )
    check = checks[-1]
    return RoutePolicy(
        template=route.path,
        scope=check.scope,
        max_body_bytes=body_limit_of(check.max_body_bytes, settings),
        json_body=has_json_body(route),
    )


def api_routes(routes: Iterable[BaseRoute], prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    """(full path, route) of every FastAPI route of an app, through included routers.

    FastAPI 0.165 keeps an included router as one entry of ``app.routes`` (its
    ``original_router`` holds the routes, its ``include_context`` the prefix).
    """
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, route
            continue
        included: APIRouter | None = getattr(route, "original_router", None)
        context: Any = getattr(route, "include_context", None)
        if included is not None:
            yield from api_routes(included.routes, prefix + (context.prefix if context else ""))


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


BUDGET_HEADER_BYTES = BUDGET_HEADER.encode()


class SecurityLayer:
    """ASGI wrapper: authentication, rate limit, scope, body limit, request deadline."""

    def __init__(
        self,
        *,
        settings: ServiceSettings,
        app: FastAPI,
        inner: ASGIApp,
        fast_policies: dict[tuple[str, str], RoutePolicy],
        service_pool: Callable[[], asyncpg.Pool | None],
        open_paths: frozenset[str] = OPEN_PATHS,
    ) -> None:
        self.app = app
        self.inner = inner
        self.service_pool = service_pool
        self.open_paths = open_paths
        self.settings = settings
        self.fast_policies = fast_policies
        self.timeout_s = settings.request_timeout_s
        jwt_mode = settings.auth_mode == "jwt"
        self.jwt = JwtVerifier(settings) if jwt_mode else None
        self.api_keys = (
            ApiKeyVerifier(
                pepper=settings.auth_api_key_pepper.get_secret_value(),
                cache_s=settings.auth_api_key_cache_s,
                timeout_s=settings.database_timeout_s,
            )
            if jwt_mode
            else None
        )
        self.buckets = (
            TokenBuckets(rate=settings.rate_limit_per_s, burst=settings.rate_limit_burst)
            if settings.rate_limit_per_s > 0
            else None
        )
        self.checks = jwt_mode or self.buckets is not None
        self.labels = IdentityLabels(settings.identity_metrics_top_n)
        self.unrouted = RoutePolicy("unrouted", None, settings.max_body_bytes)
        self._route_policies: list[tuple[re.Pattern[str], set[str], RoutePolicy]] | None = None
        self._own_pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()

    async def close(self) -> None:
        if self.jwt is not None:
            await self.jwt.close()
        if self._own_pool is not None:
            await self._own_pool.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if path in self.open_paths:
            await self.inner(scope, receive, send)
            return
        start = time.perf_counter()
        policy = self.fast_policies.get((scope["method"], path)) or self.policy_of(scope)
        if not self.checks:
            await self._serve(scope, receive, send, policy, start=start)
            return
        try:
            identity = await self._admit(scope, policy)
        except ModelfleetError as exc:
            await self._refuse(exc, scope, receive, send, policy, start)
            return
        scope[IDENTITY_SCOPE_KEY] = identity
        identity_token = identity_of_request.set(identity)
        label_token = identity_var.set(identity.label)
        try:
            await self._serve(scope, receive, send, policy, start=start)
        finally:
            identity_var.reset(label_token)
            identity_of_request.reset(identity_token)

    def policy_of(self, scope: Scope) -> RoutePolicy:
        """The policy of the FastAPI route a request is for (as the router will match it)."""
        if self._route_policies is None:
            self._route_policies = [
                (
                    compile_path(path)[0],
                    route.methods or set(),
                    replace(policy_of_route(route, self.settings), template=path),
                )
                for path, route in api_routes(self.app.routes)
                if path not in self.open_paths
            ]
        path: str = scope["path"]
        method: str = scope["method"]
        for pattern, methods, policy in self._route_policies:
            if method in methods and pattern.match(path):
                return policy
        return self.unrouted

    async def _admit(self, scope: Scope, policy: RoutePolicy) -> Identity:
        """Authenticate, rate-limit, and check the route's scope."""
        if self.jwt is not None:
            identity = await self._authenticate(scope)
        else:
            client = scope.get("client")
            identity = Identity(
                kind="anonymous",
                subject=f"ip:{client[0] if client else 'unknown'}",
                scopes=frozenset({"admin"}),
            )
        if self.buckets is not None:
            wait_s = self.buckets.take(identity.label)
            if wait_s > 0:
                self.labels.count(identity.label, "rate_limited")
                raise TooManyRequests(
                    f"over {self.settings.rate_limit_per_s:g} requests/s for {identity.label}",
                    headers={"Retry-After": str(max(1, math.ceil(wait_s)))},
                )
        if policy.scope is not None and not identity.allows(policy.scope):
            AUTH_FAILURES.labels("missing_scope").inc()
            self.labels.count(identity.label, "forbidden")
            raise Forbidden(f"this route needs the {policy.scope!r} scope")
        self.labels.count(identity.label, "admitted")
        return identity

    async def _authenticate(self, scope: Scope) -> Identity:
        assert self.jwt is not None and self.api_keys is not None
        authorization = _header(scope, b"authorization")
        api_key = _header(scope, b"x-api-key")
        try:
            if authorization is not None:
                kind, _, credential = authorization.partition(" ")
                credential = credential.strip()
                if kind.lower() != "bearer" or not credential:
                    raise InvalidToken("malformed", "use Authorization: Bearer <token>")
                if credential.startswith("mfk_"):
                    return await self.api_keys.verify(await self._pool(), credential)
                return await self.jwt.verify(credential)
            if api_key is not None:
                return await self.api_keys.verify(await self._pool(), api_key.strip())
        except (InvalidToken, InvalidApiKey) as exc:
            AUTH_FAILURES.labels(exc.reason).inc()
            log.info("authentication failed: %s", exc.detail, extra={"reason": exc.reason})
            raise
        AUTH_FAILURES.labels("missing").inc()
        raise Unauthorized(
            "credentials are required: a bearer token or an API key", headers=_CHALLENGE
        )

    async def _pool(self) -> asyncpg.Pool:
        """The service's pool when it has one, else a small pool of the layer's own."""
        pool = self.service_pool()
        if pool is not None:
            return pool
        async with self._pool_lock:
            if self._own_pool is None:
                password = self.settings.database_password
                self._own_pool = await asyncpg.create_pool(
                    self.settings.database_url,
                    password=password.get_secret_value() if password is not None else None,
                    min_size=0,
                    max_size=2,
                    command_timeout=self.settings.database_timeout_s,
                    timeout=self.settings.database_timeout_s,
                )
            return self._own_pool

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        policy: RoutePolicy,
        *,
        start: float,
    ) -> None:
        if policy.json_body:
            content_type = _header(scope, b"content-type")
            if content_type is not None and not is_json_media_type(content_type):
                refused = UnsupportedMediaType(
                    f"content type {content_type!r}: send application/json"
                )
                await self._refuse(refused, scope, receive, send, policy, start)
                return
        receive = limit_body(
            receive,
            policy.max_body_bytes or self.settings.max_body_bytes,
            declared=_header(scope, b"content-length"),
        )
        budget_s = parse_budget(_header(scope, BUDGET_HEADER_BYTES))
        if budget_s is not None and budget_s <= 0:
            spent = RequestTimeout(f"the caller's budget ({BUDGET_HEADER}) is spent")
            await self._refuse(spent, scope, receive, send, policy, start)
            return
        timeout_s = self.timeout_s if budget_s is None else min(self.timeout_s, budget_s)
        deadline = asyncio.timeout(timeout_s)
        started = False

        async def send_started(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                deadline.reschedule(None)  # a streaming response (SSE) may run on
            await send(message)

        try:
            with request_deadline(budget_s):
                async with deadline:
                    await self.inner(scope, receive, send_started)
        except TimeoutError:
            if started or not deadline.expired():
                raise
            exc = RequestTimeout(f"no response within {timeout_s:g} s")
            await self._refuse(exc, scope, receive, send, policy, start)

    async def _refuse(
        self,
        exc: ModelfleetError,
        scope: Scope,
        receive: Receive,
        send: Send,
        policy: RoutePolicy,
        start: float,
    ) -> None:
        response = problem_for(exc, instance=scope["path"])
        await response(scope, receive, with_request_id(send, request_id_of(scope)))
        observe_http(policy.template, scope["method"], exc.status, time.perf_counter() - start)
