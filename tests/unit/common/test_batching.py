"""Coalescer: concurrent items share calls, results keep their order, errors reach every caller."""

from __future__ import annotations

import asyncio

import pytest

from services.common.batching import Coalescer


class Recorder:
    def __init__(self, delay_s: float = 0.01, fail: bool = False) -> None:
        self.calls: list[int] = []
        self.delay_s = delay_s
        self.fail = fail

    async def __call__(self, items: list[float]) -> tuple[list[float], str]:
        self.calls.append(len(items))
        await asyncio.sleep(self.delay_s)
        if self.fail:
            raise RuntimeError("model exploded")
        return [i * 10 for i in items], f"v{len(self.calls)}"


async def test_idle_call_goes_out_alone_and_at_once() -> None:
    recorder = Recorder(delay_s=0)
    coalescer = Coalescer(recorder, max_items=64)
    result, meta = await coalescer.submit([1.0])
    assert recorder.calls == [1]
    assert list(result) == [10.0]
    assert meta == "v1"


async def test_concurrent_rows_are_grouped_and_keep_their_order() -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder, max_items=64, max_in_flight=1)
    rows = [[float(i)] for i in range(20)]
    results = await asyncio.gather(*(coalescer.submit(r) for r in rows))
    assert [list(r[0]) for r in results] == [[i * 10.0] for i in range(20)]
    assert sum(recorder.calls) == 20
    assert recorder.calls[0] == 1  # the first goes at once
    assert len(recorder.calls) == 2  # the other 19 waited for it and went together


async def test_batches_never_exceed_max_rows() -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder, max_items=4, max_in_flight=1)
    await asyncio.gather(*(coalescer.submit([1.0, 2.0]) for _ in range(9)))
    assert max(recorder.calls) <= 4
    assert sum(recorder.calls) == 18


async def test_error_reaches_every_caller_of_the_batch() -> None:
    recorder = Recorder(fail=True)
    coalescer = Coalescer(recorder, max_items=64, max_in_flight=1)
    results = await asyncio.gather(
        *(coalescer.submit([1.0]) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)


async def test_cancelled_caller_does_not_break_the_others() -> None:
    recorder = Recorder(delay_s=0.05)
    coalescer = Coalescer(recorder, max_items=64, max_in_flight=1)
    first = asyncio.ensure_future(coalescer.submit([1.0]))
    await asyncio.sleep(0)
    waiting = asyncio.ensure_future(coalescer.submit([2.0]))
    other = asyncio.ensure_future(coalescer.submit([3.0]))
    await asyncio.sleep(0)
    waiting.cancel()
    assert list((await first)[0]) == [10.0]
    assert list((await other)[0]) == [30.0]
    assert recorder.calls == [1, 1]  # the cancelled row was not sent


def test_rejects_nonsense_limits() -> None:
    with pytest.raises(ValueError):
        Coalescer(Recorder(), max_items=0)
