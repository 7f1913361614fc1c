"""Metrics of the backend (``modelfleet_backend_*``); shared HTTP/dependency ones are common."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

RIDES_CREATED = Counter(
    "modelfleet_backend_rides_created_total",
    "Rides accepted, by outcome of the initial-duration call (ok, timeout, unavailable).",
    ["initial_duration"],
)
TELEMETRY_ACCEPTED = Counter(
    "modelfleet_backend_telemetry_total", "Telemetry updates accepted (outbox events)."
)
OUTBOX_PUBLISHED = Counter(
    "modelfleet_backend_outbox_published_total",
    "Outbox events published to JetStream, by outcome (sent, duplicate).",
    ["outcome"],
)
RELAY_ERRORS = Counter(
    "modelfleet_backend_relay_errors_total",
    "Outbox relay rounds that failed, by error (the relay retries with backoff).",
    ["error"],
)
SSE_STREAMS = Gauge("modelfleet_backend_sse_streams", "Open Server-Sent Events streams.")
IDEMPOTENT_REPLAYS = Counter(
    "modelfleet_backend_idempotent_replays_total",
    "POST /v1/rides answered from an earlier request with the same Idempotency-Key.",
)
OUTBOX_UNSENT = Gauge(
    "modelfleet_backend_outbox_unsent_events",
    "Outbox events not yet published to JetStream (all replicas' outbox: one shared table).",
)
OUTBOX_OLDEST_AGE = Gauge(
    "modelfleet_backend_outbox_oldest_unsent_age_seconds",
    "Age of the oldest unpublished outbox event (0 when none is waiting).",
)
PRUNED_ROWS = Counter(
    "modelfleet_backend_pruned_rows_total",
    "Rows deleted by retention (expired idempotency keys, old published outbox events).",
    ["table"],
)
