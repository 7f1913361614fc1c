"""`Stack`: start, stop and inspect the whole local stack (Postgres, NATS, Triton, services).

Library code, used by the `modelfleet` CLI and by pytest fixtures: no global state, no signal
handlers. Components start in dependency order, each in its own session with its log in
`$HOME/logs/` and its run file in `$HOME/run/`; `stop()` works from the run files too, so it
also stops a stack that another process started (`modelfleet up --detach`, then `down`).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable, Sequence

from services.stack import procs, runfiles
from services.stack.component import (
    AlreadyRunningError,
    Component,
    ComponentFailed,
    ComponentStatus,
    PortInUseError,
    ProcessComponent,
    StackError,
    StartupError,
)
from services.stack.llm import LlamaServer
from services.stack.monitoring import monitoring_components
from services.stack.nats import Nats
from services.stack.postgres import Postgres
from services.stack.registry import service_processes
from services.stack.runfiles import RunRecord
from services.stack.schedule import Scheduler, stop_jobs
from services.stack.settings import StackSettings
from services.stack.supervision import SUPERVISOR, RestartPolicy, Supervisor
from services.stack.timetable import load_jobs, select
from services.stack.triton import Triton

log = logging.getLogger("modelfleet.stack")

INFRASTRUCTURE = ("postgres", "nats", "triton")


class StopError(StackError):
    """Some components could not be stopped cleanly (details in the message)."""


class Stack:
    """The local stack of one home folder."""

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.paths = settings.paths
        services = service_processes(settings)
        scraped = {s.name: f"{settings.host}:{s.port}" for s in services}
        scraped["triton"] = f"{settings.host}:{settings.triton_metrics_port}/metrics"
        self._components: list[Component] = [
            Postgres(settings),
            Nats(settings),
            Triton(settings),
            *([LlamaServer(settings)] if settings.llm else []),
            *services,
            *monitoring_components(settings, scraped),
        ]
        #: seconds from spawn to ready, per component started by the last `start()`
        self.startup_seconds: dict[str, float] = {}

    @property
    def names(self) -> list[str]:
        """Names of all components, in dependency (start) order."""
        return [c.name for c in self._components]

    def component(self, name: str) -> Component:
        """The component called `name` (KeyError if unknown)."""
        for component in self._components:
            if component.name == name:
                return component
        raise KeyError(f"unknown component {name!r}; known: {', '.join(self.names)}")

    def _select(self, names: Sequence[str] | None) -> list[Component]:
        if names is None:
            return list(self._components)
        wanted = set(names)
        unknown = wanted - set(self.names)
        if unknown:
            raise KeyError(f"unknown components {sorted(unknown)}; known: {self.names}")
        return [c for c in self._components if c.name in wanted]

    def running(self) -> list[RunRecord]:
        """Run records of this home whose process is still alive."""
        return [r for r in runfiles.read_all(self.paths.run) if r.live]

    def clean_stale(self) -> list[str]:
        """Remove the run files whose process is gone (a `modelfleet up` that was killed), with
        each component's clean-up after a stop (Triton's stubs and shm); return their names."""
        cleaned: list[str] = []
        for record in runfiles.read_all(self.paths.run):
            if record.live:
                continue
            cleaned.append(record.name)
            if record.name in self.names:
                self.component(record.name).stop()
            else:
                runfiles.remove(self.paths.run, record.name)
        return cleaned

    def supervisor(self, say: Callable[[str], None]) -> Supervisor:
        """A supervisor restarting this stack's components (call its `tick()` periodically)."""
        processes = [c for c in self._components if isinstance(c, ProcessComponent)]
        return Supervisor(processes, RestartPolicy.of(self.settings), say=say)

    def scheduler(self, say: Callable[[str], None]) -> Scheduler:
        """The chart's CronJobs on their timetable (services/stack/schedule.py; call its
        `tick()` with the supervisor's); none when MODELFLEET_SCHEDULES is off."""
        jobs = select(load_jobs(self.settings.chart_values), self.settings.schedules)
        return Scheduler(jobs, self.settings, say=say)

    def check_ports(self, components: Sequence[str] | None = None) -> None:
        """Raise PortInUseError for the first port of `components` that is already taken."""
        for component in self._select(components):
            for setting, port in component.ports.items():
                if procs.port_in_use(self.settings.host, port):
                    raise PortInUseError(
                        component=component.name,
                        port=port,
                        setting=setting,
                        host=self.settings.host,
                    )

    def start(self, components: Sequence[str] | None = None) -> list[ComponentStatus]:
        """Start `components` (default: all) in dependency order and wait until each is ready.

        Raises AlreadyRunningError when any of them runs already (live run file),
        PortInUseError when a port is taken, and StartupError (component, log file, last log
        lines) when one fails to start in time; then everything started here is stopped again.
        """
        selected = self._select(components)
        live = {r.name: r for r in self.running()}
        already = [live[c.name] for c in selected if c.name in live]
        if already:
            raise AlreadyRunningError(already, home=self.paths.home)
        self.check_ports([c.name for c in selected])
        self.startup_seconds = {}
        started: list[Component] = []
        try:
            for component in selected:
                began = time.monotonic()
                started.append(component)
                try:
                    component.start()
                    component.wait_ready(began + component.startup_timeout)
                except (ComponentFailed, OSError) as exc:
                    raise self._startup_error(component, exc) from exc
                self.startup_seconds[component.name] = time.monotonic() - began
                log.info(
                    "%s ready in %.2f s at %s",
                    component.name,
                    self.startup_seconds[component.name],
                    component.url,
                )
        except BaseException:
            # Includes KeyboardInterrupt/SystemExit during start: leave nothing behind.
            try:
                self._stop_components(list(reversed(started)))
            except StopError as stop_error:
                log.error("cleanup after the failed start was incomplete: %s", stop_error)
            raise
        return [c.status() for c in selected]

    def _startup_error(self, component: Component, exc: BaseException) -> StartupError:
        if isinstance(component, ProcessComponent):
            tail = component.log_tail(20)
        else:
            tail = procs.tail(component.log_path, 20)
        return StartupError(
            component.name, reason=str(exc), log_file=component.log_path, log_tail=tail
        )

    def stop(self) -> list[str]:
        """Stop every component of this home in reverse order; return the ones that ran.

        The supervising `modelfleet up` (run/supervisor.json), if another process, is stopped
        first (it then stops the stack itself), so that nothing restarts what this stops. Also
        stops components recorded in run files that this Stack does not know (e.g. a service
        removed from the registry since `up`).
        """
        live = {r.name for r in self.running()} - {SUPERVISOR}
        if self._stop_supervisor():
            live.add(SUPERVISOR)
        # The batch jobs' attempts (a `modelfleet up` killed without stopping them), before the
        # servers they use.
        for name in stop_jobs(self.paths, timeout_s=self.settings.stop_timeout):
            log.info("stopped job %s", name)
        known = set(self.names)
        for record in runfiles.read_all(self.paths.run):
            if record.name not in known and record.name != SUPERVISOR:
                self._stop_record(record)
        self._stop_components(list(reversed(self._components)))
        order = [SUPERVISOR, *sorted(live - known - {SUPERVISOR}), *reversed(self.names)]
        return [name for name in order if name in live]

    def _stop_supervisor(self) -> bool:
        """SIGTERM to the supervising `modelfleet up` (another process) and wait while it stops
        the stack; True when there was one."""
        record = runfiles.read(self.paths.run, SUPERVISOR)
        if record is None:
            return False
        if record.pid == os.getpid():  # this process supervises: the caller stops the rest
            runfiles.remove(self.paths.run, SUPERVISOR)
            return False
        was_live = record.live
        if was_live:
            procs.send_signal([record.pid], signal.SIGTERM)
            # It stops every component in turn: give it each one's stop timeout.
            patience = self.settings.stop_timeout * (len(self._components) + 1)
            if procs.wait_gone([record.pid], deadline=time.monotonic() + patience):
                log.error("the supervisor (pid %d) did not stop: killing it", record.pid)
                procs.send_signal([record.pid], signal.SIGKILL)
                procs.wait_gone([record.pid], deadline=time.monotonic() + 5.0)
        runfiles.remove(self.paths.run, SUPERVISOR)
        return was_live

    def _stop_components(self, components: list[Component]) -> list[str]:
        stopped: list[str] = []
        failures: list[str] = []
        for component in components:
            try:
                if component.stop():
                    stopped.append(component.name)
            except (OSError, StackError, TimeoutError) as exc:
                log.error("could not stop %s: %s", component.name, exc)
                failures.append(f"{component.name}: {exc}")
        if failures:
            raise StopError("; ".join(failures))
        return stopped

    def _stop_record(self, record: RunRecord) -> bool:
        """Stop a process known only by its run file (SIGTERM, then SIGKILL its family)."""
        was_live = record.live
        if was_live:
            family = procs.family(record.pid, pgid=record.pgid)
            procs.send_signal([record.pid], signal.SIGTERM)
            deadline = time.monotonic() + self.settings.stop_timeout
            procs.wait_gone([record.pid], deadline=deadline)
            leftovers = family | procs.family(record.pid, pgid=record.pgid)
            procs.send_signal(leftovers, signal.SIGKILL)
            procs.wait_gone(leftovers, deadline=time.monotonic() + 5.0)
        runfiles.remove(self.paths.run, record.name)
        return was_live

    def status(self) -> list[ComponentStatus]:
        """Name, URL, pid (None when not running) and readiness of every component."""
        return [c.status() for c in self._components]
