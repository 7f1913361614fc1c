"""The location service: a TLC zone id -> the zone's centroid (latitude, longitude) and borough.

``uvicorn --factory services.city.location:create_app``. The zone table ships with the code
(:mod:`services.domain.taxi.places`); every answer waits the simulated delay of a remote API
(``LOCATION_LATENCY_S``, 0.5 s by default) and fails at ``LOCATION_FAILURE_RATE``.

    GET /v1/zones/161  -> {"zone_id": 161, "borough": "Manhattan", "latitude": 40.75...,
                           "longitude": -73.98..., "airport": false}
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Path
from pydantic import BaseModel, Field

from services.city.settings import LocationSettings
from services.city.simulate import RemoteBehaviour
from services.common.app import create_service_app
from services.common.errors import NotFound
from services.common.security import require_scope
from services.common.state import ServiceState, state_dependency
from services.domain.taxi import places, zones


@dataclass(kw_only=True)
class LocationState(ServiceState):
    settings: LocationSettings
    remote: RemoteBehaviour


StateDep = Annotated[LocationState, Depends(state_dependency(LocationState))]

router = APIRouter(prefix="/v1", tags=["location"])


class ZoneLocation(BaseModel):
    """Where a zone is: its centroid and borough."""

    zone_id: int
    borough: str
    latitude: float = Field(description="Centroid latitude, WGS 84 degrees.")
    longitude: float = Field(description="Centroid longitude, WGS 84 degrees.")
    airport: bool


@router.get(
    "/zones/{zone_id}",
    response_model=ZoneLocation,
    summary="The centroid and borough of a TLC taxi zone",
    dependencies=[require_scope("read")],
    responses={404: {"description": "Zone 264 or 265 (Unknown): no place (problem+json)"}},
)
async def zone_location(
    state: StateDep,
    zone_id: Annotated[int, Path(ge=1, le=zones.N_ZONES, description="TLC zone id (1-265).")],
) -> ZoneLocation:
    await state.remote.answer()
    try:
        latitude, longitude = places.zone_lat_lng(zone_id)
    except ValueError as exc:
        raise NotFound(str(exc)) from exc
    return ZoneLocation(
        zone_id=zone_id,
        borough=zones.borough_of(zone_id),
        latitude=latitude,
        longitude=longitude,
        airport=zone_id in zones.AIRPORT_ZONES,
    )


def create_app(settings: LocationSettings | None = None) -> FastAPI:
    settings = settings or LocationSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[LocationState]:
        yield LocationState(settings=settings, remote=RemoteBehaviour(settings))

    return create_service_app(
        settings=settings,
        title="location",
        version="1.0.0",
        description="TLC taxi zone -> centroid latitude/longitude and borough (a remote API, "
        "simulated latency and failures).",
        routers=[router],
        lifespan=lifespan,
    )
