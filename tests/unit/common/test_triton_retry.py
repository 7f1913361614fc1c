"""Unit tests of the Triton client's retry policy with a fake gRPC client (no server)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY
from tenacity import RetryCallState
from tritonclient.utils import InferenceServerException

from services.common.errors import DependencyFailed, DependencyTimeout, TritonUnavailable
from services.common.triton import TritonClient, triton_retrying

X = {"features": np.zeros((2, 3), dtype=np.float32)}


def _error(status: str) -> InferenceServerException:
    return InferenceServerException(f"{status} now", status=f"StatusCode.{status}")


@dataclass
class _Response:
    model_name: str = "m"
    model_version: str = "4"


class _Result:
    def get_response(self) -> _Response:
        return _Response()

    def as_numpy(self, _name: str) -> Any:
        return np.ones((2, 1), dtype=np.float32)


@dataclass
class FakeGrpc:
    """Raises the queued outcomes (exceptions) in turn, then answers."""

    outcomes: list[BaseException]
    delay_s: float = 0.0
    timeouts: list[float] = field(default_factory=list)

    async def infer(self, _model: str, _inputs: Any, **kwargs: Any) -> _Result:
        self.timeouts.append(kwargs["client_timeout"])
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.outcomes:
            raise self.outcomes.pop(0)
        return _Result()

    async def close(self) -> None:
        pass


def _retries(model: str) -> float:
    return REGISTRY.get_sample_value("modelfleet_triton_retries_total", {"model": model}) or 0.0


async def _client(fake: FakeGrpc, *, retries: int = 2, timeout_s: float = 1.0) -> TritonClient:
    client = TritonClient("127.0.0.1:1", timeout_s=timeout_s, retries=retries)
    await client.close()
    client._client = fake
    return client


async def test_unavailable_is_retried_and_counted() -> None:
    fake = FakeGrpc([_error("UNAVAILABLE"), _error("UNAVAILABLE")])
    client = await _client(fake, retries=2)
    before = _retries("retry_ok")
    result = await client.infer("retry_ok", X, outputs=["y"])
    assert result.model_version == "4" and result.outputs["y"].shape == (2, 1)
    assert len(fake.timeouts) == 3 and _retries("retry_ok") - before == 2
    assert fake.timeouts == sorted(fake.timeouts, reverse=True)  # one deadline for all attempts
    assert fake.timeouts[0] <= 1.0


async def test_retries_run_out_as_triton_unavailable() -> None:
    fake = FakeGrpc([_error("UNAVAILABLE")] * 3)
    client = await _client(fake, retries=2)
    before = _retries("retry_out")
    with pytest.raises(TritonUnavailable):
        await client.infer("retry_out", X, outputs=["y"])
    assert len(fake.timeouts) == 3 and _retries("retry_out") - before == 2


@pytest.mark.parametrize(
    ("status", "error"),
    [
        ("NOT_FOUND", TritonUnavailable),
        ("DEADLINE_EXCEEDED", DependencyTimeout),
        ("INVALID_ARGUMENT", DependencyFailed),
    ],
)
async def test_other_errors_are_not_retried(status: str, error: type[Exception]) -> None:
    fake = FakeGrpc([_error(status), _error(status)])
    client = await _client(fake)
    with pytest.raises(error):
        await client.infer(f"no_retry_{status}", X, outputs=["y"])
    assert len(fake.timeouts) == 1 and _retries(f"no_retry_{status}") == 0


async def test_a_later_non_retryable_error_stops_the_retries() -> None:
    fake = FakeGrpc([_error("UNAVAILABLE"), _error("INVALID_ARGUMENT"), _error("UNAVAILABLE")])
    client = await _client(fake, retries=5)
    with pytest.raises(DependencyFailed):
        await client.infer("then_bad", X, outputs=["y"])
    assert len(fake.timeouts) == 2


async def test_no_retries_configured() -> None:
    fake = FakeGrpc([_error("UNAVAILABLE")])
    client = await _client(fake, retries=0)
    with pytest.raises(TritonUnavailable):
        await client.infer("zero", X, outputs=["y"])
    assert len(fake.timeouts) == 1 and _retries("zero") == 0


async def test_retries_end_at_the_deadline() -> None:
    fake = FakeGrpc([_error("UNAVAILABLE")] * 10, delay_s=0.03)
    client = await _client(fake, retries=5, timeout_s=0.05)
    started = time.monotonic()
    with pytest.raises((DependencyTimeout, TritonUnavailable)):
        await client.infer("late", X, outputs=["y"])
    assert time.monotonic() - started < 0.05 + 0.03 + 0.05  # the deadline, one call, slack


async def test_cancellation_is_not_retried() -> None:
    fake = FakeGrpc([asyncio.CancelledError()])
    client = await _client(fake)
    with pytest.raises(asyncio.CancelledError):
        await client.infer("cancelled", X, outputs=["y"])
    assert len(fake.timeouts) == 1


def test_pauses_are_jittered_and_capped_at_the_deadline() -> None:
    policy = triton_retrying("m", retries=5, deadline=time.monotonic() + 60)
    for attempt, high in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.5), (5, 0.5)]:
        state = RetryCallState(retry_object=policy, fn=None, args=(), kwargs={})
        state.attempt_number = attempt
        assert all(0 <= policy.wait(state) <= high for _ in range(100))
    late = triton_retrying("m", retries=5, deadline=time.monotonic() - 1)
    state = RetryCallState(retry_object=late, fn=None, args=(), kwargs={})
    assert late.wait(state) == 0.0
