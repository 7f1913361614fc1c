"""The rollout state machine: steps, pauses, gates, promotion, automatic rollback.

    running --step 1..n (set weight, pause, gates pass)--> promoted
       |  any gate fails / a step fails / `abort` ------> aborted (baseline restored, reason kept)
       +-- `promote` (by hand, any time) ---------------> promoted

Gates run after each step's pause, i.e. before the next step and before promotion, against
what the candidate did at that step's weight. Every transition happens under the rollout's
state-file lock, so ``abort`` or ``promote`` from another shell never races a step: the running
controller sees the finished state at its next look (pauses look every ``poll_interval_s``).

    controller = Controller(store, target_for=..., prometheus_for=...)
    state = controller.start(spec)        # runs to promoted or aborted (report() per event)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from services.rollout.prometheus import GateResult, PrometheusClient, evaluate_gate
from services.rollout.spec import RolloutSpec, parse_spec
from services.rollout.state import RolloutState, StateError, StateStore
from services.rollout.targets import Target, TargetError


class Controller:
    """Runs rollouts whose state lives in ``store``."""

    def __init__(
        self,
        store: StateStore,
        *,
        target_for: Callable[[RolloutSpec], Target],
        prometheus_for: Callable[[RolloutSpec], PrometheusClient],
        report: Callable[[str], None] = lambda _: None,
        sleep: Callable[[float], None] = time.sleep,
        poll_interval_s: float = 1.0,
    ) -> None:
        self.store = store
        self._target_for = target_for
        self._prometheus_for = prometheus_for
        self._report = report
        self._sleep = sleep
        self._poll_interval_s = poll_interval_s

    @contextmanager
    def _target(self, spec: RolloutSpec) -> Iterator[Target]:
        target = self._target_for(spec)
        try:
            yield target
        finally:
            target.close()

    def _event(self, state: RolloutState, kind: str, message: str) -> None:
        state.log(kind, message)
        self._report(f"[{state.name}] {kind}: {message}")

    def start(self, spec: RolloutSpec) -> RolloutState:
        """Record the baseline, then step through the spec (blocks until the rollout ends)."""
        with self._target(spec) as target:
            state = RolloutState(name=spec.name, spec=spec.model_dump(mode="json"))
            state.baseline = target.baseline()
            state.log("start", target.describe())
        self.store.create(state)
        self._report(f"[{spec.name}] start: {target.describe()}")
        return self.run(spec.name)

    def run(self, name: str) -> RolloutState:
        """Carry on a running rollout from the step after the one in force (also a resume)."""
        spec = parse_spec(self.store.load(name).spec)
        with self._target(spec) as target:
            return self._steps(name, spec, target)

    def _steps(self, name: str, spec: RolloutSpec, target: Target) -> RolloutState:
        prometheus = self._prometheus_for(spec)
        while True:
            with self.store.locked(name) as state:
                if state.finished:
                    return state
                index = state.step + 1
                if index == len(spec.steps):
                    self._promote(state, target, "every step passed its gates")
                    return state
                step = spec.steps[index]
                try:
                    done = target.set_weight(step.weight, state.baseline or {})
                except TargetError as exc:
                    self._rollback(state, target, f"step {index + 1} failed: {exc}")
                    return state
                state.step, state.weight = index, step.weight
                where = f"{index + 1}/{len(spec.steps)} {step.weight:.0%}"
                self._event(state, "step", f"{where}: {done}")
            if not self._pause(name, step.pause_s):
                return self.store.load(name)
            results = [evaluate_gate(gate, prometheus) for gate in spec.gates]
            with self.store.locked(name) as state:
                if state.finished:
                    return state
                self._record(state, results)
                failed = [r for r in results if not r.passed]
                if failed:
                    reason = "; ".join(f"gate {r.name!r} failed: {r.reason}" for r in failed)
                    self._rollback(state, target, f"at {state.weight:.0%}: {reason}")
                    return state

    def _pause(self, name: str, seconds: float) -> bool:
        """Wait ``seconds``; False as soon as the rollout is finished by someone else."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._sleep(min(left, self._poll_interval_s))
            if self.store.load(name).finished:
                return False
        return True

    def _record(self, state: RolloutState, results: list[GateResult]) -> None:
        state.gates = [r.as_dict() for r in results]
        for r in results:
            self._event(state, "gate", f"{'pass' if r.passed else 'FAIL'} {r.name}: {r.reason}")

    def _promote(self, state: RolloutState, target: Target, why: str) -> None:
        try:
            done = target.promote(state.baseline or {})
        except TargetError as exc:
            self._rollback(state, target, f"promotion failed: {exc}")
            return
        state.status, state.weight, state.reason = "promoted", 1.0, why
        self._event(state, "promoted", f"{done} ({why})")

    def _rollback(self, state: RolloutState, target: Target, reason: str) -> None:
        state.status, state.reason = "aborted", reason
        self._event(state, "abort", reason)
        try:
            done = target.rollback(state.baseline or {})
        except TargetError as exc:
            state.reason = f"{reason}; ROLLBACK FAILED: {exc}"
            self._event(state, "error", f"rollback failed: {exc}")
            return
        state.weight = 0.0
        self._event(state, "rollback", done)

    def _finish(self, name: str, action: Callable[[RolloutState, Target], None]) -> RolloutState:
        with self.store.locked(name) as state:
            if state.finished:
                raise StateError(f"rollout {name!r} is already {state.status}")
            with self._target(parse_spec(state.spec)) as target:
                action(state, target)
            return state

    def abort(self, name: str, reason: str) -> RolloutState:
        """Roll back now (the running controller stops at its next look)."""
        return self._finish(name, lambda state, target: self._rollback(state, target, reason))

    def promote(self, name: str) -> RolloutState:
        """Promote now, skipping the remaining steps and gates."""
        return self._finish(name, lambda state, target: self._promote(state, target, "by hand"))
