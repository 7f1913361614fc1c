"""Routes of the dashboards service: the /v1 JSON the page reads, the pages, their static files.

The browser never calls Prometheus: ``GET /v1/dashboards/{ref}/panels/{panel_id}/data`` runs the
panel's PromQL here (variables substituted, a deadline on each query) and answers one time axis
with a series per result. An unknown dashboard or panel is a 404 problem+json.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response

from services.common.errors import DependencyError, NotFound
from services.common.security import require_scope
from services.dashboards.catalogue import QueryWindow
from services.dashboards.pages import dashboard_page, index_page
from services.dashboards.panels import panel_data
from services.dashboards.schemas import DashboardList, DashboardSummary, PanelData
from services.dashboards.state import StateDep

router = APIRouter(prefix="/v1/dashboards", tags=["dashboards"])
page_router = APIRouter(tags=["page"])

STATIC = Path(__file__).parent / "static"
#: The page's own files (read once) and uPlot's (from the npm package, see ChartLibraryMissing).
OWN_FILES = {
    "dashboard.js": ((STATIC / "dashboard.js").read_bytes(), "text/javascript; charset=utf-8"),
    "dashboard.css": ((STATIC / "dashboard.css").read_bytes(), "text/css; charset=utf-8"),
}
UPLOT_FILES = {
    "uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "uPlot.min.css": "text/css; charset=utf-8",
}
#: Paths that carry no data (served without credentials); the dashboard pages are added per
#: dashboard by the app factory.
STATIC_PATHS = (
    "/",
    *(f"/static/{name}" for name in OWN_FILES),
    *(f"/static/uplot/{name}" for name in UPLOT_FILES),
)
RangeS = Annotated[
    int | None,
    Query(ge=60, le=7 * 86400, description="Seconds back from now (default: the dashboard's)."),
]


class ChartLibraryMissing(DependencyError):
    """uPlot's files are not installed (scripts/ensure-tools installs the npm package)."""

    type_slug = "chart-library-missing"
    title = "Chart library not installed"
    dependency = "uplot"


@router.get("", dependencies=[require_scope("read")])
async def list_dashboards(state: StateDep) -> DashboardList:
    """Every dashboard of the folder: uid, file stem, title, panel count."""
    return DashboardList(
        dashboards=[
            DashboardSummary(uid=d.uid, stem=d.stem, title=d.title, panels=len(d.panels))
            for d in state.catalogue
        ]
    )


@router.get(
    "/{ref}/panels/{panel_id}/data",
    dependencies=[require_scope("read")],
    responses={404: {"description": "No such dashboard or panel."}},
)
async def get_panel_data(
    state: StateDep, ref: str, panel_id: int, range_s: RangeS = None
) -> PanelData:
    """The panel's targets as range queries over the last ``range_s`` seconds."""
    dashboard = state.catalogue.find(ref)
    panel = dashboard.panel(panel_id)
    settings = state.settings
    window = QueryWindow.ending_at(
        time.time(),
        range_s=range_s or dashboard.range_s,
        max_points=settings.max_points,
        scrape_interval_s=settings.scrape_interval_s,
    )
    return await panel_data(
        state.prometheus, dashboard, panel, window=window, max_series=settings.max_series
    )


@page_router.get("/", include_in_schema=False, dependencies=[require_scope("read")])
async def index(state: StateDep) -> HTMLResponse:
    """The list of dashboards."""
    return HTMLResponse(index_page(state.catalogue, prometheus_url=state.settings.prometheus_url))


@page_router.get("/d/{ref}", include_in_schema=False, dependencies=[require_scope("read")])
async def dashboard(state: StateDep, ref: str) -> HTMLResponse:
    """One dashboard's page (its panels are filled by dashboard.js)."""
    return HTMLResponse(dashboard_page(state.catalogue.find(ref)))


@page_router.get(
    "/static/uplot/{name}", include_in_schema=False, dependencies=[require_scope("read")]
)
async def uplot_file(state: StateDep, name: str) -> Response:
    """uPlot's script and style sheet from the npm package (never a CDN)."""
    media_type = UPLOT_FILES.get(name)
    if media_type is None:
        raise NotFound(f"no file {name!r} of uPlot is served")
    path = state.settings.uplot_dir / "dist" / name
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise ChartLibraryMissing(
            f"{path} is missing: run scripts/ensure-tools (it installs the npm package uplot)"
        ) from exc
    return Response(content, media_type=media_type, headers={"cache-control": "max-age=3600"})


@page_router.get("/static/{name}", include_in_schema=False, dependencies=[require_scope("read")])
async def own_file(name: str) -> Response:
    """The page's script and style sheet."""
    found = OWN_FILES.get(name)
    if found is None:
        raise NotFound(f"no file {name!r}")
    content, media_type = found
    return Response(content, media_type=media_type, headers={"cache-control": "no-cache"})
