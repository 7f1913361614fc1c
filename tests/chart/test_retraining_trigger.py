"""The classifier is wired as the retraining trigger: it mounts the Job template ConfigMap and
a projected token of its ServiceAccount (bound to the Role that may create Jobs), and its
settings select the Kubernetes trigger. No other pod gets an API token."""

from __future__ import annotations

from urllib.parse import urlsplit

import yaml

from services.classifier.settings import ClassifierSettings
from tests.chart.conftest import NAMESPACE, ROOT, Obj, by_kind, component, render

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


def test_the_alertmanager_route_points_to_the_classifier_webhook() -> None:
    config = yaml.safe_load((ROOT / "k8s" / "alertmanager-config.yaml").read_text())
    stack = yaml.safe_load((ROOT / "k8s" / "kube-prometheus-stack-values.yaml").read_text())
    selector = stack["alertmanager"]["alertmanagerSpec"]["alertmanagerConfigSelector"]
    assert selector["matchLabels"].items() <= config["metadata"]["labels"].items()
    (matcher,) = config["spec"]["route"]["matchers"]
    rules = yaml.safe_load((ROOT / "monitoring" / "rules" / "modelfleet.rules.yaml").read_text())
    alerts = {r.get("alert") for g in rules["groups"] for r in g["rules"]}
    assert matcher["value"] in alerts and matcher["value"] in ClassifierSettings().retraining_alerts
    (receiver,) = config["spec"]["receivers"]
    url = urlsplit(receiver["webhookConfigs"][0]["url"])
    objects = render({})
    (service,) = [s for s in by_kind(objects, "Service") if component(s) == "classifier"]
    name = service["metadata"]["name"]
    assert url.hostname == f"{name}.{NAMESPACE}.svc"
    assert url.port in [p["port"] for p in service["spec"]["ports"]]
    assert url.path == "/v1/alerts"
