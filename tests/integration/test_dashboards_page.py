"""The chart's dashboards on the laptop, in a real headless browser (Debian's chromium): the local
stack's own Prometheus (services/stack/monitoring.py) scrapes real services after some traffic,
the dashboards service (services/dashboards) runs each panel's PromQL there, and every panel a
started component feeds draws data. One screenshot per dashboard is saved (paths printed; -s).

The stack is the module's own, as `make up` starts it: the taxi app (backend, three workers: the
streaming dashboard), ride-duration with a canary and a shadow variant and outcomes (model
variants), the classifier with feedback (model quality), the chatbot answering questions on an
uploaded PDF (chatbot), Triton (triton), every service (overview), then Alertmanager,
Prometheus scraping every second, and the dashboards page. The traffic is what
tests/chart/test_dashboards_live.py sends to show every query has data. Without `--llm`, the
chatbot dashboard's LLM panels stay in their collapsed row (as in Grafana, not queried until
opened); opened, they are fetched (and empty: no LLM here; test_dashboards_live.py has them with
data).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from models.repository import build_repository
from services.dashboards.catalogue import load_catalogue
from services.dashboards.settings import DashboardsSettings
from services.stack import monitoring
from services.stack.testing import running_stack, settings_for_tests
from tests.browser import Page, chromium_path, headless_chromium
from tests.chart.test_dashboards_live import _classify, _load, _questions, _rides, _variants

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(900),
    pytest.mark.skipif(
        chromium_path() is None, reason="chromium missing: run scripts/ensure-tools"
    ),
]

COMPONENTS = [
    "postgres",
    "nats",
    "triton",
    "ride-duration",
    "classifier",
    "backend",
    "chatbot",
    "worker-tip",
    "worker-cost",
    "worker-dynamic-duration",
    "dashboards",
    "alertmanager",
    "prometheus",
]
#: The chatbot dashboard's row fed by a generator, collapsed until opened.
LLM_ROW = "Generation by an LLM (modelfleet up --llm; the chart's llm component)"
RANGE_S = 180  # the stack is young: its last three minutes
WIDTH = 1400


@dataclass(frozen=True)
class Served:
    dashboards: str  # the dashboards service's base URL
    prometheus: str


def _wait(predicate: Any, *, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def _up_jobs(prometheus: str) -> set[str]:
    body = httpx.get(f"{prometheus}/api/v1/query", params={"query": "up == 1"}, timeout=5).json()
    return {sample["metric"]["job"] for sample in body["data"]["result"]}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    if not monitoring.installed():
        pytest.fail(f"{monitoring.MISSING_HINT} (scripts/ensure-tools)")
    home = tmp_path_factory.mktemp("dashboards-page")
    settings = settings_for_tests(home, monitoring_interval_s=1)
    build_repository(settings.paths.model_repository, seed=7, rows=5_000, log=lambda _: None)
    with running_stack(settings, COMPONENTS):
        host = settings.host
        prometheus = f"http://{host}:{settings.prometheus_port}"
        scraped = {
            c for c in COMPONENTS if c not in {"postgres", "nats", "alertmanager", "prometheus"}
        }
        _wait(lambda: scraped <= _up_jobs(prometheus), timeout_s=60, what=f"{scraped} scraped")
        _rides(f"http://{host}:{settings.backend_port}", count=20)
        _classify(f"http://{host}:{settings.classifier_port}", rounds=8)
        # twice, like the rest: a rate needs the counters to grow after their first scrape
        _questions(f"http://{host}:{settings.chatbot_port}", count=3)
        _variants(
            f"http://{host}:{settings.ride_duration_port}",
            settings.triton_grpc_url,
            settings.paths.model_repository,
        )
        _load(f"http://{host}:{settings.ride_duration_port}", seconds=6)
        _rides(f"http://{host}:{settings.backend_port}", count=20)
        _classify(f"http://{host}:{settings.classifier_port}", rounds=8)
        _questions(f"http://{host}:{settings.chatbot_port}", count=3, first=3)
        time.sleep(4)  # a few scrapes (every second) after the last request
        yield Served(f"http://{host}:{settings.dashboards_port}", prometheus)


async def _screenshot(page: Page) -> bytes:
    """The whole page as a PNG: the viewport grown to the page's height first."""
    height = int(await page.evaluate("document.documentElement.scrollHeight"))
    await page.send(
        "Emulation.setDeviceMetricsOverride",
        width=WIDTH,
        height=height,
        deviceScaleFactor=1,
        mobile=False,
    )
    shot = await page.send("Page.captureScreenshot", format="png")
    return base64.b64decode(shot["data"])


