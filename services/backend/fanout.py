"""Fan-out with latency budgets: call several downstreams at once, each within its own deadline
and all of them within one overall budget; a call that misses degrades its own field only.

Every call gets ``min(its timeout, the overall budget)``; they start together, so the whole
fan-out ends within the budget (plus scheduling noise) whatever the downstreams do. A call's
outcome is its value, or ``None`` with a reason:

- ``timeout``: it missed its deadline (``TimeoutError`` or :class:`DependencyTimeout`);
- ``unavailable``: it failed (any other error: down, refused, a bad answer, a bug; logged);
- ``not_configured``: there is nothing to call (the caller passed ``None``).

Each call is measured once: ``modelfleet_dependency_request_duration_seconds{dependency,
operation,outcome}`` (the shared dependency histogram) and ``modelfleet_fanout_calls_total
{downstream,outcome}`` (``downstream`` is the call's key in the mapping).

    outcomes = await fan_out(
        {
            "ride-duration": Call("http:ride-duration", "predict", predict, timeout_s=0.5),
            "location": None,  # no location service configured
        },
        budget_s=1.5,
    )
    outcomes["location"].reason == "not_configured"
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from services.common.errors import DependencyTimeout
from services.common.metrics import DEPENDENCY_LATENCY, FANOUT_CALLS

log = logging.getLogger(__name__)

T = TypeVar("T")
Reason = Literal["timeout", "unavailable", "not_configured"]


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One downstream call: metric labels, the coroutine to run and its own deadline."""

    dependency: str  # e.g. "http:location"
    operation: str  # e.g. "lookup"
    run: Callable[[], Awaitable[T]]
    timeout_s: float


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """A call's value, or ``None`` and why."""

    value: T | None
    reason: Reason | None
    duration_s: float = 0.0


NOT_CONFIGURED: Outcome[Any] = Outcome(None, "not_configured")


async def _one(name: str, call: Call[T], deadline_s: float) -> Outcome[T]:
    started = time.perf_counter()
    value: T | None = None
    reason: Reason | None = None
    try:
        async with asyncio.timeout(deadline_s):
            value = await call.run()
    except (TimeoutError, DependencyTimeout):
        reason = "timeout"
    except Exception as exc:  # the degrade boundary: one bad downstream never fails the answer
        reason = "unavailable"
        log.warning(
            "downstream call failed",
            extra={"dependency": call.dependency, "error": repr(exc)},
            exc_info=not isinstance(exc, OSError),
        )
    elapsed = time.perf_counter() - started
    outcome = reason or "ok"
    DEPENDENCY_LATENCY.labels(call.dependency, call.operation, outcome).observe(elapsed)
    FANOUT_CALLS.labels(name, outcome).inc()
    return Outcome(value, reason, elapsed)


async def fan_out(
    calls: Mapping[str, Call[Any] | None], *, budget_s: float
) -> dict[str, Outcome[Any]]:
    """Run ``calls`` concurrently within ``budget_s``; ``None`` entries are ``not_configured``."""
    configured = {name: call for name, call in calls.items() if call is not None}
    results = await asyncio.gather(
        *(_one(name, call, min(call.timeout_s, budget_s)) for name, call in configured.items())
    )
    outcomes: dict[str, Outcome[Any]] = dict(zip(configured, results, strict=True))
    for name in calls.keys() - configured.keys():
        FANOUT_CALLS.labels(name, "not_configured").inc()
        outcomes[name] = NOT_CONFIGURED
    return outcomes
