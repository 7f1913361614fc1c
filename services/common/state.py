"""Typed application state: what a service's lifespan builds, reached through typed dependencies.

Each service declares one dataclass deriving from :class:`ServiceState`, naming the clients and
components its handlers use. Its lifespan builds the object and yields it; the app factory
(:func:`services.common.app.create_service_app`) keeps it on the app, applies the security
migrations when it has a pool, and hands it to the fast routes. FastAPI handlers reach it through
a typed dependency, never through ``app.state``:

    @dataclass(kw_only=True)
    class RideDurationState(ServiceState):
        settings: RideDurationSettings
        routing: LiveRouting

    StateDep = Annotated[RideDurationState, Depends(state_dependency(RideDurationState))]

    async def list_models(state: StateDep) -> ModelList: ...
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import asyncpg
from starlette.requests import HTTPConnection

from services.common.errors import DependencyError
from services.common.settings import ServiceSettings
from services.common.triton import TritonClient

S = TypeVar("S", bound="ServiceState")


@dataclass(kw_only=True)
class ServiceState:
    """What every service has: its settings, and the shared clients it opened (or None)."""

    settings: ServiceSettings
    #: The service's asyncpg pool; the security layer verifies API keys with it.
    pool: asyncpg.Pool | None = None
    triton: TritonClient | None = None


def state_of(connection: HTTPConnection) -> ServiceState:
    """The state the running service's lifespan built; 503 before it has (start-up)."""
    state: ServiceState | None = connection.app.service_state
    if state is None:
        raise DependencyError("the service is still starting")
    return state


def state_dependency(kind: type[S]) -> Callable[[HTTPConnection], Awaitable[S]]:
    """A FastAPI dependency returning the service's state as ``kind`` (its own dataclass)."""

    async def service_state(connection: HTTPConnection) -> S:
        state = state_of(connection)
        if not isinstance(state, kind):
            raise TypeError(f"the app's state is a {type(state).__name__}, not a {kind.__name__}")
        return state

    return service_state
