"""What makes the city's APIs behave like remote ones: a delay per answer and some failures.

    remote = RemoteBehaviour(settings)
    await remote.answer()        # waits the drawn delay, or raises the simulated 503

The delay is awaited (never a blocking sleep), and the request's deadline
(:mod:`services.common.deadline`) cancels it like any other work: a caller who gave up after
its budget gets no answer computed for it.
"""

from __future__ import annotations

import asyncio
import math
import random

from services.city.metrics import SIMULATED
from services.city.settings import CityApiSettings
from services.common.errors import DependencyError


class SimulatedOutage(DependencyError):
    """The simulated failure: a 503 with Retry-After, as a remote API under trouble answers."""

    def __init__(self, service: str) -> None:
        super().__init__(f"{service} is failing (simulated)", headers={"Retry-After": "1"})


class RemoteBehaviour:
    """The delay and the failures of one simulated API."""

    def __init__(self, settings: CityApiSettings) -> None:
        self.service = settings.service_name
        self.median_s = settings.latency_s
        self.sigma = settings.latency_sigma
        self.failure_rate = settings.failure_rate
        self._random = random.Random(settings.seed)

    def delay_s(self) -> float:
        """One draw of the answer's delay."""
        if self.median_s <= 0:
            return 0.0
        return self.median_s * math.exp(self._random.gauss(0.0, self.sigma))

    async def answer(self) -> None:
        """Wait the drawn delay, then fail with the failure rate (503)."""
        delay = self.delay_s()
        if delay > 0:
            await asyncio.sleep(delay)
        if self.failure_rate > 0 and self._random.random() < self.failure_rate:
            SIMULATED.labels(self.service, "failure").inc()
            raise SimulatedOutage(self.service)
        SIMULATED.labels(self.service, "ok").inc()
