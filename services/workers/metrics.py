"""Metrics of the streaming workers (``modelfleet_worker_*``, labelled by worker)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from services.common.metrics import LATENCY_BUCKETS

PROCESSED = Counter(
    "modelfleet_worker_processed_total",
    "Events processed and acknowledged, by worker and outcome (written, unchanged).",
    ["worker", "outcome"],
)
FAILED = Counter(
    "modelfleet_worker_failed_total",
    "Event deliveries that failed and were left for redelivery, by worker and error.",
    ["worker", "error"],
)
DEAD_LETTERS = Counter(
    "modelfleet_worker_dead_letters_total",
    "Events moved to the dead-letter subject rides.dead.<worker>, by worker and reason.",
    ["worker", "reason"],
)
PROCESSING_SECONDS = Histogram(
    "modelfleet_worker_processing_seconds",
    "Time from fetch to ack of one event (model call and database write), by worker.",
    ["worker"],
    buckets=LATENCY_BUCKETS,
)
CONSUMER_LAG = Gauge(
    "modelfleet_worker_consumer_lag",
    "Events of the worker's subjects not yet delivered to it (JetStream num_pending).",
    ["worker"],
)
ACK_PENDING = Gauge(
    "modelfleet_worker_ack_pending",
    "Events delivered to the worker and not yet acknowledged (JetStream num_ack_pending).",
    ["worker"],
)
