"""The dashboards service's routes against a FAKE Prometheus (tests/fakes/prometheus_api.py): the
panel data route (one time axis, legends, variables substituted, 404 problem+json for what is not
there, Prometheus' failures mapped to 502/503/504), the pages and uPlot's files."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from services.dashboards.app import create_app
from services.dashboards.settings import DashboardsSettings
from tests.asgi import asgi_client
from tests.fakes.prometheus_api import FakePrometheusApi

REFUSED = "refused_metric"


@pytest.fixture
def prometheus() -> Iterator[FakePrometheusApi]:
    with FakePrometheusApi(series=2, refuse={REFUSED: "parse error: unexpected"}) as fake:
        yield fake


def settings_for(prometheus_url: str, **values: Any) -> DashboardsSettings:
    return DashboardsSettings(
        **{"prometheus_timeout_s": 5.0, **values},
        prometheus_url=prometheus_url,
        namespace="local",
        scrape_interval_s=5,
        log_json=False,
    )


@pytest_asyncio.fixture
async def client(prometheus: FakePrometheusApi) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(create_app(settings_for(prometheus.url))) as client:
        yield client


async def test_panel_data_runs_each_target_on_one_time_axis(
    client: httpx.AsyncClient, prometheus: FakePrometheusApi
) -> None:
    # triton.json panel 4 has two targets (queue and compute time)
    response = await client.get(
        "/v1/dashboards/modelfleet-triton/panels/4/data", params={"range_s": 600}
    )
    assert response.status_code == 200, response.text
    data = response.json()
    assert (data["dashboard"], data["panel"], data["step_s"]) == ("modelfleet-triton", 4, 5)
    assert data["end"] - data["start"] == 600 and len(data["timestamps"]) == 121
    assert [(s["ref_id"], s["label"]) for s in data["series"]] == [
        ("A", "queue ride_duration v0"),
        ("A", "queue ride_duration v1"),
        ("B", "compute ride_duration v0"),
        ("B", "compute ride_duration v1"),
    ]
    assert all(len(s["values"]) == 121 for s in data["series"])
    assert data["series"][1]["values"][:2] == [1.0, 1.1] and data["series"][1]["values"][-1] is None
    sent = [q["query"] for q in prometheus.queries]
    assert sorted(sent) == sorted(data["queries"]) and len(sent) == 2  # sent at once
    assert all('namespace=~"local"' in q and "$" not in q for q in sent)
    assert {(q["step"], q["timeout"]) for q in prometheus.queries} == {("5", "5000ms")}


async def test_legends_follow_legend_format(client: httpx.AsyncClient) -> None:
    data = (await client.get("/v1/dashboards/triton/panels/1/data")).json()
    assert [s["label"] for s in data["series"]] == ["ride_duration v0", "ride_duration v1"]
    # "{{category}}" of a series without that label: its label set instead of nothing
    quality = (await client.get("/v1/dashboards/model-quality/panels/3/data")).json()
    assert quality["series"][0]["label"] == '{model="ride_duration", version="0"}'
    assert data["end"] - data["start"] == 3600  # the dashboard's own range: now-1h


@pytest.mark.parametrize(
    "path",
    [
        "/v1/dashboards/no-such-dashboard/panels/1/data",
        "/v1/dashboards/overview/panels/999/data",
        "/d/no-such-dashboard",
    ],
)
async def test_unknown_dashboard_or_panel_is_a_404_problem(
    client: httpx.AsyncClient, prometheus: FakePrometheusApi, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/not-found")
    assert prometheus.queries == []


async def test_invalid_range_is_a_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/dashboards/overview/panels/1/data", params={"range_s": 5})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "range_s"


async def test_a_query_prometheus_refuses_is_a_502_with_its_message(
    tmp_path: Path, prometheus: FakePrometheusApi
) -> None:
    folder = tmp_path / "dashboards"
    folder.mkdir()
    (folder / "bad.json").write_text(
        '{"uid": "bad", "title": "Bad", "panels": [{"id": 1, "type": "timeseries",'
        f' "targets": [{{"expr": "rate({REFUSED}[5m])"}}]}}]}}'
    )
    async with asgi_client(create_app(settings_for(prometheus.url, folder=folder))) as client:
        response = await client.get("/v1/dashboards/bad/panels/1/data")
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/problem+json"
    assert "bad_data: parse error: unexpected" in response.json()["detail"]


async def test_prometheus_down_is_a_503_and_too_slow_a_504(prometheus: FakePrometheusApi) -> None:
    down = settings_for("http://127.0.0.1:9")  # discard port: nothing listens
    async with asgi_client(create_app(down)) as client:
        response = await client.get("/v1/dashboards/overview/panels/1/data")
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
        assert response.json()["type"].endswith("/prometheus-unavailable")
        ready = (await client.get("/readyz")).json()
        assert ready["status"] == "degraded"  # non-critical: the stack starts it before Prometheus
    prometheus.delay_s = 1.0
    slow = settings_for(prometheus.url, prometheus_timeout_s=0.3)
    async with asgi_client(create_app(slow)) as client:
        response = await client.get("/v1/dashboards/overview/panels/1/data")
    assert response.status_code == 504
    assert "within 0.3 s" in response.json()["detail"]


async def test_the_list_and_the_pages(client: httpx.AsyncClient) -> None:
    listed = (await client.get("/v1/dashboards")).json()["dashboards"]
    assert {d["stem"]: d["panels"] for d in listed} == {
        "chatbot": 8,
        "model-quality": 10,
        "model-variants": 10,
        "overview": 6,
        "streaming": 8,
        "triton": 6,
    }
    index = await client.get("/")
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    assert (
        'href="/d/modelfleet-overview"' in index.text and "Overview (golden signals)" in index.text
    )
    page = await client.get("/d/overview")
    assert page.status_code == 200
    assert page.text.count('class="panel"') == 6
    assert "grid-column: 13 / span 12; grid-row: 1 / span 8;" in page.text
    assert '<script src="/static/uplot/uPlot.iife.min.js">' in page.text
    assert "https://" not in page.text  # nothing from a CDN
    script = await client.get("/static/dashboard.js")
    assert script.status_code == 200 and "window.modelfleetDashboard" in script.text
    # a collapsed row: its header button, its panels hidden until it is opened
    chatbot = (await client.get("/d/chatbot")).text
    assert chatbot.count('aria-expanded="false"') == 1 and "(6 panels)" in chatbot
    assert chatbot.count('class="panel"') == 8 and chatbot.count(" hidden>") == 6


async def test_uplot_is_served_from_the_npm_package(client: httpx.AsyncClient) -> None:
    script = await client.get("/static/uplot/uPlot.iife.min.js")
    assert script.status_code == 200, "uPlot missing: run scripts/ensure-tools"
    assert script.headers["content-type"].startswith("text/javascript")
    assert b"uPlot" in script.content
    css = await client.get("/static/uplot/uPlot.min.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert (await client.get("/static/uplot/package.json")).status_code == 404


async def test_missing_uplot_is_a_503_naming_ensure_tools(
    tmp_path: Path, prometheus: FakePrometheusApi, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_for(prometheus.url, uplot_dir=tmp_path / "uplot")
    async with asgi_client(create_app(settings)) as client:
        started = capsys.readouterr().err  # the service's log line at start
        response = await client.get("/static/uplot/uPlot.iife.min.js")
    assert "uPlot missing in" in started and "run scripts/ensure-tools" in started
    assert response.status_code == 503
    assert "run scripts/ensure-tools" in response.json()["detail"]


def test_the_pages_are_public_in_jwt_mode_and_the_data_is_not() -> None:
    from services.common.app import ServiceApp

    settings = DashboardsSettings(
        auth_mode="jwt",
        auth_jwks_url="http://127.0.0.1:1/jwks",
        auth_issuer="i",
        auth_audience="a",
    )
    app = create_app(settings)
    assert isinstance(app, ServiceApp)
    open_paths = app.security.open_paths
    assert {"/", "/d/overview", "/d/modelfleet-overview", "/static/dashboard.js"} <= open_paths
    assert not any(p.startswith("/v1/") for p in open_paths)
