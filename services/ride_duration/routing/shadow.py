"""Shadow calls: a copy of live traffic sent to a candidate off the request path, compared.

The request path only puts a job on a bounded queue (``put_nowait``, never waits): when the
queue is full the job is dropped and counted (``modelfleet_shadow_dropped_total``), so a slow
or failing shadow never slows or fails an answer. ``concurrency`` worker tasks call the shadow
variant and record, per compared row, whether it agrees with the answer within tolerance
(``|delta| <= max(abs_tolerance, rel_tolerance * |answer|)``), the absolute and relative
deltas, and per call the latency delta (shadow minus answer) or the error.

    runner = ShadowRunner("ride-duration", call=predict_variant, queue_size=1000, concurrency=2)
    runner.start()
    runner.submit(ShadowJob(route, rides, answers=[12.5], answer_latency_s=0.002))
    await runner.close()
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from services.common.tasks import cancel_and_wait
from services.ride_duration.routing.metrics import (
    SHADOW_ABS_DELTA,
    SHADOW_COMPARISONS,
    SHADOW_DROPPED,
    SHADOW_LATENCY_DELTA,
    SHADOW_QUEUE_DEPTH,
    SHADOW_REL_DELTA,
)
from services.ride_duration.routing.table import Route

log = logging.getLogger(__name__)

#: ``call(route, items)`` -> (one value per item, the model version that answered).
VariantCall = Callable[[Route, Sequence[Any]], Awaitable[tuple[list[float], str]]]


@dataclass(frozen=True, slots=True)
class ShadowJob:
    """One answered call to repeat on a shadow variant."""

    route: Route
    items: Sequence[Any]
    answers: list[float]
    answer_latency_s: float


@dataclass(frozen=True, slots=True)
class Comparison:
    """How one shadow row compares with its answer."""

    abs_delta: float
    rel_delta: float
    agree: bool


def compare(
    answer: float, shadow: float, *, abs_tolerance: float, rel_tolerance: float
) -> Comparison:
    """Absolute and relative delta, and agreement within the tolerances."""
    delta = abs(shadow - answer)
    scale = abs(answer)
    rel = delta / scale if scale > 0 else (0.0 if delta == 0 else float("inf"))
    return Comparison(delta, rel, delta <= max(abs_tolerance, rel_tolerance * scale))


class ShadowRunner:
    """A bounded queue of shadow jobs and the tasks that run and compare them."""

    def __init__(
        self,
        service: str,
        *,
        call: VariantCall,
        queue_size: int,
        concurrency: int,
        abs_tolerance: float,
        rel_tolerance: float,
    ) -> None:
        self.service = service
        self._call = call
        self.abs_tolerance = abs_tolerance
        self.rel_tolerance = rel_tolerance
        self.concurrency = concurrency
        self._queue: asyncio.Queue[ShadowJob] = asyncio.Queue(maxsize=queue_size)
        self._tasks: list[asyncio.Task[None]] = []
        self._dropped = SHADOW_DROPPED.labels(service)
        self._depth = SHADOW_QUEUE_DEPTH.labels(service)

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._work(), name=f"shadow-{i}")
                for i in range(self.concurrency)
            ]

    def submit(self, job: ShadowJob) -> bool:
        """Queue a job without waiting; False (and counted) when the queue is full."""
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self._dropped.inc()
            return False
        return True

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            self._depth.set(self._queue.qsize())
            try:
                await self.run(job)
            except Exception:  # a shadow must never take the worker down
                log.exception("shadow comparison failed", extra={"variant": job.route.name})
            finally:
                self._queue.task_done()

    async def run(self, job: ShadowJob) -> None:
        """Call the shadow variant for one job and record the comparison."""
        route = job.route
        start = time.perf_counter()
        try:
            values, _version = await self._call(route, job.items)
        except Exception as exc:
            route.metrics.error(exc)
            SHADOW_COMPARISONS.labels(self.service, route.name, "error").inc()
            return
        elapsed = time.perf_counter() - start
        route.metrics.observe(values, elapsed)
        labels = (self.service, route.name)
        SHADOW_LATENCY_DELTA.labels(*labels).observe(elapsed - job.answer_latency_s)
        abs_hist, rel_hist = SHADOW_ABS_DELTA.labels(*labels), SHADOW_REL_DELTA.labels(*labels)
        agree = disagree = 0
        for answer, shadow in zip(job.answers, values, strict=True):
            result = compare(
                answer, shadow, abs_tolerance=self.abs_tolerance, rel_tolerance=self.rel_tolerance
            )
            abs_hist.observe(result.abs_delta)
            rel_hist.observe(result.rel_delta)
            if result.agree:
                agree += 1
            else:
                disagree += 1
        if agree:
            SHADOW_COMPARISONS.labels(*labels, "agree").inc(agree)
        if disagree:
            SHADOW_COMPARISONS.labels(*labels, "disagree").inc(disagree)

    async def drain(self) -> None:
        """Wait until every queued job has run (tests, shutdown)."""
        await self._queue.join()

    async def close(self) -> None:
        """Stop the workers; queued jobs are dropped (they are a sample, not a record)."""
        await cancel_and_wait(self._tasks)
        self._tasks = []
