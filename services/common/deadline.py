"""The caller's remaining budget, carried on every hop: the ``X-Request-Budget-Ms`` header.

A request that arrives with ``X-Request-Budget-Ms: 1200`` must be answered within 1.2 s: its
caller gives up then. The security layer (:mod:`services.common.security.guard`) ends the
request at ``min(REQUEST_TIMEOUT_S, budget)`` with a 504 (the handler is cancelled, so nothing
goes on working for a caller who has left) and keeps the deadline for the request in a context
variable. What the request calls inherits it:

- :class:`~services.common.triton.TritonClient` turns it into the gRPC deadline of each call
  (``min(own timeout, remaining)``);
- :class:`~services.common.http.JsonClient` cuts each call's timeout to it and passes what is
  left on, in the same header, to the next service.

A budget already spent (``<= 0``) is answered 504 at once. A header that is not a whole number
of milliseconds is ignored (logged once per process): a malformed hint never fails a request.
The budget is relative, as gRPC's ``grpc-timeout`` is, so clocks need not agree; the time on
the wire is the part of the budget nobody measures.

    with request_deadline(1.2):                # the guard does this per request
        bounded(1.0)                           # -> at most the 1.2 s left
        outgoing_budget(0.5)                   # -> {"x-request-budget-ms": "500"}
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Final

log = logging.getLogger(__name__)

BUDGET_HEADER: Final = "x-request-budget-ms"
"""The header (lower case, as ASGI gives it) carrying the caller's remaining budget in ms."""
MAX_BUDGET_MS: Final = 3_600_000
"""A budget above an hour is not a budget: treated as absent."""

_deadline: ContextVar[float | None] = ContextVar("modelfleet_request_deadline", default=None)
_warned = False


def parse_budget(raw: str | None) -> float | None:
    """The budget in seconds a header value gives (None: absent or malformed; may be <= 0)."""
    global _warned
    if raw is None:
        return None
    text = raw.strip()
    if text.startswith("-") and text[1:].isdigit():
        return 0.0  # a caller whose budget is already spent
    if not text.isdigit() or int(text) > MAX_BUDGET_MS:
        if not _warned:
            _warned = True
            log.warning("ignoring a malformed %s header: %r", BUDGET_HEADER, raw[:40])
        return None
    return int(text) / 1000.0


def remaining_s() -> float | None:
    """Seconds left of the current request's budget (None: no budget was given)."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()


def bounded(timeout_s: float) -> float:
    """``timeout_s`` cut to what is left of the request's budget (never below 0)."""
    left = remaining_s()
    return timeout_s if left is None else max(0.0, min(timeout_s, left))


def outgoing_budget(timeout_s: float) -> dict[str, str]:
    """The header telling a downstream how long it has: ``min(timeout_s, remaining)``."""
    return {BUDGET_HEADER: str(max(0, math.floor(bounded(timeout_s) * 1000.0)))}


@contextmanager
def request_deadline(budget_s: float | None) -> Iterator[None]:
    """Within the block, the request's deadline is ``budget_s`` from now (None: unchanged)."""
    if budget_s is None:
        yield
        return
    deadline = time.monotonic() + budget_s
    current = _deadline.get()
    token = _deadline.set(deadline if current is None else min(current, deadline))
    try:
        yield
    finally:
        _deadline.reset(token)
