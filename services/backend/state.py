"""The typed state of backend: what its lifespan builds and its handlers use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import Depends

from services.backend.notify import ResultNotifier
from services.backend.relay import OutboxRelay
from services.backend.settings import BackendSettings
from services.common.http import JsonClient
from services.common.state import ServiceState, state_dependency


@dataclass(kw_only=True)
class BackendState(ServiceState):
    settings: BackendSettings
    pool: asyncpg.Pool
    #: The one client of every downstream call (ride-duration, location, sensor).
    http: JsonClient
    #: Wakes the SSE streams of a ride when one of its results commits.
    notifier: ResultNotifier
    #: The outbox relay of this process (None: BACKEND_RELAY=false).
    relay: OutboxRelay | None = None

    def wake_relay(self) -> None:
        """After a commit that wrote an outbox event: publish it now, not at the next poll."""
        if self.relay is not None:
            self.relay.wake()


StateDep = Annotated[BackendState, Depends(state_dependency(BackendState))]
