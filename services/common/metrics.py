"""Metrics every service shares, defined once.

Service-specific metrics live in the service's own ``metrics.py`` with names
``modelfleet_<service>_*``. Here: one histogram for every call to another process, labelled by
dependency (``triton``, ``postgres``, ``nats``, ``http:<service>``), operation and outcome.

    with observe_dependency("postgres", "insert_predictions"):
        await conn.copy_records_to_table(...)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Gauge, Histogram
from prometheus_fastapi_instrumentator.metrics import Info

#: Sub-millisecond to seconds: Triton calls here take ~0.5 ms, database calls ~1 ms.
LATENCY_BUCKETS = (
    0.00025,
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests served, by route template, method and status.",
    ["handler", "method", "status"],
)

HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time to serve an HTTP request, by route template and method.",
    ["handler", "method"],
    buckets=LATENCY_BUCKETS,
)

DEPENDENCY_LATENCY = Histogram(
    "modelfleet_dependency_request_duration_seconds",
    "Duration of calls to other processes (Triton, Postgres, NATS, other services).",
    ["dependency", "operation", "outcome"],
    buckets=LATENCY_BUCKETS,
)

FANOUT_CALLS = Counter(
    "modelfleet_fanout_calls_total",
    "Downstream calls of a fan-out (services.backend.fanout), by downstream and outcome "
    "(ok, timeout, unavailable, not_configured).",
    ["downstream", "outcome"],
)

TRITON_LATENCY = Histogram(
    "modelfleet_triton_request_duration_seconds",
    "Duration of one Triton inference call (all attempts), per model.",
    ["model", "outcome"],
    buckets=LATENCY_BUCKETS,
)

TRITON_RETRIES = Counter(
    "modelfleet_triton_retries_total",
    "Triton calls retried after UNAVAILABLE.",
    ["model"],
)

TRITON_BATCH_ROWS = Histogram(
    "modelfleet_triton_batch_rows",
    "Rows per Triton inference call (after request coalescing).",
    ["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)


LATENCY_BUDGET = Gauge(
    "modelfleet_latency_budget_seconds",
    "The p99 request duration this service is held to (its LATENCY_BUDGET_S, rounded up to a"
    " bucket bound of http_request_duration_seconds): ModelfleetLatencyP99OverBudget.",
)

_EVENT_STREAM = "text/event-stream"


def export_latency_budget(seconds: float) -> float:
    """Export the service's latency budget; returns what is exported.

    The alert compares it with ``histogram_quantile`` over :data:`HTTP_LATENCY`, which
    interpolates inside a bucket: requests that all take 2.0 s read as a p99 near 2.5 s. So the
    budget is rounded up to the bucket bound that holds it (2.2 s -> 2.5 s)."""
    bound = next((b for b in LATENCY_BUCKETS if b >= seconds), seconds)
    LATENCY_BUDGET.set(bound)
    return bound


def observe_http(handler: str, method: str, status: int | str, duration_s: float) -> None:
    """Record one served request (called by the instrumentator and by fast routes alike)."""
    HTTP_REQUESTS.labels(handler, method, str(status)).inc()
    HTTP_LATENCY.labels(handler, method).observe(duration_s)


def instrumentator_http_metrics(info: Info) -> None:
    """prometheus-fastapi-instrumentator instrumentation feeding :data:`HTTP_REQUESTS`.

    An event stream (SSE) counts its time to the response's start: how long it then stays open
    is how long the client listens (a ride's events, a streamed answer), not how slow the
    service is; the chatbot measures its streamed answers' own latencies (time to first token).
    """
    streamed = (info.response is not None) and info.response.headers.get(
        "content-type", ""
    ).startswith(_EVENT_STREAM)
    duration = info.modified_duration_without_streaming if streamed else info.modified_duration
    observe_http(info.modified_handler, info.method, info.modified_status, duration)


@contextmanager
def observe_dependency(dependency: str, operation: str) -> Iterator[None]:
    """Time a call to another process; outcome is ``ok`` or the exception's class name."""
    start = time.perf_counter()
    outcome = "ok"
    try:
        yield
    except BaseException as exc:
        outcome = type(exc).__name__
        raise
    finally:
        DEPENDENCY_LATENCY.labels(dependency, operation, outcome).observe(
            time.perf_counter() - start
        )
