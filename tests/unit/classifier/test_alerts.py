"""Alertmanager webhook payloads: what validates, and which alerts start retraining."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from services.classifier.alerts import AlertNotification, retraining_alerts

NAMES = frozenset({"ModelfleetClassifierF1Low"})


def alert(status: str = "firing", **labels: str) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "ModelfleetClassifierF1Low", "model": "classifier", **labels},
        "annotations": {"summary": "classifier v1 macro-F1 is 0.42"},
        "startsAt": "2026-11-23T19:00:00.123Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph?g0.expr=...",
        "fingerprint": "c0ffee",
    }


def notification(*alerts: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A body as Alertmanager 0.25 sends it (webhook_configs, version 4)."""
    return {
        "receiver": "classifier-retraining",
        "status": "firing",
        "alerts": list(alerts),
        "groupLabels": {"alertname": "ModelfleetClassifierF1Low"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": '{}:{alertname="ModelfleetClassifierF1Low"}',
        "truncatedAlerts": 0,
        **fields,
    }


def matched(body: dict[str, Any], model: str = "classifier") -> int:
    parsed = AlertNotification.model_validate(body)
    return len(retraining_alerts(parsed, alert_names=NAMES, model=model))


def test_a_firing_f1_alert_of_the_model_starts_retraining() -> None:
    assert matched(notification(alert())) == 1


def test_resolved_unrelated_and_other_model_alerts_are_ignored() -> None:
    body = notification(
        alert("resolved"),
        alert(alertname="ModelfleetPodCrashLooping"),
        alert(model="other"),
        status="resolved",
    )
    assert matched(body) == 0


def test_an_alert_without_a_model_label_counts_for_this_model() -> None:
    one = alert()
    del one["labels"]["model"]
    assert matched(notification(one)) == 1


@pytest.mark.parametrize(
    "body",
    [
        notification(alert(), version="3"),
        notification(),  # no alerts
        notification(alert(status="pending")),
        notification({**alert(), "startsAt": "yesterday"}),
        notification({**alert(), "labels": {}}),
        {"version": "4", "status": "firing"},
    ],
    ids=["version-3", "no-alerts", "bad-status", "bad-time", "no-labels", "no-alerts-key"],
)
def test_a_body_that_is_not_a_version_4_notification_is_refused(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        AlertNotification.model_validate(body)
