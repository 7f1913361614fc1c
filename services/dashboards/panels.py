"""One panel's data: its targets run as range queries on Prometheus, merged on one time axis.

Every target of the panel is queried at once (each call within the client's deadline) over the
same aligned window, so the series share the window's timestamps; a series' missing points are
``None`` (uPlot draws a gap). Labels become legends as Grafana's ``legendFormat`` does
(``{{model}} v{{version}}``); without one, the series' label set.

    data = await panel_data(prometheus, dashboard, panel, window=window, max_series=50)
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping

from services.dashboards.catalogue import Dashboard, Panel, QueryWindow, substitute
from services.dashboards.prometheus import PrometheusClient, Series
from services.dashboards.schemas import PanelData, PanelSeries

_LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def legend(template: str, labels: Mapping[str, str]) -> str:
    """The series' name: ``template`` with ``{{label}}`` filled, else (or when that leaves
    nothing) its labels."""
    if template and template != "__auto":
        filled = _LEGEND_LABEL.sub(lambda m: labels.get(m.group(1), ""), template)
        if filled.strip():
            return filled
    shown = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return f"{labels.get('__name__', '')}{{{shown}}}" if shown else labels.get("__name__", "value")


def on_axis(series: Series, window: QueryWindow) -> list[float | None]:
    """The series' values at each of the window's timestamps (None where it has no point)."""
    count = window.range_s // window.step_s + 1
    values: list[float | None] = [None] * count
    for timestamp, value in series.points:
        index = round((timestamp - window.start) / window.step_s)
        if 0 <= index < count:
            values[index] = value
    return values


async def panel_data(
    prometheus: PrometheusClient,
    dashboard: Dashboard,
    panel: Panel,
    *,
    window: QueryWindow,
    max_series: int,
) -> PanelData:
    """Run every target of ``panel`` over ``window``; at most ``max_series`` series kept."""
    exprs = [substitute(q.expr, dashboard.variables, window) for q in panel.queries]
    answers = await asyncio.gather(
        *(
            prometheus.query_range(expr, start=window.start, end=window.end, step_s=window.step_s)
            for expr in exprs
        )
    )
    series = [
        PanelSeries(
            label=legend(query.legend, s.labels), ref_id=query.ref_id, values=on_axis(s, window)
        )
        for query, answer in zip(panel.queries, answers, strict=True)
        for s in answer
    ]
    return PanelData(
        dashboard=dashboard.uid,
        panel=panel.id,
        start=window.start,
        end=window.end,
        step_s=window.step_s,
        timestamps=list(range(window.start, window.end + 1, window.step_s)),
        series=series[:max_series],
        truncated=max(0, len(series) - max_series),
        queries=exprs,
    )
