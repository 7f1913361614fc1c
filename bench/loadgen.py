"""Closed-loop load: N workers, each sending its next request as soon as the last one answered.

Latencies are measured around each call; throughput is calls completed over the measured window
(after a warm-up). Async calls run as N coroutines on one event loop; blocking calls (in-process
ONNX Runtime, which releases the GIL) run on N threads.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass
class RunResult:
    """Latencies (seconds) of every call in the measured window, and its length."""

    name: str
    concurrency: int
    latencies: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0
    errors: int = 0

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies) * 1000 if self.latencies else float("nan")

    @property
    def p99_ms(self) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.elapsed_s if self.elapsed_s else 0.0


async def run_async(
    name: str,
    call: Callable[[int, int], Awaitable[None]],
    *,
    concurrency: int,
    duration_s: float,
    warmup_s: float,
) -> RunResult:
    """Drive ``call(worker, i)`` from ``concurrency`` coroutines for warm-up + duration."""
    result = RunResult(name, concurrency)
    start = time.perf_counter()
    measure_from = start + warmup_s
    stop_at = measure_from + duration_s

    async def worker(index: int) -> None:
        i = 0
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                return
            try:
                await call(index, i)
            except Exception:
                result.errors += 1
                continue
            t1 = time.perf_counter()
            if t0 >= measure_from and t1 <= stop_at:
                result.latencies.append(t1 - t0)
            i += 1

    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    result.elapsed_s = duration_s
    return result


def run_threads(
    name: str,
    call: Callable[[int, int], None],
    *,
    concurrency: int,
    duration_s: float,
    warmup_s: float,
) -> RunResult:
    """Drive blocking ``call(worker, i)`` from ``concurrency`` threads."""
    result = RunResult(name, concurrency)
    lock = threading.Lock()
    start = time.perf_counter()
    measure_from = start + warmup_s
    stop_at = measure_from + duration_s

    def worker(index: int) -> None:
        local: list[float] = []
        i = 0
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                break
            call(index, i)
            t1 = time.perf_counter()
            if t0 >= measure_from and t1 <= stop_at:
                local.append(t1 - t0)
            i += 1
        with lock:
            result.latencies.extend(local)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.elapsed_s = duration_s
    return result
