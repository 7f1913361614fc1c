"""The Triton client's HTTP transport (binary tensors) against the real Triton: the same answers
as gRPC, the same error tree, the deadline, a server that went away and came back."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from services.common.errors import DependencyTimeout, TritonUnavailable
from services.common.triton import TritonClient
from services.stack.settings import StackSettings
from services.stack.supervisor import Stack

MODEL = "ride_duration"
OUTPUT = "duration_minutes"


def _clients(settings: StackSettings, **kwargs: float) -> tuple[TritonClient, TritonClient]:
    timeout_s = kwargs.get("timeout_s", 5.0)
    grpc = TritonClient(settings.triton_grpc_url, timeout_s=timeout_s)
    http = TritonClient(
        settings.triton_grpc_url, timeout_s=timeout_s, http_url=settings.triton_http_url
    )
    return grpc, http


async def test_http_answers_as_grpc(stack: Stack, stack_settings: StackSettings) -> None:
    grpc, http = _clients(stack_settings)
    assert (grpc.transport, http.transport) == ("grpc", "http")
    x = np.random.default_rng(3).random((5, 26), dtype=np.float32)
    try:
        by_grpc = await grpc.infer(MODEL, {"features": x}, outputs=[OUTPUT])
        by_http = await http.infer(MODEL, {"features": x}, outputs=[OUTPUT])
        pinned = await http.infer(
            MODEL, {"features": x[:1]}, outputs=[OUTPUT], version=by_grpc.model_version
        )
        # concurrent calls share the pool's connections, each gets its own answer
        singles = await asyncio.gather(
            *(http.infer(MODEL, {"features": x[i : i + 1]}, outputs=[OUTPUT]) for i in range(5))
        )
    finally:
        await grpc.close()
        await http.close()
    assert by_http.outputs[OUTPUT].shape == by_grpc.outputs[OUTPUT].shape == (5, 1)
    np.testing.assert_array_equal(by_http.outputs[OUTPUT], by_grpc.outputs[OUTPUT])
    assert (by_http.model_name, by_http.model_version) == (MODEL, by_grpc.model_version)
    assert pinned.model_version == by_grpc.model_version
    np.testing.assert_array_equal(
        np.concatenate([s.outputs[OUTPUT] for s in singles]), by_grpc.outputs[OUTPUT]
    )


async def test_http_errors_are_the_client_errors(
    stack: Stack, stack_settings: StackSettings
) -> None:
    _, http = _clients(stack_settings)
    x = np.zeros((1, 26), dtype=np.float32)
    try:
        with pytest.raises(TritonUnavailable):
            await http.infer("no_such_model", {"features": x}, outputs=[OUTPUT])
        with pytest.raises(TritonUnavailable):
            await http.infer(MODEL, {"features": x}, outputs=[OUTPUT], version="999")
        began = time.monotonic()
        with pytest.raises(DependencyTimeout):
            await http.infer(MODEL, {"features": x}, outputs=[OUTPUT], timeout_s=1e-6)
        assert time.monotonic() - began < 0.5
        # the pool is still usable after a timed-out call
        result = await http.infer(MODEL, {"features": x}, outputs=[OUTPUT])
        assert result.outputs[OUTPUT].shape == (1, 1)
    finally:
        await http.close()


async def test_http_recovers_when_triton_comes_back(
    stack: Stack, stack_settings: StackSettings
) -> None:
    _, http = _clients(stack_settings, timeout_s=2.0)
    x = np.zeros((1, 26), dtype=np.float32)
    triton = stack.component("triton")
    try:
        await http.infer(MODEL, {"features": x}, outputs=[OUTPUT])  # a kept-alive connection
        triton.stop()
        try:
            with pytest.raises(TritonUnavailable):
                await http.infer(MODEL, {"features": x}, outputs=[OUTPUT])
        finally:
            began = time.monotonic()
            triton.start()
            triton.wait_ready(began + triton.startup_timeout)
        result = await http.infer(MODEL, {"features": x}, outputs=[OUTPUT])
        assert result.outputs[OUTPUT].shape == (1, 1)
    finally:
        await http.close()
