"""Grafana dashboard JSON -> the panels and PromQL queries this service draws.

Only what the page needs is read: the dashboard's uid, title, time range and refresh; each
panel's type, title, unit, ``gridPos`` and its Prometheus targets (``expr``, ``legendFormat``,
``refId``; hidden targets skipped); its rows. A panel belongs to the row above it; a collapsed
row carries its panels inside it, and those are drawn (and queried) only when the row is opened,
as Grafana does: that is where a dashboard keeps what an optional component feeds.

Template variables are replaced as Grafana would with "All" selected: ``$namespace`` by the
service's ``DASHBOARDS_NAMESPACE``, any other variable by its ``allValue`` (else its current
value, else ``.*``). The interval variables depend on the step of the range query:
``$__interval`` is the step, ``$__rate_interval`` ``max(4 x scrape interval, step + scrape
interval)`` (Grafana's rule), ``$__range`` the range.

    catalogue = load_catalogue(Path("monitoring/dashboards"))
    dashboard = catalogue.find("overview")          # by uid or file stem; NotFound otherwise
    window = QueryWindow.ending_at(time.time(), range_s=3600, max_points=240, scrape_interval_s=15)
    exprs = [substitute(q.expr, dashboard.variables, window) for q in dashboard.panels[0].queries]
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.common.errors import NotFound

#: ``$name``, ``${name}``, ``${name:format}``, ``[[name]]`` (Grafana's variable syntaxes).
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")
_DURATION = re.compile(r"^now-(\d+)([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True, slots=True)
class Query:
    """One Prometheus target of a panel."""

    ref_id: str
    expr: str
    legend: str


@dataclass(frozen=True, slots=True)
class GridPos:
    """Where Grafana puts a panel: 24 columns, rows of 30 px."""

    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True, slots=True)
class Row:
    """A row header across the dashboard; ``collapsed``: its panels start hidden."""

    id: int
    title: str
    collapsed: bool
    grid: GridPos

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "collapsed": self.collapsed,
            "gridPos": {"x": self.grid.x, "y": self.grid.y, "w": self.grid.w, "h": self.grid.h},
        }


@dataclass(frozen=True, slots=True)
class Panel:
    id: int
    type: str
    title: str
    description: str
    unit: str
    grid: GridPos
    queries: tuple[Query, ...]
    #: the id of the row the panel is in, and whether that row starts collapsed
    row: int | None = None
    collapsed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "row": self.row,
            "collapsed": self.collapsed,
            "type": self.type,
            "title": self.title,
            "description": self.description,
            "unit": self.unit,
            "gridPos": {"x": self.grid.x, "y": self.grid.y, "w": self.grid.w, "h": self.grid.h},
            "queries": [
                {"refId": q.ref_id, "expr": q.expr, "legendFormat": q.legend} for q in self.queries
            ],
        }


@dataclass(frozen=True, slots=True)
class Dashboard:
    uid: str
    stem: str
    title: str
    description: str
    range_s: int
    refresh_s: int | None
    panels: tuple[Panel, ...]
    #: template variable -> the value it is replaced by
    variables: Mapping[str, str] = field(default_factory=dict)
    rows: tuple[Row, ...] = ()

    def panel(self, panel_id: int) -> Panel:
        for panel in self.panels:
            if panel.id == panel_id:
                return panel
        raise NotFound(f"dashboard {self.uid} has no panel {panel_id}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "stem": self.stem,
            "title": self.title,
            "description": self.description,
            "rangeS": self.range_s,
            "refreshS": self.refresh_s,
            "variables": dict(self.variables),
            "panels": [panel.as_dict() for panel in self.panels],
            "rows": [row.as_dict() for row in self.rows],
        }


@dataclass(frozen=True, slots=True)
class Catalogue:
    """The dashboards of one folder, in file-name order."""

    dashboards: tuple[Dashboard, ...]

    def find(self, ref: str) -> Dashboard:
        """The dashboard whose uid or file stem is ``ref``."""
        for dashboard in self.dashboards:
            if ref in (dashboard.uid, dashboard.stem):
                return dashboard
        raise NotFound(f"no dashboard {ref!r}")

    def __iter__(self) -> Iterator[Dashboard]:
        return iter(self.dashboards)


@dataclass(frozen=True, slots=True)
class QueryWindow:
    """The range query of one panel refresh: ``[start, end]`` every ``step_s`` seconds."""

    start: int
    end: int
    step_s: int
    scrape_interval_s: float

    @classmethod
    def ending_at(
        cls, now: float, *, range_s: int, max_points: int, scrape_interval_s: float
    ) -> QueryWindow:
        """The last ``range_s`` seconds in at most ``max_points`` steps of whole seconds, no
        finer than a scrape, aligned to the step (the same points on every refresh)."""
        step = max(math.ceil(range_s / max_points), math.ceil(scrape_interval_s), 1)
        end = int(now) // step * step
        return cls(
            start=end - range_s // step * step,
            end=end,
            step_s=step,
            scrape_interval_s=scrape_interval_s,
        )

    @property
    def range_s(self) -> int:
        return self.end - self.start

    @property
    def rate_interval_s(self) -> int:
        """Grafana's ``$__rate_interval``: at least four scrapes, at least a step and a scrape."""
        scrape = math.ceil(self.scrape_interval_s)
        return max(4 * scrape, self.step_s + scrape)

    def builtins(self) -> dict[str, str]:
        return {
            "__interval": f"{self.step_s}s",
            "__interval_ms": str(self.step_s * 1000),
            "__rate_interval": f"{self.rate_interval_s}s",
            "__range": f"{self.range_s}s",
            "__range_s": str(self.range_s),
            "__range_ms": str(self.range_s * 1000),
        }