async def test_every_dashboard_draws_its_panels_with_data(
    served: Served, tmp_path_factory: pytest.TempPathFactory
) -> None:
    shots = tmp_path_factory.mktemp("dashboard-screenshots")
    catalogue = load_catalogue(DashboardsSettings().folder)
    report: list[str] = []
    async with headless_chromium() as page:
        await page.send(
            "Emulation.setDeviceMetricsOverride",
            width=WIDTH,
            height=900,
            deviceScaleFactor=1,
            mobile=False,
        )
        await page.goto(f"{served.dashboards}/")
        listed = await page.evaluate(
            "[...document.querySelectorAll('#dashboards tbody tr')].map((r) =>"
            " [r.querySelector('a').getAttribute('href'), Number(r.cells[1].textContent)])"
        )
        assert listed == [[f"/d/{d.uid}", len(d.panels)] for d in catalogue]
        (shots / "index.png").write_bytes(await _screenshot(page))

        for dashboard in catalogue:
            await page.goto(f"{served.dashboards}/d/{dashboard.uid}?range_s={RANGE_S}&refresh=0")
            await page.wait_for(
                "window.modelfleetDashboard && window.modelfleetDashboard.rounds >= 1",
                timeout_s=60,
            )
            summary = await page.evaluate("window.modelfleetDashboard")
            drawn = await page.evaluate(
                "[...document.querySelectorAll('.panel')].map((p) => [Number(p.dataset.panelId),"
                " Number(p.dataset.series), p.querySelectorAll('.uplot canvas').length])"
            )
            path = shots / f"{dashboard.stem}.png"
            path.write_bytes(await _screenshot(page))
            report.append(
                f"{dashboard.uid}: {summary['withData']}/{summary['shown']} panels with data"
                f" ({summary['collapsed']} in collapsed rows),"
                f" screenshot {path}"
            )
            assert summary["panels"] == len(dashboard.panels)
            collapsed = {p.id for p in dashboard.panels if p.collapsed}
            assert summary["collapsed"] == len(collapsed)
            assert summary["shown"] + summary["collapsed"] == summary["panels"]
            assert summary["errors"] == 0, json.dumps(summary["perPanel"], indent=1)
            empty = [p["title"] for p in summary["perPanel"].values() if p["series"] == 0]
            assert empty == [], f"{dashboard.uid}: panels without data: {sorted(empty)}"
            # each panel with data is a drawn uPlot chart (its canvas), its series counted
            for panel_id, series, canvases in drawn:
                if series > 0:
                    assert canvases >= 1, (dashboard.uid, panel_id)
            if collapsed:
                await _open_collapsed_rows(page, dashboard.uid, collapsed)
    print("\n" + "\n".join(report))  # shown with -s


async def _open_collapsed_rows(page: Page, uid: str, collapsed: set[int]) -> None:
    """Clicking a collapsed row's header shows its panels and fetches them (no failure)."""
    assert uid == "modelfleet-chatbot", f"{uid}: a collapsed row no test opens"
    titles = await page.evaluate(
        "[...document.querySelectorAll('h2.row button[aria-expanded=false]')]"
        ".map((b) => b.firstChild.textContent.trim())"
    )
    assert titles == [LLM_ROW]
    rounds = int(await page.evaluate("window.modelfleetDashboard.rounds"))
    await page.evaluate("document.querySelector('h2.row button').click()")
    await page.wait_for(f"window.modelfleetDashboard.rounds > {rounds}", timeout_s=60)
    summary = await page.evaluate("window.modelfleetDashboard")
    assert summary["collapsed"] == 0
    assert {int(i) for i in summary["perPanel"]} >= collapsed
    assert summary["errors"] == 0, json.dumps(summary["perPanel"], indent=1)
    hidden = await page.evaluate("document.querySelectorAll('.panel[hidden]').length")
    assert hidden == 0


def test_the_data_route_never_lets_the_browser_reach_prometheus(served: Served) -> None:
    """The page's requests stay on the service (no CORS); its data carries the PromQL run."""
    page = httpx.get(f"{served.dashboards}/d/overview", timeout=5).text
    assert served.prometheus not in page
    data = httpx.get(
        f"{served.dashboards}/v1/dashboards/overview/panels/1/data",
        params={"range_s": RANGE_S},
        timeout=10,
    ).json()
    assert data["queries"] == ['sum by (job) (rate(http_requests_total{namespace=~"local"}[5m]))']
    jobs = {s["label"] for s in data["series"]}
    assert {"ride-duration", "classifier", "backend"} <= jobs
