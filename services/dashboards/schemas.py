"""The JSON contract of the dashboards service (/v1)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class DashboardSummary(BaseModel):
    uid: str
    stem: str = Field(description="The file name without .json (also accepted as its id).")
    title: str
    panels: int = Field(description="How many panels it has.")


class DashboardList(BaseModel):
    dashboards: list[DashboardSummary]


class PanelSeries(BaseModel):
    label: str = Field(description="The target's legendFormat filled from the series' labels.")
    ref_id: str = Field(description="The panel target (refId) the series comes from.")
    values: list[float | None] = Field(description="One value per timestamp; null: no sample.")


class PanelData(BaseModel):
    """A panel's targets run as range queries, on one time axis."""

    dashboard: str
    panel: int
    start: int = Field(description="Unix seconds of the first point.")
    end: int = Field(description="Unix seconds of the last point.")
    step_s: int
    timestamps: list[int]
    series: list[PanelSeries]
    truncated: int = Field(description="Series left out beyond DASHBOARDS_MAX_SERIES.")
    queries: list[str] = Field(description="The PromQL run, variables substituted.")
