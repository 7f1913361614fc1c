"""Calls to downstreams within a deadline: a call that misses degrades its own field only.

:func:`call_within` runs one call within ``min(its own timeout, the deadline given)`` (what is
left of the ride's budget, :mod:`services.backend.chain`). Its outcome is its value, or ``None``
with a reason:

- ``timeout``: it missed its deadline (``TimeoutError`` or :class:`DependencyTimeout`);
- ``unavailable``: it failed (any other error: down, refused, a bad answer, a bug; logged);
- ``not_configured``: there is nothing to call (:func:`not_configured`).

Each call is measured once: ``modelfleet_dependency_request_duration_seconds{dependency,
operation,outcome}`` (the shared dependency histogram) and ``modelfleet_fanout_calls_total
{downstream,outcome}`` (``downstream`` is the name the call is run under).

    outcome = await call_within("location", Call("http:location", "get", lookup, 1.0), 0.8)
    outcome.value, outcome.reason      # {...}, None  or  None, "timeout"
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from services.common.deadline import request_deadline
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


def not_configured(name: str) -> Outcome[Any]:
    """The outcome of a downstream with nothing to call (counted like a call)."""
    FANOUT_CALLS.labels(name, "not_configured").inc()
    return NOT_CONFIGURED


async def call_within(name: str, call: Call[T], deadline_s: float) -> Outcome[T]:
    """Run one call within ``min(deadline_s, its own timeout)``; measured under ``name``."""
    deadline_s = min(deadline_s, call.timeout_s)
    started = time.perf_counter()
    value: T | None = None
    reason: Reason | None = None
    try:
        # The deadline is also the request's for the call: its client tells the callee.
        with request_deadline(deadline_s):
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
