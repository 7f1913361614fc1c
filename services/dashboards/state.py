"""The typed state of the dashboards service: what its lifespan builds and its handlers use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from services.common.state import ServiceState, state_dependency
from services.dashboards.catalogue import Catalogue
from services.dashboards.prometheus import PrometheusClient
from services.dashboards.settings import DashboardsSettings


@dataclass(kw_only=True)
class DashboardsState(ServiceState):
    settings: DashboardsSettings
    catalogue: Catalogue
    prometheus: PrometheusClient


StateDep = Annotated[DashboardsState, Depends(state_dependency(DashboardsState))]
