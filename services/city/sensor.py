"""The sensor service: (latitude, longitude, time) -> the live traffic there and then.

``uvicorn --factory services.city.sensor:create_app``. Readings come from the city's congestion
model (:mod:`services.domain.taxi.traffic`), the one the trip generator draws trips from, so a
reading carries real signal about a ride's duration (the day's live traffic, which no request
field gives). A point is read at its nearest zone. Every answer waits the simulated delay of a
remote API (``SENSOR_LATENCY_S``, 2 s by default) and fails at ``SENSOR_FAILURE_RATE``.

    GET /v1/traffic?latitude=40.75&longitude=-73.98&at=2024-03-14T08:30:00
      -> {"zone_id": 161, "speed_mph": 7.9, "free_flow_mph": 14.0, "congestion": 0.56,
          "conditions": "heavy", ...}
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, Query
from pydantic import BaseModel, Field

from services.city.settings import SensorSettings
from services.city.simulate import RemoteBehaviour
from services.common.app import create_service_app
from services.common.security import require_scope
from services.common.state import ServiceState, state_dependency
from services.domain.taxi import places, traffic, zones
from services.domain.taxi.times import PickupDatetime, new_york_local


@dataclass(kw_only=True)
class SensorState(ServiceState):
    settings: SensorSettings
    remote: RemoteBehaviour


StateDep = Annotated[SensorState, Depends(state_dependency(SensorState))]

router = APIRouter(prefix="/v1", tags=["sensor"])


class TrafficReading(BaseModel):
    """The traffic at a place and time, read at the nearest zone."""

    zone_id: int = Field(description="The TLC zone nearest to the point (where it was read).")
    borough: str
    at: datetime = Field(description="The time read, New York local time.")
    speed_mph: float = Field(description="Traffic speed.")
    free_flow_mph: float = Field(description="The borough's speed with no traffic.")
    congestion: float = Field(description="speed_mph / free_flow_mph (1: free flowing).")
    conditions: str = Field(description="free, moderate, heavy or jammed.")


def read_traffic(latitude: float, longitude: float, at: datetime) -> TrafficReading:
    """The reading at the zone nearest to (latitude, longitude) at ``at`` (New York local)."""
    zone = places.nearest_zone(latitude, longitude)
    local = new_york_local(at).replace(microsecond=0)
    speed = float(
        traffic.traffic_speed_mph(np.array([zone]), np.array([local], dtype="datetime64[s]"))[0]
    )
    free_flow = float(traffic.FREE_FLOW_MPH[int(zones.ZONE_BOROUGH[zone])])
    return TrafficReading(
        zone_id=zone,
        borough=zones.borough_of(zone),
        at=local,
        speed_mph=round(speed, 2),
        free_flow_mph=free_flow,
        congestion=round(speed / free_flow, 3),
        conditions=traffic.conditions(speed, free_flow),
    )


@router.get(
    "/traffic",
    response_model=TrafficReading,
    summary="Live traffic at a place and time",
    dependencies=[require_scope("read")],
)
async def traffic_at(
    state: StateDep,
    latitude: Annotated[float, Query(ge=places.LATITUDE_RANGE[0], le=places.LATITUDE_RANGE[1])],
    longitude: Annotated[float, Query(ge=places.LONGITUDE_RANGE[0], le=places.LONGITUDE_RANGE[1])],
    at: Annotated[PickupDatetime, Query(description="The time; none given: New York local.")],
) -> TrafficReading:
    await state.remote.answer()
    return read_traffic(latitude, longitude, at)


def create_app(settings: SensorSettings | None = None) -> FastAPI:
    settings = settings or SensorSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[SensorState]:
        yield SensorState(settings=settings, remote=RemoteBehaviour(settings))

    return create_service_app(
        settings=settings,
        title="sensor",
        version="1.0.0",
        description="Live traffic speed and conditions at a place and time (a remote API, "
        "simulated latency and failures), from the congestion model the trips are drawn from.",
        routers=[router],
        lifespan=lifespan,
    )
