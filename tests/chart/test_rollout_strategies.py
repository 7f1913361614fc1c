"""Service-level rollout strategies (`rollout` of a component): rolling, blue/green, canary
(ingress-nginx annotations or a Gateway API HTTPRoute), shadow (nginx mirror), and the RBAC of
`modelfleet rollout`. Each scenario of ci/rollout*-values.yaml renders objects valid for
Kubernetes 1.30 and the add-ons' CRDs (tests/chart/crd_models.py); the strategies are all off by
default."""

from __future__ import annotations

from typing import Any

import helm_python
import kubernetes_validate
import pytest

from tests.chart.conftest import (
    ROLLOUT_SCENARIOS,
    Obj,
    by_kind,
    component,
    render,
    scenario_values,
)
from tests.chart.crd_models import crd_problems, is_crd_object

TRACK = "modelfleet.io/track"


def _named(objects: list[Obj], kind: str, name: str) -> Obj:
    (found,) = [o for o in by_kind(objects, kind) if o["metadata"]["name"] == name]
    return found


def _selects(service: Obj, pod_labels: dict[str, str]) -> bool:
    return all(pod_labels.get(k) == v for k, v in service["spec"]["selector"].items())


def _pod_labels(deployment: Obj) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def _rollout(name: str, rollout: dict[str, Any]) -> dict[str, Any]:
    return {"components": {name: {"rollout": rollout}}}


@pytest.mark.parametrize("scenario", ROLLOUT_SCENARIOS)
def test_every_object_valid_for_kubernetes_1_30_and_the_crds(scenario: str) -> None:
    objects = render(scenario_values(scenario))
    crd_checked = 0
    for obj in objects:
        if is_crd_object(obj):
            assert crd_problems(obj) == []
            crd_checked += 1
            continue
        try:
            kubernetes_validate.validate(obj, "1.30", strict=True)
        except kubernetes_validate.ValidationError as exc:  # pragma: no cover - message on failure
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {exc}")
    assert crd_checked >= 8


@pytest.mark.parametrize("scenario", ROLLOUT_SCENARIOS)
def test_every_deployment_is_selected_by_exactly_its_tracks_services(scenario: str) -> None:
    """No Service sends traffic to two tracks; every pod is behind one Service (scraped once).

    Headless Services (clusterIP None: Triton's `-pods`, the StatefulSets' governing ones) carry
    no traffic and no ServiceMonitor selects them: they name pods, so they are left out.
    """
    objects = render(scenario_values(scenario))
    services = [s for s in by_kind(objects, "Service") if s["spec"].get("clusterIP") != "None"]
    for deployment in by_kind(objects, "Deployment"):
        labels = _pod_labels(deployment)
        selecting = [s["metadata"]["name"] for s in services if _selects(s, labels)]
        assert len(selecting) == 1, (deployment["metadata"]["name"], selecting)
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert all(labels[k] == v for k, v in selector.items())


def test_strategies_are_off_by_default() -> None:
    objects = render({})
    assert all(TRACK not in _pod_labels(d) for d in by_kind(objects, "Deployment"))
    assert all(TRACK not in s["spec"]["selector"] for s in by_kind(objects, "Service"))
    assert not by_kind(objects, "HTTPRoute")
    assert [i["metadata"]["name"] for i in by_kind(objects, "Ingress")] == ["mf-modelfleet"]
    assert not [o for o in objects if component(o) == "rollout"]


def test_rolling_update_parameters_come_from_values() -> None:
    for values, surge, unavailable in (({}, "25%", 0), (scenario_values("rollout"), 1, 0)):
        for deployment in by_kind(render(values), "Deployment"):
            spec = deployment["spec"]
            assert spec["strategy"] == {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable},
            }
            readiness = spec["template"]["spec"]["containers"][0]["readinessProbe"]
            assert readiness["httpGet"]["path"] in ("/readyz", "/v2/models/ride_duration/ready")


