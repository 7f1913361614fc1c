"""The ingress lets through every body a service behind it accepts: ingress-nginx answers 413 to
bodies over its `proxy-body-size` (default 1m) before they reach a pod, so the chart derives the
annotation from the services' own limits. The limits are read from the services' settings
classes, built from each component's rendered ConfigMap, and their request-size code."""

from __future__ import annotations

import importlib
import re
from typing import Any

import pytest
from pydantic_settings import BaseSettings

from services.chatbot.api import UPLOAD_OVERHEAD_BYTES
from services.classifier.api import _max_body
from services.classifier.settings import ClassifierSettings
from tests.chart.conftest import ROOT, Obj, by_kind, component, render, scenario_values

SERVICES_DIR = ROOT / "services"

BODY_SIZE = "nginx.ingress.kubernetes.io/proxy-body-size"
UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def _bytes(size: str) -> int:
    match = re.fullmatch(r"(\d+)([kmg]?)", size.lower())
    assert match, size
    return int(match.group(1)) * UNITS[match.group(2)]


def _settings_class(prefix: str) -> type[BaseSettings]:
    for path in sorted(SERVICES_DIR.glob("*/settings.py")):
        module = importlib.import_module(f"services.{path.parent.name}.settings")
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseSettings)
                and value.model_config.get("env_prefix") == prefix
            ):
                return value
    raise AssertionError(f"no settings class with env_prefix {prefix}")


def _largest_body(settings: Any) -> int:
    """The largest request body the service accepts without 413, as its code sizes it."""
    largest = int(settings.max_body_bytes)
    if hasattr(settings, "max_upload_bytes"):  # chatbot: PDF uploads (services/chatbot/api.py)
        largest = max(largest, settings.max_upload_bytes + UPLOAD_OVERHEAD_BYTES)
    if isinstance(settings, ClassifierSettings):  # base64 or multipart images
        largest = max(largest, _max_body(settings))
    return largest


def _service_limits(objects: list[Obj], monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """component -> largest body, for each component with ingress paths."""
    config = {component(c): c["data"] for c in by_kind(objects, "ConfigMap") if c.get("data")}
    services = {s["metadata"]["name"]: component(s) for s in by_kind(objects, "Service")}
    backends = {
        services[p["backend"]["service"]["name"]]
        for ingress in by_kind(objects, "Ingress") for rule in ingress["spec"]["rules"]
        for p in rule["http"]["paths"]
    }  # fmt: skip
    limits: dict[str, int] = {}
    for name in sorted(backends):
        data = config[name]
        prefix = next(k.removesuffix("ENVIRONMENT") for k in data if k.endswith("_ENVIRONMENT"))
        with monkeypatch.context() as env:
            for key, value in data.items():
                env.setenv(key, value)
            limits[name] = _largest_body(_settings_class(prefix)())
    return limits


@pytest.mark.parametrize("scenario", ["default", "minikube", "rollout"])
def test_the_ingress_body_limit_covers_every_service_behind_it(
    scenario: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = render(scenario_values(scenario))
    limits = _service_limits(objects, monkeypatch)
    assert {"chatbot", "classifier", "ride-duration"} <= set(limits)
    assert limits["chatbot"] > 10 * 1024**2  # a 10 MiB PDF and its multipart framing
    for ingress in by_kind(objects, "Ingress"):
        annotations = ingress["metadata"]["annotations"]
        if annotations.get("nginx.ingress.kubernetes.io/canary") == "true":
            assert BODY_SIZE not in annotations  # a canary Ingress takes the main one's
            continue
        allowed = _bytes(annotations[BODY_SIZE])
        for name, limit in limits.items():
            assert allowed >= limit, f"{ingress['metadata']['name']}: 413 before {name}"


def test_the_limit_follows_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    bigger = {"chatbot": {"settings": {"MAX_UPLOAD_BYTES": "52428800"}},
              "classifier": {"settings": {"MAX_IMAGE_BYTES": "33554432"}}}  # fmt: skip
    values = {"components": bigger}
    objects = render(values)
    limits = _service_limits(objects, monkeypatch)
    (ingress,) = by_kind(objects, "Ingress")
    allowed = _bytes(ingress["metadata"]["annotations"][BODY_SIZE])
    assert allowed >= max(limits.values()) > 50 * 1024**2
    assert allowed - max(limits.values()) < 1024**2, "rounded up to MiB, no more"


def test_own_annotation_wins_and_the_alb_gets_none() -> None:
    mine = {"ingress": {"annotations": {BODY_SIZE: "100m"}}}
    (ingress,) = by_kind(render(mine), "Ingress")
    assert ingress["metadata"]["annotations"][BODY_SIZE] == "100m"
    for ingress in by_kind(render(scenario_values("eks")), "Ingress"):
        assert BODY_SIZE not in ingress["metadata"]["annotations"]
