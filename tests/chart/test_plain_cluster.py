"""A bare `helm install` on a plain cluster (no Prometheus Operator, no KEDA, no Gateway API, no
External Secrets) needs nothing created by hand but the images: objects of optional APIs render
only when the cluster serves the API (or values list it in capabilities.apiVersions), the
database password is generated into a Secret, and NOTES.txt opens with what is still missing."""

from __future__ import annotations

import base64
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml

from tests.chart.conftest import (
    ADDON_APIS,
    CHART,
    NAMESPACE,
    RELEASE,
    Obj,
    by_kind,
    component,
    job_specs,
    notes,
    render,
    scenario_values,
)
from tests.fakes.discovery_api import FakeDiscoveryApi

OPTIONAL_KINDS = {"ServiceMonitor", "PrometheusRule", "AlertmanagerConfig", "ScaledObject",
                  "HTTPRoute", "ExternalSecret"}  # fmt: skip
# Objects Kubernetes itself creates in every namespace.
CLUSTER_MADE = {("ConfigMap", "kube-root-ca.crt")}
KEDA = {"keda": {"enabled": True}}


def _pod_specs(objects: list[Obj]) -> list[tuple[str, Obj]]:
    specs = [(o["metadata"]["name"], o["spec"]["template"]["spec"]) for o in objects
             if o["kind"] in ("Deployment", "StatefulSet")]  # fmt: skip
    specs += [(o["metadata"]["name"], o["spec"]) for o in by_kind(objects, "Pod")]
    specs += [(name, job["template"]["spec"]) for name, job in job_specs(objects)]
    return specs


def _required_refs(spec: Obj) -> set[tuple[str, str]]:
    """(kind, name) of every Secret / ConfigMap a pod cannot start without."""
    refs: set[tuple[str, str]] = set()
    for container in spec["containers"] + spec.get("initContainers", []):
        for env in container.get("env", []):
            source = env.get("valueFrom", {})
            for key, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
                if key in source and not source[key].get("optional"):
                    refs.add((kind, source[key]["name"]))
        for env_from in container.get("envFrom", []):
            for key, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
                if key in env_from and not env_from[key].get("optional"):
                    refs.add((kind, env_from[key]["name"]))
    for volume in spec.get("volumes", []):
        if "secret" in volume and not volume["secret"].get("optional"):
            refs.add(("Secret", volume["secret"]["secretName"]))
        if "configMap" in volume and not volume["configMap"].get("optional"):
            refs.add(("ConfigMap", volume["configMap"]["name"]))
        for source in volume.get("projected", {}).get("sources", []):
            if "configMap" in source:
                refs.add(("ConfigMap", source["configMap"]["name"]))
    return refs


@pytest.mark.parametrize("scenario", ["default", "minikube"])
def test_a_plain_cluster_install_needs_no_object_made_by_hand(scenario: str) -> None:
    objects = render(scenario_values(scenario), api_versions=())
    assert not {o["kind"] for o in objects} & OPTIONAL_KINDS
    for obj in objects:
        kubernetes_validate.validate(obj, "1.30", strict=True)
    rendered = {(o["kind"], o["metadata"]["name"]) for o in objects} | CLUSTER_MADE
    for name, spec in _pod_specs(objects):
        missing = _required_refs(spec) - rendered
        assert not missing, f"{name} waits for objects nobody creates: {sorted(missing)}"


def test_the_database_password_is_generated_into_a_kept_secret() -> None:
    objects = render({}, api_versions=())
    (secret,) = by_kind(objects, "Secret")
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    password = base64.b64decode(secret["data"]["password"]).decode()
    assert len(password) == 32 and password.isalnum()
    other = by_kind(render({}, api_versions=()), "Secret")[0]["data"]["password"]
    assert other != secret["data"]["password"], "generated, not a fixed default"
    name = secret["metadata"]["name"]
    (postgres,) = [s for s in by_kind(objects, "StatefulSet") if component(s) == "postgresql"]
    env = {e["name"]: e for e in postgres["spec"]["template"]["spec"]["containers"][0]["env"]}
    ref = env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": name, "key": "password"}
    # Every Deployment but Triton and the city's APIs (no database) reads the password.
    users = [
        d
        for d in by_kind(objects, "Deployment")
        if component(d) not in {"triton", "location", "sensor"}
    ]
    assert users
    for deployment in users:
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e for e in container["env"]}
        assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == name


@pytest.mark.timeout(120)
def test_the_generated_password_is_kept_across_upgrades() -> None:
    """`helm install/upgrade` against a (fake) API server: the chart's `lookup` reads the
    Secret the previous revision made and renders its password again."""
    chart = helm_python.Chart.load(str(CHART))
    name = "mf-modelfleet-database"
    with FakeDiscoveryApi() as api:
        first = _secret_data(api.install_dry_run(chart, RELEASE, NAMESPACE, {}), name)
        assert ("/api/v1/namespaces/modelfleet/secrets/" + name) in api.requests
    assert len(base64.b64decode(first["password"])) == 32
    previous = {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque", "data": first,
        "metadata": {"name": name, "namespace": NAMESPACE,
                     "labels": {"app.kubernetes.io/managed-by": "Helm"},
                     "annotations": {"meta.helm.sh/release-name": RELEASE,
                                     "meta.helm.sh/release-namespace": NAMESPACE}},
    }  # fmt: skip
    with FakeDiscoveryApi({("v1", NAMESPACE, "secrets", name): previous}) as api:
        again = _secret_data(api.install_dry_run(chart, RELEASE, NAMESPACE, {}), name)
    assert again == first


