"""Unit tests of the LISTEN reconnect loop with a fake pool: retries, logs, backoff reset."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from typing import Any

import pytest
from tenacity import RetryCallState

from services.common import pg_listen
from services.common.pg_listen import PgListener


class FakeConnection:
    def __init__(self) -> None:
        self.closed = False
        self.listeners: list[str] = []

    def is_closed(self) -> bool:
        return self.closed

    async def add_listener(self, channel: str, _callback: Any) -> None:
        self.listeners.append(channel)

    async def remove_listener(self, channel: str, _callback: Any) -> None:
        self.listeners.remove(channel)

    async def execute(self, _sql: str, **_options: Any) -> str:
        raise ConnectionResetError("reset by peer")


class FakePool:
    """acquire() takes the queued outcomes in turn: an exception raises, a connection is lent."""

    def __init__(self, outcomes: list[Any]) -> None:
        self.outcomes = outcomes

    @asynccontextmanager
    async def acquire(self, **_options: Any) -> Any:
        outcome = self.outcomes.pop(0) if self.outcomes else OSError("no more")
        if isinstance(outcome, BaseException):
            raise outcome
        yield outcome


async def test_reconnects_log_the_errors_and_restart_the_backoff(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="services.common.pg_listen")
    monkeypatch.setattr(pg_listen, "HEALTH_CHECK_S", 0.001)
    closing, failing = FakeConnection(), FakeConnection()
    pool = FakePool([ConnectionRefusedError("refused"), TimeoutError(), closing, failing])
    connected: list[FakeConnection] = []

    async def on_connected() -> None:
        conn = closing if not connected else failing
        connected.append(conn)
        closing.closed = True  # the first connection is closed by the server: no error

    listener = PgListener(pool, "chan", on_notify=lambda _p: None, on_connected=on_connected)
    attempts: list[int] = []
    listen = listener._listen

    async def recording(state: RetryCallState) -> None:
        attempts.append(state.attempt_number)
        await listen(state)

    listener._listen = recording
    task = asyncio.create_task(listener.run())
    try:
        for _ in range(1000):
            if len(attempts) >= 5:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    # 1, 2 failed; 3 connected (the backoff starts over), closed; 2 connected, reset; 2 failed.
    assert attempts[:5] == [1, 2, 3, 2, 2]
    assert connected == [closing, failing]
    assert failing.listeners == []  # removed when the connection was lost
    assert [r.getMessage() for r in caplog.records][:3] == [
        "listener on 'chan' lost its connection: ConnectionRefusedError('refused')",
        "listener on 'chan' lost its connection: TimeoutError()",
        "listener on 'chan' lost its connection: ConnectionResetError('reset by peer')",
    ]


async def test_other_errors_end_the_listener() -> None:
    async def on_connected() -> None:
        raise ValueError("a bug")

    pool = FakePool([FakeConnection()])
    listener = PgListener(pool, "chan", on_notify=lambda _p: None, on_connected=on_connected)
    with pytest.raises(ValueError, match="a bug"):
        await asyncio.wait_for(listener.run(), 5.0)
