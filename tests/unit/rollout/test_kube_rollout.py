"""`modelfleet rollout` against Kubernetes, through the official client, on a FAKE API server
(tests/fakes/kube_rollout_api.py) holding the chart's objects of ci/rollout-values.yaml and
enforcing the chart's rollout Role: the canary steps patch the canary Ingress's weight, promotion
moves the stable Deployment to the canary image, blue/green patches the Service selector, and a
failed gate, an abort or a refused promotion puts every object back.

The chart is rendered with the canary Ingress at weight 10, a weight no step (5, 25, 50, 100) and
no promotion (0) writes: a rollback that did nothing would leave a step's weight, and would be
seen. The fake merges patches with its own strategic merge (tests/fakes/strategic_merge.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.rollout.commands import make_controller
from services.rollout.controller import Controller
from services.rollout.kube import KubernetesRolloutTarget, kube_api_client
from services.rollout.settings import RolloutSettings
from services.rollout.spec import KubernetesTarget, RolloutSpec, parse_spec
from services.rollout.targets import TargetError
from services.stack.testing import free_port
from tests.chart.conftest import by_kind, render, scenario_values
from tests.fakes.kube_rollout_api import FakeKubeRolloutApi

NAMESPACE = "modelfleet"
WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"
INGRESS = "mf-modelfleet-ride-duration-canary"
STABLE = "mf-modelfleet-ride-duration"
CANARY = "mf-modelfleet-ride-duration-canary"
RENDERED_WEIGHT = "10"  # before the rollout; no step writes it
STABLE_IMAGE, CANARY_IMAGE = "modelfleet:0.1.0", "modelfleet:0.2.0"  # ci/rollout-values.yaml
Obj = dict[str, Any]


@pytest.fixture(scope="module")
def chart_objects() -> list[Obj]:
    values = scenario_values("rollout")
    values["components"]["ride-duration"]["rollout"]["canary"]["weight"] = int(RENDERED_WEIGHT)
    return render(values)


@pytest.fixture
def api(chart_objects: list[dict[str, Any]], tmp_path: Path) -> Iterator[FakeKubeRolloutApi]:
    roles = by_kind(chart_objects, "Role")
    (role,) = [r for r in roles if r["metadata"]["name"] == "mf-modelfleet-rollout"]
    with FakeKubeRolloutApi(chart_objects, role=role, namespace=NAMESPACE) as fake:
        fake.kubeconfig(tmp_path / "kubeconfig")
        yield fake


def _settings(tmp_path: Path) -> RolloutSettings:
    return RolloutSettings(
        state_dir=tmp_path / "rollouts", poll_interval_s=0.01, kubeconfig=tmp_path / "kubeconfig"
    )


def _controller(tmp_path: Path) -> Controller:
    return make_controller(_settings(tmp_path), tmp_path)


def _canary(gates: list[dict[str, Any]] | None = None) -> RolloutSpec:
    return parse_spec({
        "name": "rd-canary",
        "target": {"kind": "kubernetes", "namespace": NAMESPACE, "strategy": "canary",
                   "ingress": INGRESS, "stable_deployment": STABLE, "canary_deployment": CANARY},
        "steps": [{"weight": w, "pause_s": 0} for w in (0.05, 0.25, 0.5, 1.0)],
        "gates": gates or [],
        "prometheus": {"url": f"http://127.0.0.1:{free_port()}", "timeout_s": 1},
    })  # fmt: skip


def _image(api: FakeKubeRolloutApi, name: str) -> str:
    return str(api.get("Deployment", name)["spec"]["template"]["spec"]["containers"][0]["image"])


def _canary_routing(api: FakeKubeRolloutApi) -> Obj:
    """What routes ride-duration's traffic: the canary Ingress's weight and backends, the two
    Deployments' images and the two Services' tracks."""
    ingress = api.get("Ingress", INGRESS)
    paths = [p for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    return {
        "weight": ingress["metadata"]["annotations"][WEIGHT],
        "backends": sorted({p["backend"]["service"]["name"] for p in paths}),
        "stable image": _image(api, STABLE),
        "canary image": _image(api, CANARY),
        "stable selects": api.get("Service", STABLE)["spec"]["selector"]["modelfleet.io/track"],
        "canary selects": api.get("Service", CANARY)["spec"]["selector"]["modelfleet.io/track"],
    }


#: ride-duration's routing as rendered, i.e. before any rollout and after a rollback.
RENDERED_ROUTING = {
    "weight": RENDERED_WEIGHT,
    "backends": [CANARY],
    "stable image": STABLE_IMAGE,
    "canary image": CANARY_IMAGE,
    "stable selects": "stable",
    "canary selects": "canary",
}
STABLE_IMAGE_PATCH = {"spec": {"template": {"spec": {"containers": [
    {"name": "ride-duration", "image": STABLE_IMAGE}]}}}}  # fmt: skip


def _weight_patch(weight: str) -> Obj:
    return {"metadata": {"annotations": {WEIGHT: weight}}}


def test_canary_steps_patch_the_ingress_weight_then_promote(
    api: FakeKubeRolloutApi, tmp_path: Path
) -> None:
    state = _controller(tmp_path).start(_canary())
    assert state.status == "promoted", state.reason
    weights = [p[2]["metadata"]["annotations"][WEIGHT] for p in api.patches if p[0] == "Ingress"]
    assert weights == ["5", "25", "50", "100", "0"]  # the steps, then 0 once stable runs it
    assert _image(api, STABLE) == _image(api, CANARY) == "modelfleet:0.2.0"
    assert api.denied == []


def test_a_failed_gate_aborts_and_restores_the_ingress(
    api: FakeKubeRolloutApi, tmp_path: Path
) -> None:
    before = api.snapshot()
    assert _canary_routing(api) == RENDERED_ROUTING
    gate = {"name": "canary errors", "query": "vector(0)", "max": 0.01}  # Prometheus is down
    state = _controller(tmp_path).start(_canary([gate]))
    assert state.status == "aborted"
    assert "gate 'canary errors' failed: query failed" in (state.reason or "")
    assert [e.kind for e in state.events] == ["start", "step", "gate", "abort", "rollback"]
    assert _canary_routing(api) == RENDERED_ROUTING
    assert api.snapshot() == before  # every object as rendered, not only the fields above
    assert api.patches == [
        ("Ingress", INGRESS, _weight_patch("5")),  # step 1
        ("Ingress", INGRESS, _weight_patch(RENDERED_WEIGHT)),  # the rollback
        ("Deployment", STABLE, STABLE_IMAGE_PATCH),
    ]


def test_a_refused_promotion_rolls_the_stable_image_back(
    api: FakeKubeRolloutApi, tmp_path: Path
) -> None:
    """Promotion moves the stable Deployment to the canary image, then the weight to 0; when the
    API server refuses the weight, the rollback puts the stable image and the weight back."""
    before = api.snapshot()
    api.refuse("Ingress", INGRESS, _weight_patch("0"))
    state = _controller(tmp_path).start(_canary())
    assert state.status == "aborted"
    assert (state.reason or "").startswith(f"promotion failed: patch Ingress/{INGRESS}: HTTP 500")
    assert _canary_routing(api) == RENDERED_ROUTING
    assert api.snapshot() == before
    assert api.refused == [("Ingress", INGRESS, _weight_patch("0"))]
    promoted = {"spec": {"template": {"spec": {"containers": [
        {"name": "ride-duration", "image": CANARY_IMAGE}]}}}}  # fmt: skip
    assert api.patches == [
        *[("Ingress", INGRESS, _weight_patch(w)) for w in ("5", "25", "50", "100")],
        ("Deployment", STABLE, promoted),  # then the refused weight 0
        ("Ingress", INGRESS, _weight_patch(RENDERED_WEIGHT)),  # the rollback
        ("Deployment", STABLE, STABLE_IMAGE_PATCH),
    ]


def test_blue_green_switch_patches_the_selector_and_a_failed_gate_switches_back(
    api: FakeKubeRolloutApi, tmp_path: Path
) -> None:
    spec: dict[str, Any] = {
        "name": "backend-blue",
        "target": {"kind": "kubernetes", "namespace": NAMESPACE, "strategy": "blueGreen",
                   "service": "mf-modelfleet-backend", "color": "blue"},
        "steps": [{"weight": 1.0, "pause_s": 0}],
        "prometheus": {"url": f"http://127.0.0.1:{free_port()}", "timeout_s": 1},
    }  # fmt: skip

    def selector() -> dict[str, str]:
        return dict(api.get("Service", "mf-modelfleet-backend")["spec"]["selector"])

    green = {"app.kubernetes.io/name": "modelfleet", "app.kubernetes.io/instance": "mf",
             "app.kubernetes.io/component": "backend", "modelfleet.io/track": "green"}  # fmt: skip
    assert selector() == green  # ci/rollout-values.yaml
    before = api.snapshot()
    failing = {**spec, "gates": [{"name": "p99", "query": "vector(1)", "max": 0.5}]}
    state = _controller(tmp_path).start(parse_spec(failing))
    assert state.status == "aborted"
    assert selector() == green
    assert api.snapshot() == before
    assert [p[2] for p in api.patches] == [
        {"spec": {"selector": {"modelfleet.io/track": "blue"}}},
        {"spec": {"selector": {"modelfleet.io/track": "green"}}},
    ]
    state = _controller(tmp_path).start(parse_spec(spec))
    assert state.status == "promoted"
    assert selector() == {**green, "modelfleet.io/track": "blue"}  # merged, not replaced


def test_abort_by_hand_restores(api: FakeKubeRolloutApi, tmp_path: Path) -> None:
    controller = _controller(tmp_path)
    spec = parse_spec(
        {**_canary().model_dump(mode="json"), "steps": [{"weight": 0.25, "pause_s": 30}]}
    )
    before = api.snapshot()
    weights: list[str] = []

    def abort_from_another_shell(_seconds: float) -> None:
        weights.append(api.get("Ingress", INGRESS)["metadata"]["annotations"][WEIGHT])
        controller.abort("rd-canary", "operator said so")

    controller._sleep = abort_from_another_shell
    state = controller.start(spec)
    assert weights == ["25"]  # the step was in force when the operator aborted
    assert state.status == "aborted"
    assert state.reason == "operator said so"
    assert _canary_routing(api) == RENDERED_ROUTING
    assert api.snapshot() == before


def test_objects_outside_the_role_are_refused(api: FakeKubeRolloutApi, tmp_path: Path) -> None:
    spec = _canary().model_dump(mode="json")
    spec["target"]["stable_deployment"] = "mf-modelfleet-worker-tip"  # rolling: not in the Role
    controller = _controller(tmp_path)
    with pytest.raises(TargetError, match="403"):
        controller.start(parse_spec(spec))
    assert api.denied == ["get deployments/mf-modelfleet-worker-tip"]
    assert api.patches == []


def test_the_object_validated_is_the_object_the_server_holds(
    api: FakeKubeRolloutApi, tmp_path: Path
) -> None:
    """The target validates its own merge of each patch before sending it: that merge must be
    the API server's (here the fake's own, tests/fakes/strategic_merge.py), or what was
    validated is not what runs."""
    spec = _canary().target
    assert isinstance(spec, KubernetesTarget)
    target = KubernetesRolloutTarget(spec, kube_api_client(_settings(tmp_path)))
    image = {"spec": {"template": {"spec": {"containers": [
        {"name": "ride-duration", "image": "modelfleet:0.3.0"}]}}}}  # fmt: skip
    for kind, name, body in [
        ("Ingress", INGRESS, _weight_patch("42")),
        ("Deployment", STABLE, image),
        (
            "Service",
            "mf-modelfleet-backend",
            {"spec": {"selector": {"modelfleet.io/track": "blue"}}},
        ),
    ]:
        assert target.patch(kind, name, body) == api.get(kind, name), f"{kind}/{name}"
    assert _image(api, STABLE) == "modelfleet:0.3.0"
    assert len(api.patches) == 3


def test_an_invalid_patch_is_never_sent(api: FakeKubeRolloutApi, tmp_path: Path) -> None:
    spec = _canary().target
    assert isinstance(spec, KubernetesTarget)
    target = KubernetesRolloutTarget(spec, kube_api_client(_settings(tmp_path)))
    with pytest.raises(TargetError, match="would be invalid"):
        target.patch("Service", "mf-modelfleet-backend", {"spec": {"ports": "http"}})
    assert api.patches == []
