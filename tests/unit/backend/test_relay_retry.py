"""Unit tests of the outbox relay's round loop with its NATS and Postgres parts faked."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from prometheus_client import REGISTRY

from services.backend.relay import OutboxRelay
from services.backend.settings import BackendSettings
from services.common.errors import BrokerUnavailable, DatabaseUnavailable


def _errors(kind: str) -> float:
    return (
        REGISTRY.get_sample_value("modelfleet_backend_relay_errors_total", {"error": kind}) or 0.0
    )


def _relay(outcomes: list[Any], *, batch: int = 10) -> tuple[OutboxRelay, list[str]]:
    """A relay whose rounds take ``outcomes`` in turn (an exception raises, a number is sent)."""
    settings = BackendSettings(relay_batch_size=batch, relay_retry_max_s=0.02, log_json=False)
    relay = OutboxRelay(None, settings)
    rounds: list[str] = []

    async def jetstream() -> Any:
        return object()

    async def relay_once(_js: Any) -> int:
        outcome = outcomes.pop(0) if outcomes else 0
        rounds.append(type(outcome).__name__)
        if isinstance(outcome, BaseException):
            raise outcome
        return int(outcome)

    relay._jetstream = jetstream
    relay.relay_once = relay_once
    return relay, rounds


async def _until(condition: Any, timeout_s: float = 5.0) -> None:
    for _ in range(int(timeout_s / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not met in time")


async def test_failed_rounds_are_counted_logged_and_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="services.backend.relay")
    relay, rounds = _relay([BrokerUnavailable("nats down"), DatabaseUnavailable("pg down"), 10, 3])
    broker, database = _errors("BrokerUnavailable"), _errors("DatabaseUnavailable")
    task = asyncio.create_task(relay.run())
    try:
        await _until(lambda: len(rounds) >= 4)
        assert rounds == ["BrokerUnavailable", "DatabaseUnavailable", "int", "int"]
        assert _errors("BrokerUnavailable") - broker == 1
        assert _errors("DatabaseUnavailable") - database == 1
        assert [r.getMessage() for r in caplog.records] == [
            "outbox relay round failed: nats down",
            "outbox relay round failed: pg down",
        ]
        relay.wake()  # idle after a short round: a wake starts the next one
        await _until(lambda: len(rounds) >= 5)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_other_errors_end_the_relay() -> None:
    relay, rounds = _relay([BrokerUnavailable("down"), ValueError("a bug")])
    with pytest.raises(ValueError, match="a bug"):
        await asyncio.wait_for(relay.run(), 5.0)
    assert rounds == ["BrokerUnavailable", "ValueError"]


async def test_cancelled_during_the_backoff() -> None:
    relay, rounds = _relay([BrokerUnavailable("down")] * 1000)
    relay.settings = relay.settings.model_copy(update={"relay_retry_max_s": 60.0})
    task = asyncio.create_task(relay.run())
    await _until(lambda: len(rounds) >= 3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
