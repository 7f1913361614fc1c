"""Coalesce concurrent inference calls of one process into batched calls.

Under load a service receives many single-item requests at once; sending each to Triton on its
own costs one gRPC round trip, one model execution and one feature computation per item.
:class:`Coalescer` groups the items that arrive while earlier calls are in flight into one call,
without adding latency when the service is idle: a call goes out at once when fewer than
``max_in_flight`` calls are running, and otherwise waits only for the first of them to return.

    coalescer = Coalescer(predict_rides, max_items=256, max_in_flight=2)
    minutes, version = await coalescer.submit([ride])  # results in the order of the items
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")
Meta = TypeVar("Meta")

BatchFn = Callable[[list[Item]], Awaitable[tuple[Sequence[Result], Meta]]]


@dataclass(slots=True)
class _Pending(Generic[Item, Result, Meta]):
    items: Sequence[Item]
    future: asyncio.Future[tuple[Sequence[Result], Meta]] = field(repr=False)


class Coalescer(Generic[Item, Result, Meta]):
    """Batch items submitted concurrently into calls of ``run_batch``.

    ``run_batch`` takes a list of items and returns one result per item (same order) plus
    metadata shared by the whole call (e.g. the model version). An exception of a call reaches
    every caller whose items were in it.
    """

    def __init__(
        self, run_batch: BatchFn[Item, Result, Meta], *, max_items: int, max_in_flight: int = 2
    ) -> None:
        if max_items < 1 or max_in_flight < 1:
            raise ValueError("max_items and max_in_flight must be >= 1")
        self._run_batch = run_batch
        self.max_items = max_items
        self.max_in_flight = max_in_flight
        self._queue: deque[_Pending[Item, Result, Meta]] = deque()
        self._in_flight = 0

    async def submit(self, items: Sequence[Item]) -> tuple[Sequence[Result], Meta]:
        """Results for ``items`` (same order), computed in a call shared with concurrent items."""
        if len(items) >= self.max_items:
            return await self._run_batch(list(items))
        if not self._queue and self._in_flight < self.max_in_flight:
            # Nothing waiting and a free slot: run in the caller's task (no task, no future).
            self._in_flight += 1
            try:
                return await self._run_batch(list(items))
            finally:
                self._on_call_done(None)
        future: asyncio.Future[tuple[Sequence[Result], Meta]] = (
            asyncio.get_running_loop().create_future()
        )
        self._queue.append(_Pending(items, future))
        if self._in_flight < self.max_in_flight:
            self._start_call()
        return await future

    def _start_call(self) -> None:
        batch: list[_Pending[Item, Result, Meta]] = []
        count = 0
        while self._queue and count + len(self._queue[0].items) <= self.max_items:
            pending = self._queue.popleft()
            if pending.future.done():  # the caller went away
                continue
            batch.append(pending)
            count += len(pending.items)
        if not batch:
            return
        self._in_flight += 1
        task = asyncio.ensure_future(self._call(batch))
        task.add_done_callback(self._on_call_done)

    def _on_call_done(self, _task: asyncio.Future[None] | None) -> None:
        self._in_flight -= 1
        if self._queue:
            self._start_call()

    async def _call(self, batch: list[_Pending[Item, Result, Meta]]) -> None:
        items = list(batch[0].items) if len(batch) == 1 else [i for p in batch for i in p.items]
        try:
            results, meta = await self._run_batch(items)
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
            n = len(pending.items)
            if not pending.future.done():
                pending.future.set_result((results[offset : offset + n], meta))
            offset += n