@pytest.mark.parametrize("active", ["blue", "green"])
def test_blue_green_service_selects_the_active_colour(active: str) -> None:
    objects = render(
        _rollout(
            "backend",
            {"strategy": "blueGreen", "blueGreen": {"activeColor": active, "greenTag": "2"}},
        )
    )
    idle = "green" if active == "blue" else "blue"
    blue = _named(objects, "Deployment", "mf-modelfleet-backend-blue")
    green = _named(objects, "Deployment", "mf-modelfleet-backend-green")
    assert blue["spec"]["template"]["spec"]["containers"][0]["image"] == "modelfleet:0.1.0"
    assert green["spec"]["template"]["spec"]["containers"][0]["image"] == "modelfleet:2"
    assert not [
        d
        for d in by_kind(objects, "Deployment")
        if d["metadata"]["name"] == "mf-modelfleet-backend"
    ]
    service = _named(objects, "Service", "mf-modelfleet-backend")
    assert service["spec"]["selector"][TRACK] == active
    preview = _named(objects, "Service", "mf-modelfleet-backend-preview")
    assert preview["spec"]["selector"][TRACK] == idle
    hpa = _named(objects, "HorizontalPodAutoscaler", "mf-modelfleet-backend")
    assert hpa["spec"]["scaleTargetRef"]["name"] == f"mf-modelfleet-backend-{active}"
    colours = {"blue": blue, "green": green}
    assert "replicas" not in colours[active]["spec"]  # the HPA owns it
    assert colours[idle]["spec"]["replicas"] == 1


def test_blue_green_switch_is_one_value_and_changes_only_routing() -> None:
    """Switching back and forth changes the Services, the HPA target and replicas, not the pods."""
    before = render(scenario_values("rollout"))
    values = scenario_values("rollout")
    values["components"]["backend"]["rollout"]["blueGreen"]["activeColor"] = "blue"
    after = render(values)
    for name in ("mf-modelfleet-backend-blue", "mf-modelfleet-backend-green"):
        assert (
            _named(before, "Deployment", name)["spec"]["template"]
            == _named(after, "Deployment", name)["spec"]["template"]
        )
    assert _named(after, "Service", "mf-modelfleet-backend")["spec"]["selector"][TRACK] == "blue"


def test_canary_nginx_ingress_carries_weight_header_and_cookie() -> None:
    objects = render(scenario_values("rollout"))
    canary = _named(objects, "Ingress", "mf-modelfleet-ride-duration-canary")
    prefix = "nginx.ingress.kubernetes.io/"
    assert {k.removeprefix(prefix): v for k, v in canary["metadata"]["annotations"].items()} == {
        "canary": "true",
        "canary-weight": "5",
        "canary-weight-total": "100",
        "canary-by-header": "X-Canary",
        "canary-by-cookie": "modelfleet_canary",
    }
    main = _named(objects, "Ingress", "mf-modelfleet")
    main_paths = {p["path"]: p for p in main["spec"]["rules"][0]["http"]["paths"]}
    for path in canary["spec"]["rules"][0]["http"]["paths"]:
        # ingress-nginx pairs a canary Ingress with the main one by host and path.
        assert path["path"] in main_paths
        assert path["backend"]["service"]["name"] == "mf-modelfleet-ride-duration-canary"
    deployment = _named(objects, "Deployment", "mf-modelfleet-ride-duration-canary")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "modelfleet:0.2.0"
    assert (
        _named(objects, "Service", "mf-modelfleet-ride-duration")["spec"]["selector"][TRACK]
        == "stable"
    )


def test_canary_header_value_only_with_a_header() -> None:
    objects = render(
        _rollout(
            "ride-duration",
            {"strategy": "canary", "canary": {"header": "X-Canary", "headerValue": "on"}},
        )
    )
    annotations = _named(objects, "Ingress", "mf-modelfleet-ride-duration-canary")["metadata"][
        "annotations"
    ]
    assert annotations["nginx.ingress.kubernetes.io/canary-by-header-value"] == "on"
    assert annotations["nginx.ingress.kubernetes.io/canary-weight"] == "0"


