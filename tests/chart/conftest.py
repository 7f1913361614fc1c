"""Renders charts/modelfleet with real Helm (PyPI ``helm-python-sdk``) once per scenario.

Scenarios are the files in ``charts/modelfleet/ci/<scenario>-values.yaml``; ``rendered`` maps a
scenario to its objects (hooks included: the ``helm test`` Pod).

The chart renders the objects of optional APIs (Prometheus Operator, KEDA, Gateway API, External
Secrets) only when the cluster serves them (``.Capabilities.APIVersions``). ``render`` passes
``ADDON_APIS`` by default, the APIs of a cluster with the add-ons docs/kubernetes.md installs;
``api_versions=()`` renders for a plain cluster (tests/chart/test_plain_cluster.py).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml
from helm_python import _native

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "modelfleet"
SCENARIOS = ("default", "minikube", "eks")
# Every service-level rollout strategy (tests/chart/test_rollout_strategies.py).
ROLLOUT_SCENARIOS = ("rollout", "rollout-gateway")
ALL_SCENARIOS = SCENARIOS + ROLLOUT_SCENARIOS
RELEASE = "mf"
NAMESPACE = "modelfleet"

Obj = dict[str, Any]

#: The optional APIs of a cluster with kube-prometheus-stack, KEDA, the Gateway API CRDs and the
#: External Secrets Operator, as `helm template --api-versions` takes them.
ADDON_APIS = (
    "monitoring.coreos.com/v1/ServiceMonitor",
    "monitoring.coreos.com/v1/PrometheusRule",
    "monitoring.coreos.com/v1alpha1/AlertmanagerConfig",
    "keda.sh/v1alpha1/ScaledObject",
    "gateway.networking.k8s.io/v1/HTTPRoute",
    "external-secrets.io/v1/ExternalSecret",
)


def scenario_values(scenario: str) -> dict[str, Any]:
    """The values of one ci/ scenario file."""
    loaded = yaml.safe_load((CHART / "ci" / f"{scenario}-values.yaml").read_text())
    return loaded or {}


@functools.cache
def _chart() -> helm_python.Chart:
    return helm_python.Chart.load(str(CHART))


def render_files(
    values: dict[str, Any],
    *,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
    api_versions: Sequence[str] = ADDON_APIS,
    is_upgrade: bool = False,
) -> dict[str, str]:
    """Every rendered file (NOTES.txt included) as `helm install` (or upgrade) would render it
    on a cluster serving ``api_versions``. Chart.render takes no API versions; the native call
    under it does (helm-c-sdk's render options ``api_versions``)."""
    options = {
        "name": release,
        "namespace": namespace,
        "is_install": not is_upgrade,
        "is_upgrade": is_upgrade,
        "api_versions": list(api_versions),
    }
    rendered = _native.call_string(
        "helm_render", _chart()._raw(), json.dumps(values), json.dumps(options)
    )
    files: dict[str, str] = json.loads(rendered)
    return files


def notes(values: dict[str, Any], *, api_versions: Sequence[str] = ADDON_APIS) -> str:
    """The rendered NOTES.txt."""
    files = render_files(values, api_versions=api_versions)
    return next(text for path, text in files.items() if path.endswith("NOTES.txt"))


def render(
    values: dict[str, Any],
    *,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
    api_versions: Sequence[str] = ADDON_APIS,
) -> list[Obj]:
    """Render the chart as `helm install` would and return every object (NOTES.txt left out)."""
    files = render_files(values, release=release, namespace=namespace, api_versions=api_versions)
    objects: list[Obj] = []
    for path, text in sorted(files.items()):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


@functools.cache
def _rendered(scenario: str) -> tuple[Obj, ...]:
    return tuple(render(scenario_values(scenario)))


@pytest.fixture(params=SCENARIOS)
def scenario(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def objects(scenario: str) -> list[Obj]:
    """The rendered objects of one scenario (the cache renders each scenario once)."""
    return list(_rendered(scenario))


def by_kind(objects: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objects if o["kind"] == kind]


def component(obj: Obj) -> str:
    return str(obj["metadata"]["labels"]["app.kubernetes.io/component"])


def job_specs(objects: list[Obj]) -> list[tuple[str, Obj]]:
    """(component, Job spec) of every CronJob's jobTemplate and of the Job template ConfigMap."""
    specs = [(component(o), o["spec"]["jobTemplate"]["spec"]) for o in by_kind(objects, "CronJob")]
    specs += [(component(job), job["spec"]) for job in job_templates(objects)]
    return specs


def job_templates(objects: list[Obj]) -> list[Obj]:
    """The Jobs the Job template ConfigMaps (key job.yaml) hold."""
    return [
        yaml.safe_load(o["data"]["job.yaml"])
        for o in by_kind(objects, "ConfigMap")
        if "job.yaml" in (o.get("data") or {})
    ]
