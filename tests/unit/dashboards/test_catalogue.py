"""Dashboard JSON -> panels and PromQL: every shipped panel has a query, every variable of every
query is replaced, and the replacement is valid PromQL (promtool parses it)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from services.common.errors import NotFound
from services.dashboards.catalogue import (
    QueryWindow,
    load_catalogue,
    parse_dashboard,
    substitute,
    variable_values,
)
from services.dashboards.settings import DashboardsSettings

SHIPPED = DashboardsSettings().folder
WINDOW = QueryWindow.ending_at(1_700_000_000, range_s=3600, max_points=240, scrape_interval_s=15)


def test_the_folder_is_the_one_the_chart_ships() -> None:
    assert SHIPPED == Path(__file__).parents[3] / "monitoring" / "dashboards"
    files = sorted(p.stem for p in SHIPPED.glob("*.json"))
    assert [d.stem for d in load_catalogue(SHIPPED)] == files


def test_every_panel_of_every_shipped_dashboard_has_a_query_with_its_variables_replaced() -> None:
    catalogue = load_catalogue(SHIPPED, namespace="local")
    panels = 0
    for dashboard in catalogue:
        raw = json.loads((SHIPPED / f"{dashboard.stem}.json").read_text())
        rows = [p for p in raw["panels"] if p["type"] == "row"]
        inside = sum(len(r.get("panels", [])) for r in rows)
        assert len(dashboard.panels) == len(raw["panels"]) - len(rows) + inside, dashboard.uid
        assert dashboard.variables == {"namespace": "local"}
        for panel in dashboard.panels:
            panels += 1
            assert panel.queries, f"{dashboard.uid} / {panel.title}: no query"
            for query in panel.queries:
                expr = substitute(query.expr, dashboard.variables, WINDOW)
                assert "$" not in expr and "[[" not in expr, expr
                if "namespace" in query.expr:
                    assert 'namespace=~"local"' in expr, expr
    assert panels >= 30


def test_every_substituted_query_is_promql(tmp_path: Path) -> None:
    """promtool (Debian `prometheus`) parses each query as a recording rule."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool missing: apt-get install -y prometheus (scripts/ensure-tools)")
    rules = [
        {"record": f"dashboard:{d.stem.replace('-', '_')}:{p.id}_{q.ref_id}",
         "expr": substitute(q.expr, d.variables, WINDOW)}
        for d in load_catalogue(SHIPPED)
        for p in d.panels
        for q in p.queries
    ]  # fmt: skip
    path = tmp_path / "queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    checked = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_variables_and_intervals_are_replaced_in_every_syntax() -> None:
    window = QueryWindow.ending_at(1_000, range_s=600, max_points=100, scrape_interval_s=5)
    assert (window.step_s, window.rate_interval_s, window.range_s) == (6, 20, 600)
    expr = (
        'rate(x{namespace=~"$namespace", a="${app}", b="[[app]]", c="${app:regex}"}'
        "[$__rate_interval]) + increase(y[$__interval]) + z[$__range] + $unknown"
    )
    assert substitute(expr, {"namespace": ".*", "app": "web"}, window) == (
        'rate(x{namespace=~".*", a="web", b="web", c="web"}[20s]) + increase(y[6s])'
        " + z[600s] + $unknown"
    )


def test_the_rate_interval_follows_grafana() -> None:
    """max(4 x scrape interval, step + scrape interval)."""
    hour = QueryWindow.ending_at(0, range_s=3600, max_points=240, scrape_interval_s=15)
    assert (hour.step_s, hour.rate_interval_s) == (15, 60)
    day = QueryWindow.ending_at(0, range_s=86400, max_points=240, scrape_interval_s=15)
    assert (day.step_s, day.rate_interval_s) == (360, 375)


def test_the_window_is_aligned_to_its_step() -> None:
    a = QueryWindow.ending_at(1_000_007.9, range_s=3600, max_points=240, scrape_interval_s=1)
    assert a.step_s == 15 and a.end % 15 == 0 and a.end <= 1_000_007.9
    assert a.range_s == 3600 and a.start % 15 == 0


def test_variable_values_with_all_selected() -> None:
    templating = {
        "list": [
            {"name": "namespace", "includeAll": True, "allValue": ".*"},
            {"name": "job", "includeAll": True, "allValue": "ride-.*"},
            {"name": "model", "current": {"value": "classifier"}},
            {"name": "le", "current": {"value": "$__all"}},
        ]
    }
    assert variable_values(templating, namespace="local") == {
        "namespace": "local",
        "job": "ride-.*",
        "model": "classifier",
        "le": ".*",
    }


def test_panels_keep_their_row_hidden_targets_are_skipped_and_ids_made_unique() -> None:
    document = {
        "uid": "u",
        "title": "T",
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "1m",
        "panels": [
            {"type": "row", "title": "open row", "id": 1, "panels": []},
            {"type": "stat", "id": 2, "title": "a", "targets": [{"expr": "up", "refId": "A"}]},
            {
                "type": "row",
                "collapsed": True,
                "id": 3,
                "panels": [
                    {
                        "type": "timeseries",
                        "id": 2,
                        "title": "b",
                        "targets": [{"expr": "up", "hide": True}, {"expr": "x"}],
                    }
                ],
            },
        ],
    }
    dashboard = parse_dashboard(document, stem="file", namespace=".*")
    assert [(p.id, p.type, p.title, p.row, p.collapsed) for p in dashboard.panels] == [
        (2, "stat", "a", 1, False),
        (1001, "timeseries", "b", 3, True),
    ]
    assert [(r.id, r.title, r.collapsed) for r in dashboard.rows] == [
        (1, "open row", False),
        (3, "", True),
    ]
    assert [(q.ref_id, q.expr) for q in dashboard.panels[1].queries] == [("B", "x")]
    assert (dashboard.range_s, dashboard.refresh_s) == (6 * 3600, 60)


def test_a_dashboard_is_found_by_uid_or_file_stem() -> None:
    catalogue = load_catalogue(SHIPPED)
    assert catalogue.find("overview") is catalogue.find("modelfleet-overview")
    with pytest.raises(NotFound):
        catalogue.find("nope")
    with pytest.raises(NotFound):
        catalogue.find("overview").panel(999)


def test_a_file_that_is_not_a_dashboard_fails_the_start(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text('{"title": "no panels"}')
    with pytest.raises(ValueError, match="broken.json"):
        load_catalogue(tmp_path)


def test_the_chatbot_dashboards_llm_panels_sit_in_a_collapsed_row() -> None:
    """Without `--llm` nothing feeds them: they are queried only when the row is opened."""
    chatbot = load_catalogue(SHIPPED).find("chatbot")
    hidden = {p.title for p in chatbot.panels if p.collapsed}
    assert hidden and all("LLM" in t or "Generated" in t for t in hidden)
    shown = {p.title for p in chatbot.panels if not p.collapsed}
    assert shown == {
        "Answer latency p50 and p99 by how it was answered",
        "Prompt length p50 and p99",
    }
    assert [r.collapsed for r in chatbot.rows] == [True]
