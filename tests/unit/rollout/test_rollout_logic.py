"""The rollout controller's logic: spec validation, PromQL answers and verdicts, the strategic
merge its patches use, the state file, and the step / gate state machine (with a recording
target and canned gate values: no network, no clock)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from services.rollout.controller import Controller
from services.rollout.kube import strategic_merge
from services.rollout.prometheus import PrometheusClient, PrometheusError, judge, parse_values
from services.rollout.spec import Gate, RolloutSpec, SpecError, load_spec, parse_spec
from services.rollout.state import RolloutState, StateError, StateStore
from services.rollout.targets import TargetError
from services.stack.testing import free_port

SPEC: dict[str, Any] = {
    "name": "rd-v2",
    "target": {"kind": "routing", "url": "http://127.0.0.1:8001",
               "candidate": {"name": "canary", "model": "ride_duration", "model_version": 2}},
    "steps": [{"weight": 0.05, "pause_s": 0}, {"weight": 0.25, "pause_s": 0},
              {"weight": 1.0, "pause_s": 0}],
    "gates": [{"name": "errors", "query": "errors", "max": 0.01},
              {"name": "agreement", "query": "agreement", "min": 0.9}],
}  # fmt: skip


def _vector(*values: str) -> dict[str, Any]:
    result = [{"metric": {"i": str(i)}, "value": [0, v]} for i, v in enumerate(values)]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


# -- spec -------------------------------------------------------------------------------------
def test_a_valid_spec_parses(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(
        "name: rd-v2\ntarget: {kind: routing, url: 'http://h:1', candidate: {model: m}}\n"
        "steps: [{weight: 0.5}, {weight: 1}]\n"
    )
    spec = load_spec(path)
    assert [s.pause_s for s in spec.steps] == [60.0, 60.0]
    assert spec.target.kind == "routing" and spec.target.candidate.role == "canary"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"steps": [{"weight": 0.5}, {"weight": 0.25}]}, "strictly increase"),
        ({"steps": [{"weight": 1.5}]}, "steps.0.weight"),
        ({"gates": [{"name": "g", "query": "q"}]}, "needs max or min"),
        ({"gates": [{"name": "g", "query": "q", "min": 2, "max": 1}]}, "min > max"),
        ({"target": {"kind": "kubernetes", "namespace": "ns", "strategy": "canary"}},
         "needs ingress, stable_deployment, canary_deployment"),
        ({"target": {"kind": "kubernetes", "namespace": "ns", "strategy": "blueGreen",
                     "service": "s", "color": "blue"}}, "one step of weight 1.0"),
        ({"target": {"kind": "lambda"}}, "target"),
        ({"surprise": 1}, "surprise"),
    ],
)  # fmt: skip
def test_a_broken_spec_names_the_problem(change: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec({**SPEC, **change})


def test_a_missing_or_non_yaml_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("name: [")
    with pytest.raises(SpecError, match="not YAML"):
        load_spec(tmp_path / "bad.yaml")


# -- PromQL answers and verdicts --------------------------------------------------------------
def test_parse_values_vector_scalar_and_nan() -> None:
    assert parse_values(_vector("0.5", "NaN", "2")) == [0.5, 2.0]
    scalar = {"status": "success", "data": {"resultType": "scalar", "result": [0, "3.5"]}}
    assert parse_values(scalar) == [3.5]
    assert parse_values(_vector()) == []


def test_parse_values_rejects_errors_and_ranges() -> None:
    with pytest.raises(PrometheusError, match="bad_data: parse error"):
        parse_values({"status": "error", "errorType": "bad_data", "error": "parse error"})
    with pytest.raises(PrometheusError, match="matrix"):
        parse_values({"status": "success", "data": {"resultType": "matrix", "result": []}})


def test_judge_takes_the_worst_series() -> None:
    upper = Gate(name="p99", query="q", max=0.25)
    assert judge(upper, [0.1, 0.2]).passed
    failed = judge(upper, [0.1, 0.3])
    assert (failed.passed, failed.value, failed.reason) == (False, 0.3, "0.3 > max 0.25")
    lower = Gate(name="agree", query="q", min=0.9)
    assert judge(lower, [0.95, 0.99]).passed
    assert judge(lower, [0.95, 0.5]).reason == "0.5 < min 0.9"
    both = Gate(name="ratio", query="q", min=0.5, max=1.5)
    assert judge(both, [1.0]).passed and not judge(both, [2.0]).passed


def test_no_data_follows_the_gate() -> None:
    assert not judge(Gate(name="g", query="q", max=1), []).passed
    assert judge(Gate(name="g", query="q", max=1, on_no_data="pass"), []).passed


def test_an_unreachable_prometheus_fails_the_query() -> None:
    client = PrometheusClient(f"http://127.0.0.1:{free_port()}", timeout_s=1)
    with pytest.raises(PrometheusError, match="ConnectError"):
        client.query("up")


# -- strategic merge --------------------------------------------------------------------------
def test_strategic_merge_of_maps_and_named_lists() -> None:
    obj = {"metadata": {"annotations": {"a": "1", "b": "2"}},
           "spec": {"containers": [{"name": "app", "image": "x:1", "ports": [1]},
                                   {"name": "side", "image": "s:1"}], "args": ["a"]}}  # fmt: skip
    patch = {"metadata": {"annotations": {"a": "9", "b": None}},
             "spec": {"containers": [{"name": "app", "image": "x:2"}], "args": ["b"]}}  # fmt: skip
    merged = strategic_merge(obj, patch)
    assert merged["metadata"]["annotations"] == {"a": "9"}
    assert merged["spec"]["containers"] == [
        {"name": "app", "image": "x:2", "ports": [1]},
        {"name": "side", "image": "s:1"},
    ]
    assert merged["spec"]["args"] == ["b"]
    assert obj["metadata"]["annotations"] == {"a": "1", "b": "2"}  # not changed in place


# -- state file -------------------------------------------------------------------------------
def test_state_survives_the_process_and_one_running_rollout_per_name(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.create(RolloutState(name="rd-v2", spec=SPEC))
    with store.locked("rd-v2") as state:
        state.step, state.weight = 0, 0.05
        state.log("step", "5%")
    again = StateStore(tmp_path).load("rd-v2")
    assert (again.step, again.weight, again.events[0].message) == (0, 0.05, "5%")
    with pytest.raises(StateError, match="still running"):
        store.create(RolloutState(name="rd-v2", spec=SPEC))
    with store.locked("rd-v2") as state:
        state.status = "aborted"
    store.create(RolloutState(name="rd-v2", spec=SPEC))  # a finished one may be started again
    with pytest.raises(StateError, match="no rollout named 'x'"):
        store.load("x")
    assert store.names() == ["rd-v2"]


# -- the state machine ------------------------------------------------------------------------
class RecordingTarget:
    """Records what the controller asks; fails where told."""

    def __init__(self, fail_at: float | None = None) -> None:
        self.calls: list[str] = []
        self.fail_at = fail_at

    def describe(self) -> str:
        return "recording target"

    def baseline(self) -> dict[str, Any]:
        return {"weight": 0}

    def set_weight(self, weight: float, baseline: dict[str, Any]) -> str:
        if weight == self.fail_at:
            raise TargetError("409 forever")
        self.calls.append(f"weight {weight}")
        return f"weight {weight}"

    def promote(self, baseline: dict[str, Any]) -> str:
        self.calls.append("promote")
        return "promoted"

    def rollback(self, baseline: dict[str, Any]) -> str:
        self.calls.append(f"rollback to {baseline['weight']}")
        return "rolled back"

    def close(self) -> None:
        pass


class CannedPrometheus(PrometheusClient):
    """Answers each query with the next canned values (per query string)."""

    def __init__(self, answers: dict[str, list[list[float]]]) -> None:
        super().__init__("http://unused", timeout_s=1)
        self.answers = answers
        self.asked: list[str] = []

    def query(self, expr: str) -> list[float]:
        self.asked.append(expr)
        return self.answers[expr].pop(0)


def _run(
    tmp_path: Path, target: RecordingTarget, answers: dict[str, list[list[float]]]
) -> tuple[RolloutState, CannedPrometheus, list[str]]:
    prometheus = CannedPrometheus(answers)
    lines: list[str] = []
    controller = Controller(StateStore(tmp_path), target_for=lambda _: target,
                            prometheus_for=lambda _: prometheus, report=lines.append)  # fmt: skip
    return controller.start(RolloutSpec.model_validate(SPEC)), prometheus, lines


def test_every_step_passes_its_gates_then_promotes(tmp_path: Path) -> None:
    target = RecordingTarget()
    answers = {"errors": [[0.0], [0.001], [0.0]], "agreement": [[0.99], [0.97], [0.95]]}
    state, prometheus, lines = _run(tmp_path, target, answers)
    assert target.calls == ["weight 0.05", "weight 0.25", "weight 1.0", "promote"]
    assert prometheus.asked == ["errors", "agreement"] * 3  # after each step's pause
    assert (state.status, state.weight, state.step) == ("promoted", 1.0, 2)
    assert state.reason == "every step passed its gates"
    assert any("promoted" in line for line in lines)


def test_a_failing_gate_aborts_and_rolls_back_with_the_reason(tmp_path: Path) -> None:
    target = RecordingTarget()
    answers = {"errors": [[0.0], [0.2]], "agreement": [[0.99], [0.97]]}
    state, _, _ = _run(tmp_path, target, answers)
    assert target.calls == ["weight 0.05", "weight 0.25", "rollback to 0"]
    assert state.status == "aborted" and state.weight == 0.0
    assert state.reason == "at 25%: gate 'errors' failed: 0.2 > max 0.01"
    assert [g["passed"] for g in state.gates] == [False, True]
    assert StateStore(tmp_path).load("rd-v2").reason == state.reason  # durable


def test_no_data_fails_by_default(tmp_path: Path) -> None:
    state, _, _ = _run(tmp_path, RecordingTarget(), {"errors": [[]], "agreement": [[math.inf]]})
    assert state.status == "aborted"
    assert "gate 'errors' failed: no data (on_no_data: fail)" in (state.reason or "")


def test_a_step_the_target_refuses_aborts(tmp_path: Path) -> None:
    target = RecordingTarget(fail_at=0.25)
    state, _, _ = _run(tmp_path, target, {"errors": [[0.0]], "agreement": [[1.0]]})
    assert target.calls == ["weight 0.05", "rollback to 0"]
    assert state.reason == "step 2 failed: 409 forever"


def test_promote_and_abort_by_hand(tmp_path: Path) -> None:
    target = RecordingTarget()
    store = StateStore(tmp_path)
    controller = Controller(store, target_for=lambda _: target,
                            prometheus_for=lambda _: CannedPrometheus({}))  # fmt: skip
    store.create(RolloutState(name="rd-v2", spec=SPEC, baseline={"weight": 0}))
    assert controller.promote("rd-v2").status == "promoted"
    with pytest.raises(StateError, match="already promoted"):
        controller.abort("rd-v2", "too late")
    assert controller.run("rd-v2").status == "promoted"  # a finished rollout does nothing more
    assert target.calls == ["promote"]
