"""Coalesce concurrent inference calls of one process into batched calls.

Under load a service receives many single-row requests at once; sending each to Triton on its
own costs one gRPC round trip and one model execution per row. :class:`Coalescer` groups the
rows that arrive while earlier calls are in flight into one call, without adding latency when
the service is idle: a call goes out at once when fewer than ``max_in_flight`` calls are
running, and otherwise waits only for the first of them to come back.

    coalescer = Coalescer(run_batch, max_rows=1024, max_in_flight=2)
    prediction, version = await coalescer.submit(features)  # features: (n, k) array
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt

Meta = TypeVar("Meta")
BatchFn = Callable[[npt.NDArray[Any]], Awaitable[tuple[npt.NDArray[Any], Meta]]]


@dataclass(slots=True)
class _Pending(Generic[Meta]):
    rows: npt.NDArray[Any]
    future: asyncio.Future[tuple[npt.NDArray[Any], Meta]] = field(repr=False)


class Coalescer(Generic[Meta]):
    """Batch rows submitted concurrently into calls of ``run_batch``.

    ``run_batch`` takes an (n, ...) array and returns an (n, ...) array of results plus metadata
    shared by the whole call (e.g. the model version). Exceptions of a call reach every caller
    whose rows were in it.
    """

    def __init__(self, run_batch: BatchFn[Meta], *, max_rows: int, max_in_flight: int = 2) -> None:
        if max_rows < 1 or max_in_flight < 1:
            raise ValueError("max_rows and max_in_flight must be >= 1")
        self._run_batch = run_batch
        self.max_rows = max_rows
        self.max_in_flight = max_in_flight
        self._queue: deque[_Pending[Meta]] = deque()
        self._in_flight = 0

    async def submit(self, rows: npt.NDArray[Any]) -> tuple[npt.NDArray[Any], Meta]:
        """Results for ``rows`` (same order), computed in a call shared with concurrent rows."""
        if len(rows) >= self.max_rows:
            return await self._run_batch(rows)
        future: asyncio.Future[tuple[npt.NDArray[Any], Meta]] = (
            asyncio.get_running_loop().create_future()
        )
        self._queue.append(_Pending(rows, future))
        if self._in_flight < self.max_in_flight:
            self._start_call()
        return await future

    def _start_call(self) -> None:
        batch: list[_Pending[Meta]] = []
        count = 0
        while self._queue and count + len(self._queue[0].rows) <= self.max_rows:
            item = self._queue.popleft()
            if item.future.done():  # the caller went away
                continue
            batch.append(item)
            count += len(item.rows)
        if not batch:
            return
        self._in_flight += 1
        task = asyncio.ensure_future(self._call(batch))
        task.add_done_callback(self._on_call_done)

    def _on_call_done(self, _task: asyncio.Future[None]) -> None:
        self._in_flight -= 1
        if self._queue:
            self._start_call()

    async def _call(self, batch: list[_Pending[Meta]]) -> None:
        rows = batch[0].rows if len(batch) == 1 else np.concatenate([p.rows for p in batch])
        try:
            results, meta = await self._run_batch(rows)
        except asyncio.CancelledError:
            for pending in batch:
                pending.future.cancel()
            raise
        except Exception as exc:  # handed to every caller of this batch
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        offset = 0
        for pending in batch:
            n = len(pending.rows)
            if not pending.future.done():
                pending.future.set_result((results[offset : offset + n], meta))
            offset += n
