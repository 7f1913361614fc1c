"""`modelfleet rollout` against Kubernetes, through the official client, on a FAKE API server
(tests/fakes/kube_rollout_api.py) holding the chart's objects of ci/rollout-values.yaml and
enforcing the chart's rollout Role: the canary steps patch the canary Ingress's weight, promotion
moves the stable Deployment to the canary image, blue/green patches the Service selector, and a
failed gate or an abort puts every object back."""

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


@pytest.fixture(scope="module")
def chart_objects() -> list[dict[str, Any]]:
    return render(scenario_values("rollout"))


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
    gate = {"name": "canary errors", "query": "vector(0)", "max": 0.01}  # Prometheus is down
    state = _controller(tmp_path).start(_canary([gate]))
    assert state.status == "aborted"
    assert "gate 'canary errors' failed: query failed" in (state.reason or "")
    assert api.get("Ingress", INGRESS)["metadata"]["annotations"][WEIGHT] == "5"  # as rendered
    assert _image(api, STABLE) == "modelfleet:0.1.0"
    kinds = [(p[0], p[2]) for p in api.patches]
    assert kinds[0] == ("Ingress", {"metadata": {"annotations": {WEIGHT: "5"}}})
    assert [e.kind for e in state.events] == ["start", "step", "gate", "abort", "rollback"]


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
    selector = lambda: api.get("Service", "mf-modelfleet-backend")["spec"]["selector"]  # noqa: E731
    assert selector()["modelfleet.io/track"] == "green"  # ci/rollout-values.yaml
    failing = {**spec, "gates": [{"name": "p99", "query": "vector(1)", "max": 0.5}]}
    state = _controller(tmp_path).start(parse_spec(failing))
    assert state.status == "aborted"
    assert [p[2] for p in api.patches] == [
        {"spec": {"selector": {"modelfleet.io/track": "blue"}}},
        {"spec": {"selector": {"modelfleet.io/track": "green"}}},
    ]
    assert selector()["modelfleet.io/track"] == "green"
    state = _controller(tmp_path).start(parse_spec(spec))
    assert state.status == "promoted"
    assert selector()["modelfleet.io/track"] == "blue"
    assert selector()["app.kubernetes.io/component"] == "backend"  # merged, not replaced


def test_abort_by_hand_restores(api: FakeKubeRolloutApi, tmp_path: Path) -> None:
    controller = _controller(tmp_path)
    spec = parse_spec(
        {**_canary().model_dump(mode="json"), "steps": [{"weight": 0.25, "pause_s": 30}]}
    )
    controller._sleep = lambda _s: controller.abort(
        "rd-canary", "operator said so"
    )  # another shell
    state = controller.start(spec)
    assert state.status == "aborted"
    assert state.reason == "operator said so"
    assert api.get("Ingress", INGRESS)["metadata"]["annotations"][WEIGHT] == "5"


def test_objects_outside_the_role_are_refused(api: FakeKubeRolloutApi, tmp_path: Path) -> None:
    spec = _canary().model_dump(mode="json")
    spec["target"]["stable_deployment"] = "mf-modelfleet-worker-tip"  # rolling: not in the Role
    controller = _controller(tmp_path)
    with pytest.raises(TargetError, match="403"):
        controller.start(parse_spec(spec))
    assert api.denied == ["get deployments/mf-modelfleet-worker-tip"]
    assert api.patches == []


def test_an_invalid_patch_is_never_sent(api: FakeKubeRolloutApi, tmp_path: Path) -> None:
    spec = _canary().target
    assert isinstance(spec, KubernetesTarget)
    target = KubernetesRolloutTarget(spec, kube_api_client(_settings(tmp_path)))
    with pytest.raises(TargetError, match="would be invalid"):
        target.patch("Service", "mf-modelfleet-backend", {"spec": {"ports": "http"}})
    assert api.patches == []
