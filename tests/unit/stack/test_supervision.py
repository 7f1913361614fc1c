"""The restart policy of `modelfleet up` (services/stack/supervision.py), on a fake component and
a fake clock: backoff, reset, crash-loop report, start timeout, the run file's restart record."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from services.stack import runfiles
from services.stack.runfiles import Restarts, RunRecord
from services.stack.supervision import RestartPolicy, Supervisor, describe_exit

POLICY = RestartPolicy(backoff_s=1.0, backoff_max_s=8.0, reset_after_s=60.0, crash_loop_restarts=3)


@dataclass
class FakeComponent:
    """A component whose process the test kills, and which becomes ready when told."""

    name: str = "ride-duration"
    startup_timeout: float = 30.0
    alive: bool = True
    ready: bool = True
    ready_on_restart: bool = True
    exit_status: int | None = None
    spawns: int = 0
    stops: int = 0
    recorded: Restarts = field(default_factory=Restarts)

    @property
    def pid(self) -> int | None:
        return 1000 + self.spawns if self.alive else None

    def kill(self, code: int = 137) -> None:
        self.alive, self.ready, self.exit_status = False, False, code

    def is_ready(self) -> bool:
        return self.alive and self.ready

    def after_ready(self, deadline: float) -> None:
        pass

    def exit_code(self) -> int | None:
        return self.exit_status

    def restart(self) -> None:
        self.spawns += 1
        self.alive, self.exit_status, self.ready = True, None, self.ready_on_restart

    def stop(self) -> bool:
        self.stops += 1
        self.alive = False
        return True

    def log_tail(self, lines: int = 20) -> str:
        return "Traceback: boom"

    def restarts(self) -> Restarts:
        return self.recorded

    def note_restarts(self, restarts: Restarts) -> None:
        self.recorded = restarts


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _supervisor(component: FakeComponent) -> tuple[Supervisor, Clock, list[str]]:
    clock, said = Clock(), list[str]()
    return Supervisor([component], POLICY, say=said.append, clock=clock), clock, said


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [POLICY.backoff(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_a_killed_component_is_started_again_after_the_backoff() -> None:
    component = FakeComponent()
    supervisor, clock, said = _supervisor(component)
    supervisor.tick()
    assert component.spawns == 0  # alive: nothing to do

    component.kill(137)
    supervisor.tick()
    assert component.spawns == 0  # waits out the backoff first
    assert component.recorded.state == "restarting"
    assert component.recorded.last_exit_code == 137
    assert "exit code 137 (SIGKILL)" in said[-1]

    clock.now = 0.9
    supervisor.tick()
    assert component.spawns == 0
    clock.now = 1.0
    component.ready_on_restart = False
    supervisor.tick()
    assert component.spawns == 1
    assert component.recorded.count == 1 and component.recorded.last_restart_at is not None
    assert component.recorded.state == "restarting"  # until it is ready

    component.ready = True
    clock.now = 1.5
    supervisor.tick()
    assert component.recorded == Restarts(
        count=1, last_exit_code=137, last_restart_at=component.recorded.last_restart_at
    )
    assert said[-1] == "ride-duration is ready again (restart 1)"


def _crash_and_restart(supervisor: Supervisor, clock: Clock, component: FakeComponent) -> float:
    """Kill the component, tick through its backoff; return the backoff it waited."""
    component.kill(1)
    supervisor.tick()
    began = clock.now
    while component.pid is None:
        clock.now += 0.5
        supervisor.tick()
    supervisor.tick()  # ready again
    return clock.now - began


def test_a_row_of_crashes_is_reported_once_as_crash_looping_and_still_retried() -> None:
    component = FakeComponent()
    supervisor, clock, said = _supervisor(component)
    waits = [_crash_and_restart(supervisor, clock, component) for _ in range(5)]
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0]
    looping = [line for line in said if "crash-looping" in line]
    assert len(looping) == 1
    assert "4 exits in a row" in looping[0] and "Traceback: boom" in looping[0]
    assert component.recorded.count == 5

    component.kill(1)
    supervisor.tick()
    assert component.recorded.state == "crash-looping"


def test_the_backoff_starts_again_once_the_component_stayed_up() -> None:
    component = FakeComponent()
    supervisor, clock, _ = _supervisor(component)
    for _ in range(3):
        _crash_and_restart(supervisor, clock, component)
    clock.now += POLICY.reset_after_s
    supervisor.tick()
    assert _crash_and_restart(supervisor, clock, component) == 1.0


def test_a_restart_that_never_becomes_ready_is_stopped_and_counts_as_a_crash() -> None:
    component = FakeComponent(startup_timeout=10.0, ready_on_restart=False)
    supervisor, clock, said = _supervisor(component)
    component.kill(1)
    supervisor.tick()
    clock.now = 1.0
    supervisor.tick()  # spawned, not ready
    restarted = component.spawns
    clock.now = 11.0
    supervisor.tick()
    assert component.stops == 1 and component.pid is None
    assert "was not ready 10 s after its restart" in said[-2]
    assert "starting it again in 2 s" in said[-1]
    clock.now = 13.0
    supervisor.tick()
    assert component.spawns == restarted + 1


def test_describe_exit() -> None:
    assert describe_exit(None) == "exit code unknown"
    assert describe_exit(1) == "exit code 1"
    assert describe_exit(143) == "exit code 143 (SIGTERM)"


def test_the_restart_record_round_trips_through_the_run_file(tmp_path: Path) -> None:
    restarts = Restarts(count=2, last_exit_code=137, last_restart_at="t", state="crash-looping")
    record = RunRecord(
        name="x", pid=1, pgid=1, url="-", started_at="t", log_file="l", restarts=restarts
    )
    runfiles.write(tmp_path, record)
    assert runfiles.read(tmp_path, "x") == record
    # A run file written before restarts were recorded still reads.
    (tmp_path / "old.json").write_text(
        '{"name": "old", "pid": 1, "pgid": 1, "url": "-", "started_at": "t", "log_file": "l"}'
    )
    old = runfiles.read(tmp_path, "old")
    assert old is not None and old.restarts == Restarts()


@pytest.mark.parametrize("code", [0, 1, 137])
def test_an_exit_of_any_kind_is_restarted(code: int) -> None:
    component = FakeComponent()
    supervisor, clock, _ = _supervisor(component)
    component.kill(code)
    supervisor.tick()
    clock.now = 1.0
    supervisor.tick()
    assert component.spawns == 1
    assert component.recorded.last_exit_code == code