def substitute(expr: str, variables: Mapping[str, str], window: QueryWindow) -> str:
    """``expr`` with its template variables and interval variables replaced (an unknown name is
    left as it is: Prometheus then says what is wrong with the query)."""
    values = {**variables, **window.builtins()}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        return values.get(name, match.group(0))

    return _VARIABLE.sub(replace, expr)


def variable_values(templating: Mapping[str, Any], *, namespace: str) -> dict[str, str]:
    """Each template variable's value with "All" selected (``namespace``: the setting)."""
    values: dict[str, str] = {}
    for variable in templating.get("list", []):
        name = str(variable.get("name", ""))
        if not name:
            continue
        current = (variable.get("current") or {}).get("value")
        if name == "namespace":
            values[name] = namespace
        elif variable.get("includeAll") and variable.get("allValue"):
            values[name] = str(variable["allValue"])
        elif isinstance(current, str) and current and current != "$__all":
            values[name] = current
        else:
            values[name] = ".*"
    return values


def _grid(raw: Mapping[str, Any], *, w: int, h: int) -> GridPos:
    grid = raw.get("gridPos") or {}
    return GridPos(
        x=int(grid.get("x", 0)), y=int(grid.get("y", 0)), w=int(grid.get("w", w)),
        h=int(grid.get("h", h)),
    )  # fmt: skip


def _flat_panels(
    panels: list[dict[str, Any]], rows: list[Row]
) -> Iterator[tuple[dict[str, Any], Row | None, bool]]:
    """Each panel with the row it is in and whether it is hidden inside that row (a collapsed
    row's own panels); the rows met are appended to ``rows``."""
    current: Row | None = None
    for panel in panels:
        if panel.get("type") != "row":
            yield panel, current, False
            continue
        row_id = panel.get("id")
        current = Row(
            id=row_id if isinstance(row_id, int) else 2000 + len(rows),
            title=str(panel.get("title", "")),
            collapsed=bool(panel.get("collapsed")),
            grid=_grid(panel, w=24, h=1),
        )
        rows.append(current)
        for inner in panel.get("panels", []):
            yield inner, current, current.collapsed


def _range_s(time_range: Mapping[str, Any]) -> int:
    match = _DURATION.match(str(time_range.get("from", "")))
    if match is None or time_range.get("to", "now") != "now":
        return 3600
    return int(match.group(1)) * _UNIT_S[match.group(2)]


def _refresh_s(refresh: Any) -> int | None:
    match = re.fullmatch(r"(\d+)([smh])", str(refresh or ""))
    return int(match.group(1)) * _UNIT_S[match.group(2)] if match else None


def parse_dashboard(document: Mapping[str, Any], *, stem: str, namespace: str) -> Dashboard:
    """One dashboard's JSON model as the page draws it."""
    panels: list[Panel] = []
    rows: list[Row] = []
    used: set[int] = set()
    for index, (raw, row, hidden) in enumerate(
        _flat_panels(list(document.get("panels", [])), rows)
    ):
        panel_id = raw.get("id")
        if not isinstance(panel_id, int) or panel_id in used:
            panel_id = 1000 + index
        used.add(panel_id)
        queries = tuple(
            Query(
                ref_id=str(target.get("refId") or chr(ord("A") + n)),
                expr=str(target["expr"]),
                legend=str(target.get("legendFormat") or ""),
            )
            for n, target in enumerate(raw.get("targets", []))
            if target.get("expr") and not target.get("hide")
        )
        panels.append(
            Panel(
                id=panel_id,
                type=str(raw.get("type", "timeseries")),
                title=str(raw.get("title", "")),
                description=str(raw.get("description", "")),
                unit=str(((raw.get("fieldConfig") or {}).get("defaults") or {}).get("unit", "")),
                grid=_grid(raw, w=12, h=8),
                queries=queries,
                row=row.id if row else None,
                collapsed=hidden,
            )
        )
    return Dashboard(
        uid=str(document.get("uid") or stem),
        stem=stem,
        title=str(document.get("title") or stem),
        description=str(document.get("description", "")),
        range_s=_range_s(document.get("time") or {}),
        refresh_s=_refresh_s(document.get("refresh")),
        panels=tuple(panels),
        variables=variable_values(document.get("templating") or {}, namespace=namespace),
        rows=tuple(rows),
    )


def load_catalogue(folder: Path, *, namespace: str = ".*") -> Catalogue:
    """Every ``*.json`` dashboard of ``folder`` (ValueError names a file that is not one)."""
    dashboards = []
    for path in sorted(folder.glob("*.json")):
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a dashboard: {exc}") from exc
        if not isinstance(document, dict) or not isinstance(document.get("panels"), list):
            raise ValueError(f"{path}: not a dashboard (no panels)")
        dashboards.append(parse_dashboard(document, stem=path.stem, namespace=namespace))
    return Catalogue(tuple(dashboards))