def _secret_data(manifest: str, name: str) -> dict[str, str]:
    (secret,) = [
        doc for doc in yaml.safe_load_all(manifest)
        if doc and doc["kind"] == "Secret" and doc["metadata"]["name"] == name
    ]  # fmt: skip
    data: dict[str, str] = secret["data"]
    return data


def test_an_existing_secret_is_referenced_not_created() -> None:
    values = {"postgresql": {"auth": {"existingSecret": "mine", "secretKey": "pw"}}}
    objects = render(values, api_versions=())
    assert by_kind(objects, "Secret") == []
    (postgres,) = [s for s in by_kind(objects, "StatefulSet") if component(s) == "postgresql"]
    env = {e["name"]: e for e in postgres["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "mine", "key": "pw"}


def test_an_external_database_needs_its_secret() -> None:
    external = {"postgresql": {"enabled": False, "external": {"host": "db.example"}}}
    with pytest.raises(helm_python.HelmError, match="existingSecret"):
        render(external)


OPTIONAL_OBJECTS: list[tuple[str, str, dict[str, Any]]] = [
    ("monitoring.coreos.com/v1/ServiceMonitor", "ServiceMonitor", {}),
    ("monitoring.coreos.com/v1/PrometheusRule", "PrometheusRule", {}),
    ("keda.sh/v1alpha1/ScaledObject", "ScaledObject", KEDA),
    (
        "gateway.networking.k8s.io/v1/HTTPRoute",
        "HTTPRoute",
        scenario_values("rollout-gateway"),
    ),
    ("external-secrets.io/v1/ExternalSecret", "ExternalSecret",
     {"externalSecrets": {"enabled": True}}),
]  # fmt: skip


@pytest.mark.parametrize(("api", "kind", "values"), OPTIONAL_OBJECTS, ids=lambda x: str(x)[:20])
def test_objects_of_an_api_the_cluster_serves(api: str, kind: str, values: dict[str, Any]) -> None:
    assert by_kind(render(values, api_versions=(api,)), kind)
    # the group/version alone, as `helm template --api-versions monitoring.coreos.com/v1` says it
    assert by_kind(render(values, api_versions=(api.rsplit("/", 1)[0],)), kind)


@pytest.mark.parametrize(("api", "kind", "values"), OPTIONAL_OBJECTS, ids=lambda x: str(x)[:20])
def test_objects_of_an_api_the_values_assume(api: str, kind: str, values: dict[str, Any]) -> None:
    assumed = {**values, "capabilities": {"apiVersions": [api]}}
    assert by_kind(render(assumed, api_versions=()), kind)


def test_monitoring_objects_are_left_out_without_the_operator() -> None:
    monitoring = {"ServiceMonitor", "PrometheusRule"}
    assert monitoring <= {o["kind"] for o in render({}, api_versions=ADDON_APIS)}
    assert not monitoring & {o["kind"] for o in render({}, api_versions=())}
    off = {"serviceMonitor": {"enabled": False}, "prometheusRule": {"enabled": False}}
    assert not monitoring & {o["kind"] for o in render({"monitoring": off})}


def test_keda_without_its_api_falls_back_to_the_hpa() -> None:
    objects = render(KEDA, api_versions=())
    assert by_kind(objects, "ScaledObject") == []
    hpas = {component(h) for h in by_kind(objects, "HorizontalPodAutoscaler")}
    assert {
        "worker-tip",
        "worker-cost",
        "worker-dynamic-duration",
        "worker-sensor-duration",
    } <= hpas
    assert "serves no keda.sh/v1alpha1 ScaledObject" in notes(KEDA, api_versions=())
    assert "KEDA" not in notes(KEDA)


def test_gateway_api_and_external_secrets_without_their_api_fail_clearly() -> None:
    with pytest.raises(helm_python.HelmError, match="Gateway API"):
        render(scenario_values("rollout-gateway"), api_versions=())
    with pytest.raises(helm_python.HelmError, match="External Secrets Operator"):
        render({"externalSecrets": {"enabled": True}}, api_versions=())


def test_notes_start_with_what_the_install_still_needs() -> None:
    text = notes({}, api_versions=())
    first, _, rest = text.partition("\n")
    assert first == "Before this install works, it still needs:"
    needs = rest.split("\n\n")[0]
    assert "docker build -t modelfleet:0.1.0 --target service ." in needs
    assert "docker build -t modelfleet-model-builder:0.1.0 --target model-builder ." in needs
    assert "Prometheus Operator" in needs and "ServiceMonitors, PrometheusRules" in needs
    assert "--cni=calico" in needs and "metrics-server" in needs
    # Images from a registry and the operator present: neither is mentioned.
    registry = {"image": {"repository": "r.example/modelfleet", "tag": "1", "pullPolicy": "Always"},
                "modelRepository": {**scenario_values("eks")["modelRepository"]}}  # fmt: skip
    served = notes(registry)
    assert "docker build" not in served and "Prometheus Operator" not in served


def test_eks_values_need_the_addons_they_name() -> None:
    needs = notes(scenario_values("eks"), api_versions=()).split("\n\n")[0]
    assert "KEDA" in needs and "prometheus-adapter" in needs and "enableNetworkPolicy" in needs
