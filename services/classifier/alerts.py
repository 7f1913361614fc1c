"""Alertmanager's webhook payload (format version "4") and which of its alerts start retraining.

Alertmanager POSTs one notification per alert group to a ``webhook_configs`` URL:

    {"version": "4", "status": "firing", "receiver": "classifier", "groupKey": "...",
     "alerts": [{"status": "firing", "labels": {"alertname": "ModelfleetClassifierF1Low",
                 "model": "classifier", "version": "3"}, "annotations": {...},
                 "startsAt": "2026-11-23T19:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                 "fingerprint": "..."}], ...}

:func:`retraining_alerts` keeps the alerts that ask for a retraining run of the served model:
firing, named in ``CLASSIFIER_RETRAINING_ALERTS``, and (when the alert has a ``model`` label)
about this service's model. Resolved and unrelated alerts are acknowledged and ignored.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from services.common.fields import JsonDatetime, JsonRequest

AlertStatus = Literal["firing", "resolved"]


class Alert(JsonRequest):
    """One alert of a notification."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    status: AlertStatus
    labels: dict[str, str] = Field(min_length=1)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: JsonDatetime = Field(alias="startsAt")
    ends_at: JsonDatetime | None = Field(default=None, alias="endsAt")
    generator_url: str = Field(default="", alias="generatorURL")
    fingerprint: str = ""


class AlertNotification(JsonRequest):
    """Alertmanager's webhook body, version 4 (fields added by later versions are ignored)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    version: Literal["4"]
    status: AlertStatus
    receiver: str = ""
    group_key: str = Field(default="", alias="groupKey")
    truncated_alerts: int = Field(default=0, ge=0, alias="truncatedAlerts")
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field(default="", alias="externalURL")
    alerts: list[Alert] = Field(min_length=1, max_length=1000)


def retraining_alerts(
    notification: AlertNotification, *, alert_names: frozenset[str], model: str
) -> list[Alert]:
    """The firing alerts of ``notification`` that ask for retraining ``model``."""
    return [
        alert
        for alert in notification.alerts
        if alert.status == "firing"
        and alert.labels.get("alertname") in alert_names
        and alert.labels.get("model", model) == model
    ]
