"""Unit tests of the retry policies (tenacity): which errors retry, the pauses, the reports."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tenacity import RetryCallState

from services.common.errors import BrokerUnavailable
from services.common.retry import equal_jitter, exception_of, retry_forever


def _state(attempt: int) -> RetryCallState:
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    return state


def test_equal_jitter_doubles_from_first_to_the_cap() -> None:
    wait = equal_jitter(0.1, 2.0)
    for attempt, high in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.6), (6, 2.0), (90, 2.0)]:
        pauses = [wait(_state(attempt)) for _ in range(200)]
        assert all(high / 2 <= pause <= high for pause in pauses), attempt
        assert max(pauses) - min(pauses) > high / 4  # jittered


async def test_retry_forever_retries_only_the_named_errors() -> None:
    seen: list[str] = []
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 4:
            raise BrokerUnavailable(f"down {calls}")
        return "up"

    def report(state: RetryCallState) -> None:
        seen.append(str(exception_of(state)))

    retrying = retry_forever(
        errors=(BrokerUnavailable,), first_s=0.002, max_s=0.004, before_sleep=report
    )
    assert await retrying(flaky) == "up"
    assert seen == ["down 1", "down 2", "down 3"]

    async def broken() -> None:
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        await retry_forever(
            errors=(BrokerUnavailable,), first_s=0.002, max_s=0.004, before_sleep=report
        )(broken)
    assert len(seen) == 3


async def test_retry_forever_never_retries_or_swallows_cancellation() -> None:
    calls = 0

    async def cancelled() -> None:
        nonlocal calls
        calls += 1
        raise asyncio.CancelledError

    retrying = retry_forever(
        errors=(Exception,), first_s=0.002, max_s=0.004, before_sleep=lambda _s: None
    )
    with pytest.raises(asyncio.CancelledError):
        await retrying(cancelled)
    assert calls == 1


async def test_a_cancelled_pause_ends_the_retries() -> None:
    async def down() -> Any:
        raise BrokerUnavailable("down")

    retrying = retry_forever(
        errors=(BrokerUnavailable,), first_s=60.0, max_s=60.0, before_sleep=lambda _s: None
    )
    task = asyncio.create_task(retrying(down))
    await asyncio.sleep(0.05)  # now in the first pause
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_exception_of_needs_a_failed_attempt() -> None:
    with pytest.raises(RuntimeError):
        exception_of(_state(1))
