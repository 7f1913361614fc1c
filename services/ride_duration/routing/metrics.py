"""Per-variant metrics of model services (what the rollout gates and the dashboard query).

Labels: ``service`` (ride-duration ...), ``variant`` (the table's name), ``role`` and
``model_version`` ("default" when the table leaves it to Triton). The children a request needs
are looked up once per table version (:class:`VariantMetrics`), never per request.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram

from services.common.metrics import LATENCY_BUCKETS

#: Predicted values of regression models (minutes, dollars ...): 0.5 to 1,000, roughly x1.5.
VALUE_BUCKETS = (0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1000)
#: |shadow - answer| relative to the answer.
RELATIVE_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
#: Shadow latency minus the answer's latency, seconds (negative: the shadow was faster).
LATENCY_DELTA_BUCKETS = (
    -0.1, -0.025, -0.01, -0.005, -0.002, -0.001, 0.0, 0.001, 0.002, 0.005, 0.01, 0.025, 0.1,
)  # fmt: skip

_VARIANT = ["service", "variant", "role", "model_version"]

VARIANT_REQUESTS = Counter(
    "modelfleet_variant_requests_total",
    "Predictions answered by each variant of the routing table (rows, not HTTP requests).",
    _VARIANT,
)
VARIANT_ERRORS = Counter(
    "modelfleet_variant_errors_total",
    "Predictions of each variant that failed, by error class.",
    [*_VARIANT, "error"],
)
VARIANT_LATENCY = Histogram(
    "modelfleet_variant_latency_seconds",
    "Time for a variant to compute one prediction call (features, Triton), served or shadow.",
    _VARIANT,
    buckets=LATENCY_BUCKETS,
)
VARIANT_PREDICTION = Histogram(
    "modelfleet_variant_prediction",
    "Distribution of the values each variant predicted.",
    _VARIANT,
    buckets=VALUE_BUCKETS,
)

SHADOW_COMPARISONS = Counter(
    "modelfleet_shadow_comparisons_total",
    "Shadow predictions compared with the answer: agree (within tolerance), disagree, error.",
    ["service", "variant", "outcome"],
)
SHADOW_ABS_DELTA = Histogram(
    "modelfleet_shadow_abs_delta",
    "|shadow - answer| per compared row, in the model's unit.",
    ["service", "variant"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 50, 100),
)
SHADOW_REL_DELTA = Histogram(
    "modelfleet_shadow_rel_delta",
    "|shadow - answer| / |answer| per compared row.",
    ["service", "variant"],
    buckets=RELATIVE_BUCKETS,
)
SHADOW_LATENCY_DELTA = Histogram(
    "modelfleet_shadow_latency_delta_seconds",
    "Shadow call latency minus the answer's latency, per compared call.",
    ["service", "variant"],
    buckets=LATENCY_DELTA_BUCKETS,
)
SHADOW_DROPPED = Counter(
    "modelfleet_shadow_dropped_total",
    "Shadow calls dropped because the shadow queue was full.",
    ["service"],
)
SHADOW_QUEUE_DEPTH = Gauge(
    "modelfleet_shadow_queue_depth", "Shadow calls waiting in the queue.", ["service"]
)

ROUTING_VERSION = Gauge(
    "modelfleet_routing_version",
    "Version of the routing table this replica serves (0: none written).",
    ["service"],
)
ROUTING_RELOADS = Counter(
    "modelfleet_routing_reloads_total",
    "Routing table versions loaded, by what noticed the change (start, notify, poll).",
    ["service", "source"],
)
ROUTING_ERRORS = Counter(
    "modelfleet_routing_refresh_errors_total",
    "Failed reads of the routing table (the replica keeps serving its last table).",
    ["service"],
)

OUTCOME_MAE = Gauge(
    "modelfleet_variant_outcome_mae",
    "Mean absolute error of each variant's predictions whose truth arrived, over the window.",
    ["service", "variant", "model_version"],
)
OUTCOME_RMSE = Gauge(
    "modelfleet_variant_outcome_rmse",
    "Root mean squared error of each variant's predictions whose truth arrived, over the window.",
    ["service", "variant", "model_version"],
)
OUTCOME_COUNT = Gauge(
    "modelfleet_variant_outcomes",
    "Predictions with a known truth each variant's MAE/RMSE are computed over (the window).",
    ["service", "variant", "model_version"],
)


def version_label(version: str) -> str:
    """The ``model_version`` label of a Triton version string ("" -> "default")."""
    return version or "default"


@dataclass(frozen=True, slots=True)
class VariantMetrics:
    """The metric children of one variant, looked up once per table version."""

    requests: Counter
    latency: Histogram
    prediction: Histogram
    labels: tuple[str, str, str, str]

    @classmethod
    def of(cls, *, service: str, variant: str, role: str, version: str) -> VariantMetrics:
        labels = (service, variant, role, version_label(version))
        return cls(
            requests=VARIANT_REQUESTS.labels(*labels),
            latency=VARIANT_LATENCY.labels(*labels),
            prediction=VARIANT_PREDICTION.labels(*labels),
            labels=labels,
        )

    def observe(self, values: list[float], duration_s: float) -> None:
        """One successful call: its rows, its latency and every predicted value."""
        self.requests.inc(len(values))
        self.latency.observe(duration_s)
        for value in values:
            self.prediction.observe(value)

    def error(self, exc: BaseException) -> None:
        VARIANT_ERRORS.labels(*self.labels, type(exc).__name__).inc()
