"""Metrics of the classifier service (``modelfleet_classifier_*``), defined once.

Live quality per model version: rolling macro-F1 and accuracy over the last N labelled
predictions (gauges, recomputed from Postgres after each feedback, so every replica reports the
same figures); estimated macro-F1 and accuracy (CBPE, ``estimated_quality``) over the last N
predictions whether labelled or not, with the window's size and the share labelled; the
calibration error (ECE) of each version's model card; the class distribution of predictions,
a confidence histogram and the lag between a prediction and its feedback.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ROLLING_MACRO_F1 = Gauge(
    "modelfleet_classifier_rolling_macro_f1",
    "Macro-F1 over the last N labelled predictions of a model version.",
    ["model", "version"],
)
ROLLING_ACCURACY = Gauge(
    "modelfleet_classifier_rolling_accuracy",
    "Accuracy over the last N labelled predictions of a model version.",
    ["model", "version"],
)
ROLLING_LABELS = Gauge(
    "modelfleet_classifier_rolling_window_labels",
    "Labelled predictions in the rolling window of a model version (at most N).",
    ["model", "version"],
)
ESTIMATED_MACRO_F1 = Gauge(
    "modelfleet_classifier_estimated_macro_f1",
    "Estimated macro-F1 (CBPE, from calibrated probabilities) over the last N predictions of a "
    "model version, labelled or not.",
    ["model", "version"],
)
ESTIMATED_ACCURACY = Gauge(
    "modelfleet_classifier_estimated_accuracy",
    "Estimated accuracy (CBPE) over the last N predictions of a model version.",
    ["model", "version"],
)
ESTIMATE_PREDICTIONS = Gauge(
    "modelfleet_classifier_estimate_window_predictions",
    "Predictions in the estimate's window of a model version (at most N).",
    ["model", "version"],
)
ESTIMATE_LABELLED_SHARE = Gauge(
    "modelfleet_classifier_estimate_window_labelled_ratio",
    "Share of the estimate's window that has been labelled so far (0-1).",
    ["model", "version"],
)
CARD_ECE = Gauge(
    "modelfleet_classifier_model_ece",
    "Expected calibration error (top label, 15 bins) of a model version on its held-out "
    "products, from its model card.",
    ["model", "version"],
)
PREDICTIONS = Counter(
    "modelfleet_classifier_predictions_total",
    "Classifications served, by model version and predicted category.",
    ["model", "version", "category"],
)
CONFIDENCE = Histogram(
    "modelfleet_classifier_confidence",
    "Probability of the top category of each classification.",
    ["model", "version"],
    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0),
)
FEEDBACK = Counter(
    "modelfleet_classifier_feedback_total",
    "Labelled feedback received, by model version and whether the prediction was right.",
    ["model", "version", "outcome"],
)
FEEDBACK_LAG = Histogram(
    "modelfleet_classifier_feedback_lag_seconds",
    "Time from a prediction to its (first) feedback.",
    ["model", "version"],
    buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 7 * 24 * 3600),
)


def forget_version(model: str, version: str) -> None:
    """Drop the rolling-quality gauges of a version that no longer serves (so a retired
    version's old F1 cannot keep an alert firing). The estimate's gauges and the card's ECE are
    dropped by ``estimated_quality`` with the version's window."""
    for gauge in (ROLLING_MACRO_F1, ROLLING_ACCURACY, ROLLING_LABELS):
        try:
            gauge.remove(model, version)
        except KeyError:
            pass


FEEDBACK_WAITS = Counter(
    "modelfleet_classifier_feedback_waits_total",
    "Feedback that arrived before its prediction row was written and waited for it, by "
    "outcome (found, missing: not written within CLASSIFIER_FEEDBACK_WAIT_S).",
    ["outcome"],
)
