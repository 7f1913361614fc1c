"""The HTML of the two pages: the list of dashboards and one dashboard's panel grid.

The pages hold no data: a dashboard page carries its JSON model (panels, layout, queries) and
``static/dashboard.js`` fetches each panel's data from ``/v1/dashboards/<uid>/panels/<id>/data``
and draws it with uPlot (served from the npm package, ``/static/uplot/...``). A collapsed row's
panels stay hidden and unqueried until its header is clicked, as in Grafana.
"""

from __future__ import annotations

import json
from html import escape

from services.dashboards.catalogue import Catalogue, Dashboard, GridPos, Panel, Row

#: Pixels per gridPos row (Grafana: 30).
ROW_PX = 34

_HEAD = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="/static/uplot/uPlot.min.css">
<link rel="stylesheet" href="/static/dashboard.css">
</head>
"""


def index_page(catalogue: Catalogue, *, prometheus_url: str) -> str:
    """``/``: every dashboard with its panel count."""
    rows = "\n".join(
        f'<tr><td><a href="/d/{escape(d.uid)}">{escape(d.title)}</a></td>'
        f'<td class="count">{len(d.panels)}</td><td><code>{escape(d.stem)}.json</code></td></tr>'
        for d in catalogue
    )
    return (
        _HEAD.format(title="modelfleet dashboards")
        + f"""<body class="index">
<header><h1>modelfleet dashboards</h1>
<p>The Grafana dashboards the chart ships (<code>monitoring/dashboards</code>), drawn from
<code>{escape(prometheus_url)}</code>.</p></header>
<table id="dashboards">
<thead><tr><th>dashboard</th><th>panels</th><th>file</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
</body>
</html>
"""
    )


def _place(grid: GridPos) -> str:
    return f"grid-column: {grid.x + 1} / span {grid.w}; grid-row: {grid.y + 1} / span {grid.h};"


def _row(row: Row, panels: int) -> str:
    """A row's header: a button that opens or closes its panels (dashboard.js)."""
    return (
        f'<h2 class="row" id="row-{row.id}" style="{_place(row.grid)}">'
        f'<button type="button" data-row-id="{row.id}" aria-expanded="'
        f'{"false" if row.collapsed else "true"}">{escape(row.title)}'
        f' <span class="count">({panels} panels)</span></button></h2>'
    )


def _panel(panel: Panel) -> str:
    hidden = " hidden" if panel.collapsed else ""
    row = f' data-row-id="{panel.row}"' if panel.row is not None else ""
    return (
        f'<section class="panel" id="panel-{panel.id}" data-panel-id="{panel.id}"{row} '
        f'data-type="{escape(panel.type)}" data-series="" style="{_place(panel.grid)}"{hidden}>'
        f'<h2 title="{escape(panel.description)}">{escape(panel.title)}</h2>'
        f'<div class="body"><p class="status">loading...</p></div></section>'
    )


def dashboard_page(dashboard: Dashboard) -> str:
    """``/d/<uid>``: one element per row and per panel at its gridPos; dashboard.js fills the
    panels (a collapsed row's once it is opened)."""
    panels = "\n".join(
        [_row(row, sum(1 for p in dashboard.panels if p.row == row.id)) for row in dashboard.rows]
        + [_panel(p) for p in dashboard.panels]
    )
    # JSON inside <script>: "</" must not end the element early.
    model = json.dumps(dashboard.as_dict()).replace("</", "<\\/")
    return (
        _HEAD.format(title=escape(dashboard.title))
        + f"""<body class="dashboard" style="--row-px: {ROW_PX}px">
<header>
<a href="/">dashboards</a> / <h1>{escape(dashboard.title)}</h1>
<label>last <select id="range">
<option value="300">5 minutes</option><option value="600">10 minutes</option>
<option value="900">15 minutes</option>
<option value="3600">1 hour</option><option value="21600">6 hours</option>
<option value="86400">24 hours</option></select></label>
<span id="summary" role="status"></span>
</header>
<main id="grid">
{panels}
</main>
<script type="application/json" id="dashboard-model">{model}</script>
<script src="/static/uplot/uPlot.iife.min.js"></script>
<script src="/static/dashboard.js"></script>
</body>
</html>
"""
    )
