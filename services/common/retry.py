"""The retry policy of modelfleet's background loops (tenacity): forever, jittered, capped.

The relay, the workers' consumer and the Postgres listener retry an outage for as long as the
process runs: only the errors they name are retried (anything else, and ``CancelledError``,
leaves at once), the n-th pause in a row is ``b/2 + U(0, b/2)`` with ``b = first_s * 2**(n-1)``
capped at ``max_s`` ("equal jitter": never a hot loop, never a thundering herd), and
``before_sleep`` says why (a log line, a metric). Request paths with a deadline (Triton) build
their own bounded policy.

    retrying = retry_forever(errors=(ModelfleetError,), first_s=0.05, max_s=2.0,
                             before_sleep=lambda state: log.warning(...))
    result = await retrying(one_round)
"""

from __future__ import annotations

from collections.abc import Callable

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_never,
    wait_exponential,
    wait_random_exponential,
)
from tenacity.wait import wait_base


def equal_jitter(first_s: float, max_s: float) -> wait_base:
    """Pauses of ``b/2 + U(0, b/2)``, ``b = first_s * 2**(attempt - 1)`` capped at ``max_s``."""
    half, cap = first_s / 2, max_s / 2
    return wait_exponential(multiplier=half, max=cap) + wait_random_exponential(
        multiplier=half, max=cap
    )


def retry_forever(
    *,
    errors: tuple[type[BaseException], ...],
    first_s: float,
    max_s: float,
    before_sleep: Callable[[RetryCallState], None],
) -> AsyncRetrying:
    """A fresh policy (one per run: tenacity keeps a run's state in it) retrying ``errors``."""
    return AsyncRetrying(
        retry=retry_if_exception_type(errors),
        stop=stop_never,
        wait=equal_jitter(first_s, max_s),
        before_sleep=before_sleep,
        reraise=True,
    )


def exception_of(state: RetryCallState) -> BaseException:
    """The exception the failed attempt raised (for ``before_sleep`` hooks)."""
    exc = state.outcome.exception() if state.outcome is not None else None
    if exc is None:
        raise RuntimeError("no failed attempt to report")
    return exc
