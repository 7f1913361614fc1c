"""The local stack's restart policy: a component that exits is started again, as the kubelet does
for a container of a pod with `restartPolicy: Always`.

`Supervisor.tick()` is called about twice a second by `modelfleet up` (foreground or detached,
services/cli/stack.py). A component whose process is gone waits out an exponential backoff
(`restart_backoff_s`, doubled per consecutive restart, capped at `restart_backoff_max_s`), is
spawned again and probed until ready (within its startup timeout, else it is stopped and counts
as another crash). Once it has stayed up `restart_reset_s`, the backoff starts from the beginning.
After `crash_loop_restarts` restarts in a row it is reported as crash-looping, with the tail of its
log, and still retried at the capped backoff (Kubernetes' CrashLoopBackOff). Counts, the last exit
code (128 + signal when killed, as Kubernetes reports it) and the state go into the component's
run file, which `modelfleet status` shows from any process.

`SupervisorRecord` is the run file of the `modelfleet up` process itself (`run/supervisor.json`):
`modelfleet down` stops the supervisor before the components, so nothing restarts what it stops.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from services.stack import procs, runfiles
from services.stack.errors import StackError
from services.stack.runfiles import Restarts, RunRecord
from services.stack.settings import StackPaths, StackSettings

#: name of the run file of the `modelfleet up` process that supervises the stack
SUPERVISOR = "supervisor"
#: seconds between two ticks of `modelfleet up`
TICK_SECONDS = 0.5
#: log lines shown when a component is reported as crash-looping
CRASH_LOG_LINES = 20


class Supervisable(Protocol):
    """What the supervisor needs of a component (ProcessComponent has all of it)."""

    name: str

    @property
    def pid(self) -> int | None: ...

    @property
    def startup_timeout(self) -> float: ...

    def is_ready(self) -> bool: ...

    def after_ready(self, deadline: float) -> None: ...

    def exit_code(self) -> int | None: ...

    def restart(self) -> None: ...

    def stop(self) -> bool: ...

    def log_tail(self, lines: int = 20) -> str: ...

    def restarts(self) -> Restarts: ...

    def note_restarts(self, restarts: Restarts) -> None: ...


@dataclass(frozen=True)
class RestartPolicy:
    """Backoff between restarts (seconds) and when a component counts as crash-looping."""

    backoff_s: float = 1.0
    backoff_max_s: float = 30.0
    reset_after_s: float = 60.0
    crash_loop_restarts: int = 5

    @classmethod
    def of(cls, settings: StackSettings) -> RestartPolicy:
        """The policy the stack's settings (MODELFLEET_RESTART_*) ask for."""
        return cls(
            backoff_s=settings.restart_backoff_s,
            backoff_max_s=settings.restart_backoff_max_s,
            reset_after_s=settings.restart_reset_s,
            crash_loop_restarts=settings.crash_loop_restarts,
        )

    def backoff(self, consecutive: int) -> float:
        """Wait before restart number `consecutive` (1-based) of a row of crashes."""
        return min(self.backoff_s * 2.0 ** max(0, consecutive - 1), self.backoff_max_s)


Phase = Literal["running", "backoff", "starting"]


@dataclass
class _Watch:
    """The supervisor's view of one component."""

    component: Supervisable
    phase: Phase = "running"
    consecutive: int = 0  # exits since the component last stayed up reset_after_s
    up_since: float = 0.0
    next_attempt: float = 0.0
    ready_deadline: float = 0.0
    reported_crash_loop: bool = False


def describe_exit(code: int | None) -> str:
    """'exit code 1', 'exit code 137 (SIGKILL)' or 'exit code unknown'."""
    if code is None:
        return "exit code unknown"
    if code > 128:
        try:
            return f"exit code {code} ({signal.Signals(code - 128).name})"
        except ValueError:
            pass
    return f"exit code {code}"


