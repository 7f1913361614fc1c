"""The chart's objects of the add-ons' CRDs (ServiceMonitor, PrometheusRule, AlertmanagerConfig,
KEDA ScaledObject; HTTPRoute and ExternalSecret) match the CRDs: models generated from the
upstream CRDs, pinned to the operator versions docs/kubernetes.md installs, with a field the
round trip drops counted as an error (tests/chart/crd_models.py)."""

from __future__ import annotations

import copy
import re
from importlib.metadata import version
from typing import Any

import pytest

from tests.chart.conftest import ALL_SCENARIOS, ROOT, Obj, by_kind, render, scenario_values
from tests.chart.crd_models import (
    HAND_WRITTEN,
    MODELS,
    crd_problems,
    is_crd_object,
    round_trip_losses,
)

#: Values that render the CRD objects no ci/ scenario does.
EXTRA = {"external-secrets": {"externalSecrets": {"enabled": True}}}


def _rendered(name: str) -> list[Obj]:
    return render(EXTRA[name] if name in EXTRA else scenario_values(name))


@pytest.mark.parametrize("name", [*ALL_SCENARIOS, *EXTRA])
def test_every_crd_object_matches_its_crd(name: str) -> None:
    checked = [obj for obj in _rendered(name) if is_crd_object(obj)]
    problems = [problem for obj in checked for problem in crd_problems(obj)]
    assert problems == []
    assert checked  # every scenario renders some (the monitoring objects at least)


def test_each_kind_the_chart_renders_is_checked_by_a_model_or_a_subset() -> None:
    kinds = {o["kind"] for name in [*ALL_SCENARIOS, *EXTRA] for o in _rendered(name)
             if is_crd_object(o)}  # fmt: skip
    by_model = {kind for _, kind in MODELS}
    assert {"ServiceMonitor", "PrometheusRule", "ScaledObject", "HTTPRoute"} <= kinds
    assert "ExternalSecret" in kinds
    assert kinds - by_model == set(HAND_WRITTEN)  # no generated models on PyPI for these two


#: An AlertmanagerConfig as the chart's retraining route (for a chart that renders none).
ROUTE: Obj = {
    "apiVersion": "monitoring.coreos.com/v1alpha1",
    "kind": "AlertmanagerConfig",
    "metadata": {"name": "retraining"},
    "spec": {
        "route": {"receiver": "classifier", "matchers": [
            {"name": "alertname", "matchType": "=~", "value": "ModelfleetClassifierF1Low"}]},
        "receivers": [{"name": "classifier", "webhookConfigs": [
            {"url": "http://classifier.modelfleet.svc:8000/v1/alerts", "sendResolved": True}]}],
    },
}  # fmt: skip


def _set(obj: Obj, path: list[str | int], value: Any) -> Obj:
    changed = copy.deepcopy(obj)
    node: Any = changed
    for key in path[:-1]:
        node = node.setdefault(key, {}) if isinstance(key, str) else node[key]
    node[path[-1]] = value
    return changed


# Typos the old hand-written subsets of tests/chart/schemas let through (only `intervall` was
# caught): their metadata, relabelings, tlsConfig, KEDA advanced/fallback/authenticationRef were
# open objects.
@pytest.mark.parametrize(
    ("kind", "path", "value", "problem"),
    [
        ("ServiceMonitor", ["spec", "endpoints", 0, "intervall"], "15s",
         "spec.endpoints[0].intervall: not a field of the CRD"),
        ("ServiceMonitor", ["metadata", "lables"], {"team": "ml"},
         "metadata.lables: not a field of the CRD"),
        ("ServiceMonitor", ["spec", "endpoints", 0, "relabelings"],
         [{"sourceLabel": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"}],
         "spec.endpoints[0].relabelings[0].sourceLabel: not a field of the CRD"),
        ("ServiceMonitor", ["spec", "endpoints", 0, "tlsConfig"], {"insecureSkipVerfy": True},
         "spec.endpoints[0].tlsConfig.insecureSkipVerfy: not a field of the CRD"),
        ("ScaledObject", ["spec", "advanced"], {"horizontalPodAutoscalerConfig": {"behaviour": {}}},
         "spec.advanced.horizontalPodAutoscalerConfig.behaviour: not a field of the CRD"),
        ("ScaledObject", ["spec", "fallback"], {"failureThreshold": 3, "replica": 2},
         "spec.fallback.replicas: Field required"),
        ("PrometheusRule", ["spec", "groups", 0, "interval"], "5 minutes",
         "spec.groups[0].interval: String should match pattern"),
        ("AlertmanagerConfig", ["spec", "route", "matchers", 0, "matchType"], "==",
         "spec.route.matchers[0].matchType: Input should be"),
        ("HTTPRoute", ["spec", "parentRefs", 0, "nmae"], "modelfleet", "nmae"),
    ],
)  # fmt: skip
def test_a_typo_is_an_error(kind: str, path: list[str | int], value: Any, problem: str) -> None:
    scenario = {"ScaledObject": "eks", "HTTPRoute": "rollout-gateway"}.get(kind, "default")
    found = by_kind(_rendered(scenario), kind)
    obj = found[0] if found else {"AlertmanagerConfig": ROUTE}[kind]
    assert crd_problems(obj) == []
    problems = crd_problems(_set(obj, path, value))
    assert any(problem in p for p in problems), problems


def test_the_round_trip_names_what_it_dropped_and_changed() -> None:
    given = {"spec": {"a": 1, "b": [{"c": "x", "typo": 1}], "d": "8080"}}
    dumped = {"spec": {"a": 1, "b": [{"c": "x"}], "d": 8080}}
    assert round_trip_losses(given, dumped) == [
        "spec.b[0].typo: not a field of the CRD (dropped)",
        "spec.d: '8080' became 8080",
    ]


def test_the_models_are_those_of_the_operators_the_docs_install() -> None:
    """kube-prometheus-stack 67.8.0 ships prometheus-operator v0.79.2; KEDA's chart 2.16.1 KEDA
    2.16.1: the docs' install lines and pyproject's pins move together."""
    docs = (ROOT / "docs" / "kubernetes.md").read_text()
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r"kube-prometheus-stack \\\n.*--version 67\.8\.0", docs)
    assert re.search(r"kedacore/keda .*--version 2\.16\.1", docs)
    assert version("cloudcoil-models-prometheus-operator").startswith("0.79.2.")
    assert version("cloudcoil-models-keda").startswith("2.16.1.")
    assert '"cloudcoil-models-prometheus-operator==0.79.2.' in pyproject
    assert '"cloudcoil-models-keda==2.16.1.' in pyproject
