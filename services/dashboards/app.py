"""The dashboards app factory: ``uvicorn --factory services.dashboards.app:create_app``.

The dashboards folder is read once, here (a file that is not a dashboard fails the start); the
lifespan opens the Prometheus client. Prometheus is a non-critical readiness check: the service
starts before the stack's Prometheus and answers "degraded" until it is there (each panel then
shows the 503 its data route answers). Missing uPlot files are logged at start and each of
their requests answers 503 naming scripts/ensure-tools.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.common.app import create_service_app
from services.common.health import register_readiness
from services.dashboards import api
from services.dashboards.catalogue import load_catalogue
from services.dashboards.prometheus import PrometheusClient
from services.dashboards.settings import DashboardsSettings
from services.dashboards.state import DashboardsState

log = logging.getLogger(__name__)


def create_app(settings: DashboardsSettings | None = None) -> FastAPI:
    settings = settings or DashboardsSettings()
    catalogue = load_catalogue(settings.folder, namespace=settings.namespace)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[DashboardsState]:
        missing = [
            name for name in api.UPLOT_FILES if not (settings.uplot_dir / "dist" / name).is_file()
        ]
        if missing:
            log.warning(
                "uPlot missing in %s (%s): the pages cannot draw; run scripts/ensure-tools",
                settings.uplot_dir,
                ", ".join(missing),
            )
        prometheus = PrometheusClient(
            settings.prometheus_url, timeout_s=settings.prometheus_timeout_s
        )
        register_readiness(app, "prometheus", prometheus.check_ready, critical=False)
        try:
            yield DashboardsState(settings=settings, catalogue=catalogue, prometheus=prometheus)
        finally:
            await prometheus.close()

    pages = {f"/d/{ref}" for d in catalogue for ref in (d.uid, d.stem)}
    return create_service_app(
        settings=settings,
        title="dashboards",
        version="1.0.0",
        description="The chart's Grafana dashboards on the laptop: each panel's PromQL run "
        "against Prometheus, drawn with uPlot; the list at /, a dashboard at /d/<uid>.",
        routers=[api.router, api.page_router],
        lifespan=lifespan,
        public_paths=(*api.STATIC_PATHS, *sorted(pages)),
    )