class Supervisor:
    """Restarts the components of a started stack that exit (see the module docstring)."""

    def __init__(
        self,
        components: Sequence[Supervisable],
        policy: RestartPolicy,
        *,
        say: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self._say = say
        self._clock = clock
        now = clock()
        self._watches = [_Watch(component=c, up_since=now) for c in components]

    def tick(self) -> None:
        """Look at every component once and act: note an exit, restart, probe a restart."""
        for watch in self._watches:
            now = self._clock()
            if watch.phase == "running":
                self._check_running(watch, now)
            elif watch.phase == "backoff" and now >= watch.next_attempt:
                self._restart(watch, now)
            elif watch.phase == "starting":
                self._check_starting(watch, now)

    def _check_running(self, watch: _Watch, now: float) -> None:
        component = watch.component
        if component.pid is None:
            self._exited(watch, now, component.exit_code())
        elif watch.consecutive and now - watch.up_since >= self.policy.reset_after_s:
            watch.consecutive = 0
            watch.reported_crash_loop = False
            component.note_restarts(replace(component.restarts(), state="running"))

    def _restart(self, watch: _Watch, now: float) -> None:
        component = watch.component
        restarts = component.restarts()
        component.note_restarts(
            replace(restarts, count=restarts.count + 1, last_restart_at=runfiles.now_iso())
        )
        try:
            component.restart()
        except (StackError, OSError) as exc:
            self._say(f"{component.name} could not be started again: {exc}")
            self._exited(watch, now, component.exit_code())
            return
        watch.phase = "starting"
        watch.ready_deadline = now + component.startup_timeout

    def _check_starting(self, watch: _Watch, now: float) -> None:
        component = watch.component
        if component.pid is None:
            self._exited(watch, now, component.exit_code())
        elif component.is_ready():
            component.after_ready(time.monotonic() + component.startup_timeout)
            watch.phase = "running"
            watch.up_since = now
            restarts = component.restarts()
            component.note_restarts(replace(restarts, state="running"))
            self._say(f"{component.name} is ready again (restart {restarts.count})")
        elif now >= watch.ready_deadline:
            self._say(
                f"{component.name} was not ready {component.startup_timeout:.0f} s after its "
                "restart: stopping it"
            )
            component.stop()
            self._exited(watch, now, None)

    def _exited(self, watch: _Watch, now: float, code: int | None) -> None:
        component = watch.component
        watch.consecutive += 1
        delay = self.policy.backoff(watch.consecutive)
        looping = watch.consecutive > self.policy.crash_loop_restarts
        restarts = component.restarts()
        component.note_restarts(
            replace(
                restarts,
                last_exit_code=code if code is not None else restarts.last_exit_code,
                state="crash-looping" if looping else "restarting",
            )
        )
        self._say(
            f"{component.name} exited ({describe_exit(code)}); "
            f"starting it again in {delay:.0f} s (restart {restarts.count + 1})"
        )
        if looping and not watch.reported_crash_loop:
            watch.reported_crash_loop = True
            self._say(
                f"{component.name} is crash-looping ({watch.consecutive} exits in a row); "
                f"last lines of its log:\n{component.log_tail(CRASH_LOG_LINES)}"
            )
        watch.phase = "backoff"
        watch.next_attempt = now + delay


@dataclass(frozen=True)
class SupervisorRecord:
    """The run file of the `modelfleet up` process that supervises this home's stack."""

    paths: StackPaths
    mode: Literal["foreground", "detached"]

    def write(self, phase: str) -> None:
        """Say (again) that this process supervises the stack, now in `phase`."""
        pid = os.getpid()
        info = procs.proc_info(pid)
        runfiles.write(
            self.paths.run,
            RunRecord(
                name=SUPERVISOR,
                pid=pid,
                pgid=os.getpgid(0),
                url="-",
                started_at=runfiles.now_iso(),
                log_file=str(self.paths.logs / f"{SUPERVISOR}.log"),
                start_ticks=None if info is None else info.start_ticks,
                meta={"mode": self.mode, "phase": phase},
            ),
        )

    def remove(self) -> None:
        """Remove the run file if it is still this process's."""
        record = runfiles.read(self.paths.run, SUPERVISOR)
        if record is not None and record.pid == os.getpid():
            runfiles.remove(self.paths.run, SUPERVISOR)


def supervisor_record(paths: StackPaths) -> RunRecord | None:
    """The live supervisor's run file, or None when no `modelfleet up` supervises this home."""
    record = runfiles.read(paths.run, SUPERVISOR)
    return record if record is not None and record.live else None
