"""Metrics of the city's simulated APIs."""

from __future__ import annotations

from prometheus_client import Counter

SIMULATED = Counter(
    "modelfleet_city_answers_total",
    "Answers of the simulated location and sensor APIs, by outcome (ok, failure: a simulated 503).",
    ["service", "outcome"],
)
