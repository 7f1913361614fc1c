"""The app factory every service uses: one FastAPI app, the same plumbing everywhere.

It wires, once: JSON logs, the request-id middleware, problem+json errors, ``/healthz`` and
``/readyz``, ``/metrics`` (prometheus-fastapi-instrumentator plus the process's own metrics and
its latency budget, :meth:`~services.common.settings.ServiceSettings.latency_budget`),
the security layer (authentication, scopes, rate limits, body limits, request deadline, CORS;
:mod:`services.common.security`), the hot JSON routes of the service's routers
(:class:`~services.common.fastroute.ServiceRouter`), the OpenAPI document's statuses, media
types and security from each route's policy (:mod:`services.common.openapi`), and the service's
lifespan, which opens its
clients, registers readiness checks and yields the service's typed state
(:mod:`services.common.state`). A state with a pool gets the security tables (API keys, audit
log) migrated at start.

    def create_app(settings: RideDurationSettings | None = None) -> FastAPI:
        settings = settings or RideDurationSettings()
        return create_service_app(settings=settings, title="ride-duration", version="1",
                                  routers=[api.router], lifespan=lifespan)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import APIRouter, FastAPI
from prometheus_fastapi_instrumentator import Instrumentator
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from services.common import health
from services.common.errors import install_error_handlers
from services.common.fastroute import (
    FastJsonRoute,
    FastPathRoute,
    JsonResponse,
    ServiceRouter,
    serve_fast_path_route,
    serve_fast_route,
)
from services.common.logging import configure_logging
from services.common.metrics import export_latency_budget, instrumentator_http_metrics
from services.common.middleware import RequestIdMiddleware
from services.common.openapi import install_contract
from services.common.security.apikeys import apply_security_migrations
from services.common.security.guard import (
    OPEN_PATHS,
    RoutePolicy,
    SecurityLayer,
    body_limit_of,
)
from services.common.settings import ServiceSettings
from services.common.state import ServiceState

#: A service's lifespan: opens its clients, yields its state (None: nothing of its own).
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[ServiceState | None]]

_UNINSTRUMENTED = ["/metrics", "/healthz", "/readyz"]


class ServiceApp(FastAPI):
    """A FastAPI app behind the security layer, serving its fast routes before FastAPI's stack.

    HTTP requests enter through ``http_entry``: CORS (when configured), then
    :class:`~services.common.security.guard.SecurityLayer`, then :meth:`dispatch`.
    """

    fast_routes: dict[tuple[str, str], FastJsonRoute]
    fast_path_routes: list[FastPathRoute]
    http_entry: ASGIApp
    security: SecurityLayer
    #: What the service's lifespan yielded (None until it has started).
    service_state: ServiceState | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.http_entry(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A fast route when one matches, else FastAPI."""
        if self.fast_routes:
            route = self.fast_routes.get((scope["method"], scope["path"]))
            if route is not None and route.serves(scope):
                await serve_fast_route(route, self.service_state, scope, receive, send)
                return
        for path_route in self.fast_path_routes:
            if path_route.method == scope["method"]:
                matched = path_route.match(scope["path"])
                if matched is not None:
                    scope["app"] = self
                    template, values = matched
                    await serve_fast_path_route(path_route, template, values, scope, receive, send)
                    return
        await super().__call__(scope, receive, send)


def create_service_app(
    *,
    settings: ServiceSettings,
    title: str,
    version: str,
    description: str = "",
    routers: Sequence[APIRouter],
    lifespan: Lifespan,
    public_paths: Collection[str] = (),
) -> FastAPI:
    """Build a service's FastAPI app; ``lifespan`` owns the service's own resources.

    The hot JSON routes of ``routers`` (see :mod:`services.common.fastroute`) are served
    before FastAPI's routing unless ``settings.http_fast_routes`` is false. ``public_paths``
    are served without credentials like health and metrics: only for what carries no data (a
    static page whose own API calls send the caller's token).
    """
    configure_logging(
        level=settings.log_level, json_logs=settings.log_json, service=settings.service_name
    )

    @asynccontextmanager
    async def app_lifespan(app: FastAPI) -> AsyncIterator[None]:
        assert isinstance(app, ServiceApp)
        app.state.readiness = {}
        try:
            async with lifespan(app) as state:
                # a lifespan with no clients of its own (a probe, a test) may yield None
                app.service_state = state or ServiceState(settings=settings)
                state = app.service_state
                if state.pool is not None:
                    await apply_security_migrations(state.pool)
                yield
        finally:
            app.service_state = None
            await app.security.close()

    app = ServiceApp(
        title=title,
        version=version,
        description=description,
        lifespan=app_lifespan,
        default_response_class=JsonResponse,
        # a JSON body without a content type is read as JSON, as the fast routes read it
        strict_content_type=False,
    )
    app.state.readiness = {}
    install_error_handlers(app)
    app.include_router(health.router)
    for router in routers:
        app.include_router(router)

    instrumentator = Instrumentator(
        should_group_status_codes=False,
        excluded_handlers=_UNINSTRUMENTED,
    )
    instrumentator.add(instrumentator_http_metrics)
    export_latency_budget(settings.latency_budget())
    instrumentator.instrument(app).expose(app, include_in_schema=False, should_gzip=False)
    app.add_middleware(RequestIdMiddleware)
    fast_routes = [
        route
        for router in routers
        if isinstance(router, ServiceRouter)
        for route in router.fast_routes
    ]
    app.fast_routes = (
        {(route.method, route.path): route for route in fast_routes}
        if settings.http_fast_routes
        else {}
    )
    app.fast_path_routes = (
        [
            route
            for router in routers
            if isinstance(router, ServiceRouter)
            for route in router.fast_path_routes
        ]
        if settings.http_fast_routes
        else []
    )
    open_paths = OPEN_PATHS | frozenset(public_paths)
    install_contract(app, settings, open_paths=open_paths)
    app.security = SecurityLayer(
        settings=settings,
        app=app,
        inner=app.dispatch,
        open_paths=open_paths,
        service_pool=lambda: app.service_state.pool if app.service_state is not None else None,
        fast_policies={
            key: RoutePolicy(
                route.path,
                route.scope,
                body_limit_of(route.max_body_bytes, settings),
                json_body=not route.json_door,
            )
            for key, route in app.fast_routes.items()
        },
    )
    origins = settings.cors_origin_list
    app.http_entry = (
        CORSMiddleware(
            app.security,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["authorization", "content-type", "x-api-key", "x-request-id"],
            expose_headers=["x-request-id", "retry-after", "location"],
        )
        if origins
        else app.security
    )
    return app
