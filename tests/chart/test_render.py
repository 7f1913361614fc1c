"""The chart renders, lints clean and every object is valid for Kubernetes 1.30 (the add-ons'
CRD objects: tests/chart/test_crd_models.py)."""

from __future__ import annotations

import helm_python
import kubernetes_validate
import pytest

from tests.chart.conftest import (
    CHART,
    Obj,
    by_kind,
    component,
    job_templates,
    render,
    scenario_values,
)
from tests.chart.crd_models import is_crd_object

# Custom resources checked by their own tests (test_retraining_trigger.py: the operator's model).
CRD_KINDS = {"AlertmanagerConfig"}

# What each scenario renders, (kind, component) -> count. The note of issue 6 lists these.
PER_COMPONENT = ["ServiceAccount", "ConfigMap", "Deployment", "Service",
                 "HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceMonitor",
                 "NetworkPolicy"]  # fmt: skip
STATEFUL = ["ServiceAccount", "Service", "StatefulSet", "NetworkPolicy"]
COMPONENTS = ("ride-duration", "triton", "backend", "classifier", "chatbot", "worker-tip",
              "worker-cost", "worker-dynamic-duration", "worker-sensor-duration", "location",
              "sensor")  # fmt: skip


def _inventory(objects: list[Obj]) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for obj in objects:
        key = (obj["kind"], component(obj))
        counts[key] = counts.get(key, 0) + 1
    return counts


def _expected(scenario: str) -> dict[tuple[str, str], int]:
    expected = {(kind, name): 1 for name in COMPONENTS for kind in PER_COMPONENT}
    if scenario != "eks":  # one Triton pod on an emptyDir repository (test_model_repository.py)
        del expected[("HorizontalPodAutoscaler", "triton")]
    if scenario == "eks":  # KEDA scales the workers: a ScaledObject instead of an HPA
        for worker in (
            "worker-tip",
            "worker-cost",
            "worker-dynamic-duration",
            "worker-sensor-duration",
        ):
            del expected[("HorizontalPodAutoscaler", worker)]
            expected[("ScaledObject", worker)] = 1
    if scenario != "eks":  # EKS: RDS and an external NATS cluster
        for name in ("postgresql", "nats"):
            expected.update({(kind, name): 1 for kind in STATEFUL})
            expected[("Service", name)] = 2  # ClusterIP for clients, headless for the StatefulSet
        expected[("Secret", "database")] = 1  # the generated password
    expected.update({
        ("NetworkPolicy", "default-deny"): 1,
        ("Ingress", "ingress"): 1,
        ("PrometheusRule", "monitoring"): 1,
        ("AlertmanagerConfig", "monitoring"): 1,  # retraining alerts -> the classifier
        # dashboards: overview, streaming, triton, model-quality, model-variants, chatbot
        ("ConfigMap", "monitoring"): 6,
        ("Pod", "test"): 1,
        ("NetworkPolicy", "test"): 1,
        # Every Triton pod by address (headless): the retraining Job loads a version on each.
        ("Service", "triton-pods"): 1,
        # The classifier's retraining: Job template, its NetworkPolicy, the only RBAC.
        ("ConfigMap", "classifier-retrain"): 1,
        ("NetworkPolicy", "classifier-retrain"): 1,
        ("Role", "classifier-retrain"): 1,
        ("RoleBinding", "classifier-retrain"): 1,
    })  # fmt: skip
    return expected


def test_helm_lint_clean() -> None:
    result = helm_python.lint(str(CHART), strict=True)
    assert result["errors"] == []
    # Severity 1 is INFO ("icon is recommended"); warnings (2) and errors (3) fail.
    assert [m for m in result["messages"] if m["severity"] > 1] == []


def test_helm_lint_clean_with_each_scenario(scenario: str) -> None:
    result = helm_python.lint(str(CHART), scenario_values(scenario), strict=True)
    assert result["errors"] == [], result


def test_renders_the_expected_objects(scenario: str, objects: list[Obj]) -> None:
    assert _inventory(objects) == _expected(scenario)


def test_every_object_valid_for_kubernetes_1_30(objects: list[Obj]) -> None:
    with_jobs = render({"cronJobs": {"classifier-retrain": {"enabled": True}}})
    extra = by_kind(with_jobs, "CronJob") + job_templates(objects)
    assert len(extra) == 2
    for obj in objects + extra:
        if is_crd_object(obj):
            continue
        try:
            kubernetes_validate.validate(obj, "1.30", strict=True)
        except kubernetes_validate.ValidationError as exc:  # pragma: no cover - message on failure
            name = obj["metadata"].get("name") or obj["metadata"]["generateName"]
            pytest.fail(f"{obj['kind']}/{name}: {exc}")


def test_names_fit_63_characters() -> None:
    objects = render({}, release="a-release-name-that-is-much-longer-than-anyone-would-type-x")
    for obj in objects:
        assert len(obj["metadata"]["name"]) <= 63, obj["metadata"]["name"]
    long_release = render(
        {"cronJobs": {"classifier-retrain": {"enabled": True}}},
        release="a-release-name-that-is-much-longer-than-anyone-would-type-x",
    )
    (cron,) = by_kind(long_release, "CronJob")
    assert len(cron["metadata"]["name"]) <= 52  # its Jobs add an 11-character suffix


def test_image_tag_defaults_to_app_version() -> None:
    deployment = next(
        d for d in by_kind(render({}), "Deployment") if component(d) == "ride-duration"
    )
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "modelfleet:0.1.0"
    tagged = render({"image": {"repository": "r", "tag": "abc", "pullPolicy": "Always"}})
    deployment = next(d for d in by_kind(tagged, "Deployment") if component(d) == "ride-duration")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "r:abc"


def test_a_new_service_is_one_values_block() -> None:
    block = {
        "enabled": True,
        "kind": "service",
        "command": ["uvicorn", "--factory", "services.classifier.app:create_app"],
        "envPrefix": "CLASSIFIER_",
        "settings": {"TRITON_MODEL": "classifier"},
        "dependencies": ["triton", "postgresql"],
        "ingressPaths": ["/v1/classify"],
    }
    objects = render({"components": {"classifier": block}})
    kinds = {o["kind"] for o in objects if component(o) == "classifier"}
    assert set(PER_COMPONENT) <= kinds
    ingress = by_kind(objects, "Ingress")[0]
    paths = [p["path"] for p in ingress["spec"]["rules"][0]["http"]["paths"]]
    assert "/v1/classify" in paths
    triton_policy = next(o for o in by_kind(objects, "NetworkPolicy") if component(o) == "triton")
    callers = [
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        for peer in triton_policy["spec"]["ingress"][0]["from"]
    ]
    assert {"ride-duration", "classifier"} <= set(callers)


def test_external_database_and_nats_need_their_urls() -> None:
    with pytest.raises(helm_python.HelmError, match="postgresql.external.host"):
        render(
            {"postgresql": {"enabled": False, "auth": {"existingSecret": "s", "secretKey": "k"}}}
        )
    with pytest.raises(helm_python.HelmError, match="nats.externalUrl"):
        render({"nats": {"enabled": False}})