def test_canary_gateway_api_route_splits_by_weight() -> None:
    objects = render(scenario_values("rollout-gateway"))
    assert [i["metadata"]["name"] for i in by_kind(objects, "Ingress")] == ["mf-modelfleet"]
    route = _named(objects, "HTTPRoute", "mf-modelfleet-ride-duration")
    assert route["spec"]["parentRefs"] == [{"name": "modelfleet", "namespace": "gateway-system"}]
    by_header, weighted = route["spec"]["rules"]
    assert {m["headers"][0]["value"] for m in by_header["matches"]} == {"yes"}
    assert by_header["backendRefs"] == [
        {"name": "mf-modelfleet-ride-duration-canary", "port": 8000}
    ]
    assert [(b["name"], b["weight"]) for b in weighted["backendRefs"]] == [
        ("mf-modelfleet-ride-duration", 75),
        ("mf-modelfleet-ride-duration-canary", 25),
    ]
    assert [m["path"]["value"] for m in weighted["matches"]] == [
        "/v1/predict",
        "/v1/models",
        "/v2/models/ride_duration",
    ]


def test_gateway_api_needs_a_gateway() -> None:
    with pytest.raises(helm_python.HelmError, match="gatewayName"):
        render(
            _rollout("ride-duration", {"strategy": "canary", "canary": {"router": "gatewayApi"}})
        )


def test_shadow_mirrors_the_components_paths_to_the_shadow_service() -> None:
    objects = render(scenario_values("rollout"))
    own = _named(objects, "Ingress", "mf-modelfleet-classifier")
    annotations = own["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/mirror-target"] == (
        "http://mf-modelfleet-classifier-shadow.modelfleet.svc.cluster.local:8000$request_uri"
    )
    assert annotations["nginx.ingress.kubernetes.io/mirror-request-body"] == "on"
    paths = own["spec"]["rules"][0]["http"]["paths"]
    assert {p["path"] for p in paths} == {"/v1/classify", "/v1/feedback", "/v2/models/classifier"}
    assert {p["backend"]["service"]["name"] for p in paths} == {"mf-modelfleet-classifier"}
    main = _named(objects, "Ingress", "mf-modelfleet")
    assert not {p["path"] for p in main["spec"]["rules"][0]["http"]["paths"]} & {"/v1/classify"}
    shadow = _named(objects, "Service", "mf-modelfleet-classifier-shadow")
    assert shadow["spec"]["selector"][TRACK] == "shadow"


def test_rollout_rbac_is_get_and_patch_on_named_objects_only() -> None:
    objects = render(scenario_values("rollout"))
    role = _named(objects, "Role", "mf-modelfleet-rollout")
    rendered = {(o["kind"], o["metadata"]["name"]) for o in objects}
    kinds = {"deployments": "Deployment", "services": "Service", "ingresses": "Ingress",
             "httproutes": "HTTPRoute"}  # fmt: skip
    named = set()
    for rule in role["rules"]:
        assert rule["verbs"] == ["get", "patch"]
        assert rule["resourceNames"], rule  # an empty list would mean every object
        (resource,) = rule["resources"]
        named |= {(kinds[resource], name) for name in rule["resourceNames"]}
    assert named <= rendered
    assert ("Ingress", "mf-modelfleet-ride-duration-canary") in named
    assert ("Service", "mf-modelfleet-backend") in named
    assert ("Deployment", "mf-modelfleet-worker-tip") not in named  # rolling: not the controller's
    (binding,) = [b for b in by_kind(objects, "RoleBinding") if component(b) == "rollout"]
    assert binding["subjects"][0]["name"] == "mf-modelfleet-rollout"
    gateway = _named(render(scenario_values("rollout-gateway")), "Role", "mf-modelfleet-rollout")
    # the controller patches no HTTPRoute (tests/chart/test_rbac_from_code.py): none granted
    assert {r["resources"][0] for r in gateway["rules"]} == {"deployments", "services"}


def test_rollout_rbac_needs_a_rollout_strategy() -> None:
    with pytest.raises(helm_python.HelmError, match="rolloutController"):
        render({"rolloutController": {"enabled": True}})


def test_long_release_names_keep_the_track_suffix() -> None:
    release = "a-release-name-that-is-much-longer-than-anyone-would-type-x"
    objects = render(scenario_values("rollout"), release=release)
    names = [o["metadata"]["name"] for o in objects]
    assert all(len(n) <= 63 for n in names)
    assert sum(n.endswith("-canary") for n in names) == 3  # Deployment, Service, Ingress
