"""Unit tests of the consumer's pull loop with a fake subscription: what retries, what logs."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import nats.errors
import pytest

from services.common.errors import BrokerUnavailable
from services.domain.taxi.events import RideEvent
from services.workers.consumer import PullConsumer
from services.workers.settings import WorkerSettings


class FakeSubscription:
    """fetch() takes the queued outcomes in turn (an exception raises, a list is returned)."""

    def __init__(self, outcomes: list[Any]) -> None:
        self.outcomes = outcomes
        self.fetches = 0

    async def fetch(self, _batch: int, **options: Any) -> list[Any]:
        self.fetches += 1
        if not self.outcomes:  # nothing more: an empty long-poll
            await asyncio.sleep(options["timeout"])
            return []
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return list(outcome)


def _consumer(sub: FakeSubscription) -> tuple[PullConsumer, list[Any]]:
    async def handler(_event: RideEvent) -> bool:
        return True

    consumer = PullConsumer(
        name="t", subject="rides.requested", handler=handler, settings=WorkerSettings()
    )
    processed: list[Any] = []

    async def subscribe() -> Any:
        return sub

    async def process(msg: Any) -> None:
        processed.append(msg)

    consumer._subscribe = subscribe
    consumer._process = process
    return consumer, processed


async def _until(condition: Any, timeout_s: float = 5.0) -> None:
    for _ in range(int(timeout_s / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not met in time")


async def test_outages_are_logged_and_retried_empty_polls_are_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="services.workers.consumer")
    sub = FakeSubscription(
        [
            nats.errors.TimeoutError(),
            ["a", "b"],
            BrokerUnavailable("nats away"),
            ConnectionRefusedError("refused"),
            ["c"],
        ]
    )
    consumer, processed = _consumer(sub)
    task = asyncio.create_task(consumer.run())
    try:
        await _until(lambda: processed == ["a", "b", "c"])
        warnings = [r.getMessage() for r in caplog.records]
        assert warnings == [
            "consumer t cannot pull: BrokerUnavailable('nats away')",
            "consumer t cannot pull: ConnectionRefusedError('refused')",
        ]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_other_errors_end_the_loop() -> None:
    consumer, _ = _consumer(FakeSubscription([BrokerUnavailable("away"), KeyError("bug")]))
    with pytest.raises(KeyError):
        await asyncio.wait_for(consumer.run(), 5.0)


async def test_pull_returns_nothing_on_an_empty_long_poll() -> None:
    consumer, _ = _consumer(FakeSubscription([nats.errors.TimeoutError()]))
    assert await consumer._pull() == []
