"""The classifier is wired as the retraining trigger: it mounts the Job template ConfigMap and
a projected token of its ServiceAccount (bound to the Role that may create Jobs), and its
settings select the Kubernetes trigger. No other pod gets an API token."""

from __future__ import annotations

import warnings
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from services.classifier.settings import ClassifierSettings
from tests.chart.conftest import ROOT, Obj, by_kind, component, notes, render, scenario_values
from tests.chart.test_security import JWT

TEMPLATE_DIR = "/etc/modelfleet/retraining"
TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def _pod(objects: list[Obj], name: str) -> Obj:
    (deployment,) = [d for d in by_kind(objects, "Deployment") if component(d) == name]
    pod: Obj = deployment["spec"]["template"]["spec"]
    return pod


def test_the_classifier_mounts_the_job_template_and_a_token(objects: list[Obj]) -> None:
    pod = _pod(objects, "classifier")
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["CLASSIFIER_RETRAINING_TRIGGER"] == "kubernetes"
    assert env["CLASSIFIER_RETRAINING_JOB_TEMPLATE"] == f"{TEMPLATE_DIR}/job.yaml"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    config_map = volumes[mounts[TEMPLATE_DIR]]["configMap"]["name"]
    assert any(
        "job.yaml" in (c.get("data") or {})
        for c in by_kind(objects, "ConfigMap")
        if c["metadata"]["name"] == config_map
    )
    sources = volumes[mounts[TOKEN_DIR]]["projected"]["sources"]
    assert {next(iter(s)) for s in sources} == {"serviceAccountToken", "configMap", "downwardAPI"}
    assert pod["automountServiceAccountToken"] is False
    (binding,) = by_kind(objects, "RoleBinding")
    assert binding["subjects"][0]["name"] == pod["serviceAccountName"]


def test_no_other_pod_gets_a_token(objects: list[Obj]) -> None:
    for deployment in by_kind(objects, "Deployment"):
        if component(deployment) == "classifier":
            continue
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            paths = [m["mountPath"] for m in container.get("volumeMounts", [])]
            assert TOKEN_DIR not in paths, component(deployment)


def test_without_the_job_template_the_classifier_has_no_token() -> None:
    objects = render({"classifierRetrain": {"enabled": False}})
    (container,) = _pod(objects, "classifier")["containers"]
    assert TOKEN_DIR not in [m["mountPath"] for m in container["volumeMounts"]]
    assert "CLASSIFIER_RETRAINING_TRIGGER" not in {e["name"] for e in container["env"]}


def _alertmanager_config(values: dict[str, Any], **options: Any) -> Obj:
    (config,) = by_kind(render(values, **options), "AlertmanagerConfig")
    with warnings.catch_warnings():  # the generated models warn about shadowed field names
        warnings.simplefilter("ignore", UserWarning)
        from cloudcoil.models.prometheus_operator.v1alpha1 import AlertmanagerConfig

        model = AlertmanagerConfig.model_validate(config)
    # Generated from the operator's CRD: a field the model drops is not in the CRD.
    assert model.model_dump(by_alias=True, exclude_none=True, mode="json") == config
    return config


@pytest.mark.parametrize(
    ("release", "namespace", "host"),
    [
        ("modelfleet", "modelfleet", "modelfleet-classifier.modelfleet.svc"),
        ("mf", "modelfleet", "mf-modelfleet-classifier.modelfleet.svc"),
        ("prod", "shop", "prod-modelfleet-classifier.shop.svc"),
    ],
)
def test_the_alertmanager_route_points_to_the_releases_classifier(
    release: str, namespace: str, host: str
) -> None:
    config = _alertmanager_config({}, release=release, namespace=namespace)
    stack = yaml.safe_load((ROOT / "k8s" / "kube-prometheus-stack-values.yaml").read_text())
    selector = stack["alertmanager"]["alertmanagerSpec"]["alertmanagerConfigSelector"]
    assert selector["matchLabels"].items() <= config["metadata"]["labels"].items()
    (matcher,) = config["spec"]["route"]["matchers"]
    rules = yaml.safe_load((ROOT / "monitoring" / "rules" / "modelfleet.rules.yaml").read_text())
    alerts = {r.get("alert") for g in rules["groups"] for r in g["rules"]}
    routed = set(matcher["value"].split("|"))
    assert routed <= alerts and routed == ClassifierSettings().retraining_alerts
    (receiver,) = config["spec"]["receivers"]
    (webhook,) = receiver["webhookConfigs"]
    url = urlsplit(webhook["url"])
    objects = render({}, release=release, namespace=namespace)
    (service,) = [s for s in by_kind(objects, "Service") if component(s) == "classifier"]
    assert url.hostname == host == f"{service['metadata']['name']}.{namespace}.svc"
    assert url.port in [p["port"] for p in service["spec"]["ports"]]
    assert url.path == "/v1/alerts"
    assert "httpConfig" not in webhook  # auth.mode none: /v1/alerts is open


def test_in_jwt_mode_the_webhook_sends_an_api_key_from_a_secret() -> None:
    values = {"auth": JWT["auth"]}
    (webhook,) = _alertmanager_config(values)["spec"]["receivers"][0]["webhookConfigs"]
    authorization = webhook["httpConfig"]["authorization"]
    assert authorization == {
        "type": "Bearer",
        "credentials": {"name": "modelfleet-alertmanager", "key": "api-key"},
    }
    text = notes(values)
    assert "modelfleet apikey create alertmanager --scopes admin" in text.split("\n\n")[0]


def test_the_route_needs_the_operator_and_the_retraining_job() -> None:
    assert not by_kind(render({}, api_versions=()), "AlertmanagerConfig")
    assert not by_kind(render({"classifierRetrain": {"enabled": False}}), "AlertmanagerConfig")
    assert "AlertmanagerConfig" in notes({}, api_versions=())


@pytest.mark.parametrize("scenario", ["default", "minikube", "eks"])
def test_the_classifier_may_reach_the_api_server_on_each_clusters_port(scenario: str) -> None:
    """The API server's own port, as a NetworkPolicy sees it after the `kubernetes` Service's
    DNAT: 443 (EKS), 6443 (kubeadm), 8443 (minikube)."""
    objects = render(scenario_values(scenario))
    (policy,) = [p for p in by_kind(objects, "NetworkPolicy") if component(p) == "classifier"]
    open_ports = {
        port["port"] for rule in policy["spec"]["egress"] if "to" not in rule
        for port in rule["ports"] if port.get("protocol", "TCP") == "TCP"
    }  # fmt: skip
    assert {443, 6443, 8443} <= open_ports
