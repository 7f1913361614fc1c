"""Rollout gates against a REAL Prometheus (Debian `prometheus`) scraping a small real target
whose metrics the test sets: a passing gate promotes, a failing gate aborts and rolls back by
itself with the reason, which `modelfleet rollout status` shows. The target the rollout drives is
the chart's canary Ingress on the fake Kubernetes API server (tests/fakes/kube_rollout_api.py),
rendered at weight 10, which no step (5, 50) nor the promotion (0) writes: only a rollback puts
it back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from services.cli import main
from services.stack.prometheus import LocalPrometheus
from services.stack.testing import free_port
from tests.chart.conftest import by_kind, render, scenario_values
from tests.fakes.kube_rollout_api import FakeKubeRolloutApi

pytestmark = [pytest.mark.timeout(180)]

WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"
INGRESS = "mf-modelfleet-ride-duration-canary"
STABLE = "mf-modelfleet-ride-duration"
CANARY = "mf-modelfleet-ride-duration-canary"
RENDERED_WEIGHT = "10"
ERROR_RATIO = "max(candidate_error_ratio)"


@pytest.fixture(scope="module")
def metrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gauge, LocalPrometheus]]:
    """A real /metrics endpoint with a gauge the test sets, scraped by a real Prometheus."""
    registry = CollectorRegistry()
    gauge = Gauge("candidate_error_ratio", "Error ratio the test sets.", registry=registry)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        home = tmp_path_factory.mktemp("prometheus")
        with LocalPrometheus(home, {"candidate": f"127.0.0.1:{port}"}) as prometheus:
            yield gauge, prometheus
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[FakeKubeRolloutApi]:
    values = scenario_values("rollout")
    values["components"]["ride-duration"]["rollout"]["canary"]["weight"] = int(RENDERED_WEIGHT)
    objects = render(values)
    roles = by_kind(objects, "Role")
    (role,) = [r for r in roles if r["metadata"]["name"] == "mf-modelfleet-rollout"]
    with FakeKubeRolloutApi(objects, role=role, namespace="modelfleet") as api:
        api.kubeconfig(tmp_path / "kubeconfig")
        yield api


def _cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, str]:
    """`modelfleet ARGV` as a user runs it; its exit code and everything it printed."""
    monkeypatch.setenv("MODELFLEET_ROLLOUT_KUBECONFIG", str(tmp_path / "kubeconfig"))
    monkeypatch.setenv("MODELFLEET_ROLLOUT_STATE_DIR", str(tmp_path / "rollouts"))
    monkeypatch.setenv("MODELFLEET_ROLLOUT_POLL_INTERVAL_S", "0.2")
    code = main(["--home", str(tmp_path), *argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _spec(tmp_path: Path, prometheus: str) -> Path:
    spec = {
        "name": "rd-canary",
        "target": {"kind": "kubernetes", "namespace": "modelfleet", "strategy": "canary",
                   "ingress": INGRESS, "stable_deployment": STABLE, "canary_deployment": CANARY},
        "steps": [{"weight": 0.05, "pause_s": 1.5}, {"weight": 0.5, "pause_s": 1.5}],
        "gates": [{"name": "candidate error ratio", "query": ERROR_RATIO, "max": 0.01}],
        "prometheus": {"url": prometheus, "timeout_s": 2},
    }  # fmt: skip
    path = tmp_path / "rollout.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _start(
    error_ratio: float, metrics: tuple[Gauge, LocalPrometheus], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> tuple[int, str]:  # fmt: skip
    """The target's metric set to ``error_ratio`` (and scraped), then `modelfleet rollout start`."""
    gauge, prometheus = metrics
    gauge.set(error_ratio)
    prometheus.wait_for(ERROR_RATIO, timeout_s=20, value=error_ratio)
    spec = str(_spec(tmp_path, prometheus.url))
    return _cli(tmp_path, monkeypatch, capsys, "rollout", "start", spec)


def test_a_passing_gate_promotes(
    metrics: tuple[Gauge, LocalPrometheus], kube: FakeKubeRolloutApi, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    code, printed = _start(0.002, metrics, tmp_path, monkeypatch, capsys)
    assert code == 0, printed
    assert "gate pass candidate error ratio: 0.002 <= max 0.01" in printed
    assert "PROMOTED" in printed
    weights = [p[2]["metadata"]["annotations"][WEIGHT] for p in kube.patches if p[0] == "Ingress"]
    assert weights == ["5", "50", "0"]
    image = kube.get("Deployment", STABLE)["spec"]["template"]["spec"]
    assert image["containers"][0]["image"] == "modelfleet:0.2.0"


def test_a_failing_gate_aborts_rolls_back_and_status_shows_why(
    metrics: tuple[Gauge, LocalPrometheus], kube: FakeKubeRolloutApi, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    before = kube.snapshot()
    assert before[("Ingress", INGRESS)]["metadata"]["annotations"][WEIGHT] == RENDERED_WEIGHT
    code, printed = _start(0.2, metrics, tmp_path, monkeypatch, capsys)
    assert code == 1, printed
    ingress = kube.get("Ingress", INGRESS)
    assert ingress["metadata"]["annotations"][WEIGHT] == RENDERED_WEIGHT  # as before the rollout
    backends = {
        p["backend"]["service"]["name"] for p in ingress["spec"]["rules"][0]["http"]["paths"]
    }
    assert backends == {CANARY}
    for deployment, image in [(STABLE, "modelfleet:0.1.0"), (CANARY, "modelfleet:0.2.0")]:
        containers = kube.get("Deployment", deployment)["spec"]["template"]["spec"]["containers"]
        assert [(c["name"], c["image"]) for c in containers] == [("ride-duration", image)]
    for service, track in [(STABLE, "stable"), (CANARY, "canary")]:
        assert kube.get("Service", service)["spec"]["selector"]["modelfleet.io/track"] == track
    assert kube.snapshot() == before  # every object as rendered, not only the fields above
    stable_image = {"spec": {"template": {"spec": {"containers": [
        {"name": "ride-duration", "image": "modelfleet:0.1.0"}]}}}}  # fmt: skip
    assert kube.patches == [
        ("Ingress", INGRESS, {"metadata": {"annotations": {WEIGHT: "5"}}}),  # step 1
        ("Ingress", INGRESS, {"metadata": {"annotations": {WEIGHT: RENDERED_WEIGHT}}}),  # rollback
        ("Deployment", STABLE, stable_image),
    ]
    code, shown = _cli(tmp_path, monkeypatch, capsys, "rollout", "status", "rd-canary", "--json")
    state = json.loads(shown)
    assert state["status"] == "aborted"
    assert state["reason"] == "at 5%: gate 'candidate error ratio' failed: 0.2 > max 0.01"
    code, shown = _cli(tmp_path, monkeypatch, capsys, "rollout", "status", "rd-canary")
    assert "rollout rd-canary: ABORTED at step 1/2" in shown
    assert "reason: at 5%: gate 'candidate error ratio' failed: 0.2 > max 0.01" in shown
