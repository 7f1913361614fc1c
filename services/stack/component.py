"""The component interface of the local stack and the process-backed base class.

A component is one server of the stack (PostgreSQL, NATS, Triton, a service). Each has a name,
a URL, a log file and the same life cycle: `start()` spawns it (non-blocking apart from one-time
setup), `wait_ready(deadline)` blocks until it serves or the deadline passes, `is_ready()` is
one quick probe, `stop()` stops it (also when another process started it: the run file says
what to stop). `ProcessComponent` implements all of that for one OS process started in its own
session, with stdout+stderr appended to `$HOME/logs/<name>.log`.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from services.stack import procs, runfiles
from services.stack.errors import (
    AlreadyRunningError,
    ComponentFailed,
    PortInUseError,
    StackError,
    StartupError,
)
from services.stack.runfiles import Restarts, RunRecord
from services.stack.settings import StackSettings

log = logging.getLogger("modelfleet.stack")

POLL_SECONDS = 0.1

__all__ = [
    "AlreadyRunningError",
    "Component",
    "ComponentFailed",
    "ComponentStatus",
    "PortInUseError",
    "ProcessComponent",
    "StackError",
    "StartupError",
]


@dataclass(frozen=True)
class ComponentStatus:
    """One line of `Stack.status()`."""

    name: str
    url: str
    pid: int | None
    ready: bool
    extra_urls: Mapping[str, str]
    log_file: Path
    restarts: Restarts = Restarts()


class Component(ABC):
    """One server of the local stack."""

    name: str

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.paths = settings.paths

    @property
    @abstractmethod
    def url(self) -> str:
        """The main URL clients use."""

    @property
    def extra_urls(self) -> dict[str, str]:
        """Other useful URLs (docs, metrics, monitors), label -> URL."""
        return {}

    @property
    @abstractmethod
    def ports(self) -> dict[str, int]:
        """Setting name -> port this component listens on (checked before start)."""

    @property
    @abstractmethod
    def startup_timeout(self) -> float:
        """Seconds allowed between `start()` and readiness."""

    @property
    def log_path(self) -> Path:
        """`$HOME/logs/<name>.log` (stdout and stderr of the component)."""
        return self.paths.logs / f"{self.name}.log"

    @property
    @abstractmethod
    def pid(self) -> int | None:
        """Pid of the running component (started here or recorded in its run file)."""

    @abstractmethod
    def start(self) -> None:
        """Spawn the component; returns without waiting for readiness."""

    @abstractmethod
    def wait_ready(self, deadline: float) -> None:
        """Block until ready; raise ComponentFailed when it dies or `deadline` (monotonic)."""

    @abstractmethod
    def is_ready(self) -> bool:
        """One quick readiness probe."""

    @abstractmethod
    def stop(self) -> bool:
        """Stop the component (no orphans); True when something was running."""

    def restarts(self) -> Restarts:
        """What the supervisor recorded of this component's restarts (none by default)."""
        return Restarts()

    def status(self) -> ComponentStatus:
        """Name, URL, pid, readiness and restarts right now."""
        pid = self.pid
        return ComponentStatus(
            name=self.name,
            url=self.url,
            pid=pid,
            ready=pid is not None and self.is_ready(),
            extra_urls=self.extra_urls,
            log_file=self.log_path,
            restarts=self.restarts(),
        )


class ProcessComponent(Component):
    """A component that is one OS process, started in a new session (own process group)."""

    #: signal that asks the process for a clean, bounded shutdown
    graceful_signal: signal.Signals = signal.SIGTERM

    def __init__(self, settings: StackSettings) -> None:
        super().__init__(settings)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        #: written into the run file at every spawn; the supervisor keeps it up to date
        self._restarts = Restarts()
        #: what the last failed readiness probe saw (shown when the startup times out)
        self.last_probe = ""

    # -- hooks for subclasses -------------------------------------------------------------
    @abstractmethod
    def command(self) -> list[str]:
        """argv of the server process."""

    def environment(self) -> dict[str, str]:
        """Environment of the server process (default: ours)."""
        return dict(os.environ)

    def prepare(self) -> None:
        """One-time setup before spawning (initdb, copying a server tree...)."""

    def run_as(self) -> tuple[int, int] | None:
        """(uid, gid) to run the process as; None for the current user."""
        return None

    def after_ready(self, deadline: float) -> None:
        """Work to do once the probe succeeds (e.g. create the database)."""

    def on_early_exit(self, returncode: int) -> bool:
        """The process exited before becoming ready: True to respawn, False to fail."""
        return False

    def meta(self) -> dict[str, Any]:
        """Extra JSON data to keep in the run file."""
        return {}

    def before_stop(self, record: RunRecord | None) -> None:
        """Called before the graceful signal (e.g. to note Triton's shm regions)."""

    def after_stop(self, record: RunRecord | None) -> None:
        """Called once the process is gone (e.g. reap Triton's stubs and shm)."""

    # -- Component ------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc.pid
        record = self.record()
        if record is not None and record.live:
            return record.pid
        return None

    def record(self) -> RunRecord | None:
        """This component's run file, if any."""
        return runfiles.read(self.paths.run, self.name)

    def restarts(self) -> Restarts:
        record = self.record()
        return self._restarts if record is None else record.restarts

    def note_restarts(self, restarts: Restarts) -> None:
        """Keep `restarts` for the next spawn and write it into the current run file."""
        self._restarts = restarts
        record = self.record()
        if record is not None:
            runfiles.write(self.paths.run, replace(record, restarts=restarts))

    def exit_code(self) -> int | None:
        """How the process this object spawned ended, as Kubernetes reports a container's exit
        (128 + the signal's number when a signal killed it); None while it runs or when another
        process spawned it."""
        returncode = None if self._proc is None else self._proc.poll()
        if returncode is None:
            return None
        return 128 - returncode if returncode < 0 else returncode

    def restart(self) -> None:
        """Start again after the process exited: kill what is left of its process group (a
        killed postmaster's backends, Triton's stubs), clean up as after a stop, spawn."""
        record = self.record()
        if record is not None and not record.live:
            leftovers = {
                p for p in procs.family(record.pid, pgid=record.pgid) - {0} if procs.is_alive(p)
            }
            if leftovers:
                log.info("%s: killing what is left of the exited process: %s", self.name, leftovers)
                procs.send_signal(leftovers, signal.SIGKILL)
                procs.wait_gone(leftovers, deadline=time.monotonic() + 5.0)
        if self._proc is not None:
            self._proc.poll()
        self._proc = None
        self.after_stop(record)
        self.start()

    def start(self) -> None:
        for folder in (self.paths.logs, self.paths.run):
            folder.mkdir(parents=True, exist_ok=True)
        self.prepare()
        self._spawn()

    def _spawn(self) -> None:
        argv = self.command()
        user = self.run_as()
        with self.log_path.open("ab") as log_fh:
            header = f"\n==== {runfiles.now_iso()} starting {self.name}: {shlex.join(argv)}\n"
            log_fh.write(header.encode())
            log_fh.flush()
            self._log_offset = log_fh.tell()
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_fh,
                stderr=subprocess.STDOUT,
                env=self.environment(),
                cwd=self.paths.home,
                start_new_session=True,
                user=None if user is None else user[0],
                group=None if user is None else user[1],
                extra_groups=None if user is None else [],
            )
        info = procs.proc_info(self._proc.pid)
        runfiles.write(
            self.paths.run,
            RunRecord(
                name=self.name,
                pid=self._proc.pid,
                pgid=self._proc.pid,
                url=self.url,
                started_at=runfiles.now_iso(),
                log_file=str(self.log_path),
                start_ticks=None if info is None else info.start_ticks,
                extra_urls=self.extra_urls,
                meta=self.meta(),
                restarts=self._restarts,
            ),
        )
        log.info("started %s (pid %d), log %s", self.name, self._proc.pid, self.log_path)

    def log_tail(self, lines: int = 20) -> str:
        """Last lines the current run wrote to the log file."""
        return procs.tail(self.log_path, lines, offset=self._log_offset)

    def wait_ready(self, deadline: float) -> None:
        if self._proc is None:
            raise ComponentFailed(f"{self.name} was not started")
        pause = POLL_SECONDS / 2
        while True:
            returncode = self._proc.poll()
            if returncode is not None:
                if time.monotonic() < deadline and self.on_early_exit(returncode):
                    time.sleep(0.5)
                    self._spawn()
                    continue
                raise ComponentFailed(f"process exited with code {returncode} before ready")
            if self.is_ready():
                self.after_ready(deadline)
                return
            if time.monotonic() >= deadline:
                last = f" (last probe: {self.last_probe})" if self.last_probe else ""
                raise ComponentFailed(f"not ready after {self.startup_timeout:.0f} s{last}")
            # Back off from 50 ms to 500 ms: fast when quick, little log noise when slow.
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 1.5, 10 * POLL_SECONDS)

    def stop(self) -> bool:
        record = self.record()
        proc = self._proc
        target: tuple[int, int, int | None] | None = None
        if proc is not None and proc.poll() is None:
            target = (proc.pid, proc.pid, None)
        elif record is not None and record.live:
            target = (record.pid, record.pgid, record.start_ticks)
        was_running = target is not None
        if target is not None:
            self.before_stop(record)
            self._terminate(pid=target[0], pgid=target[1], start_ticks=target[2])
        if proc is not None:
            try:
                proc.wait(timeout=self.settings.stop_timeout)
            except subprocess.TimeoutExpired as exc:
                raise ComponentFailed(
                    f"{self.name} (pid {proc.pid}) did not exit even after SIGKILL"
                ) from exc
        self._proc = None
        self.after_stop(record)
        runfiles.remove(self.paths.run, self.name)
        if was_running:
            log.info("stopped %s", self.name)
        return was_running

    def _terminate(self, *, pid: int, pgid: int, start_ticks: int | None) -> None:
        """Graceful signal to the main process, then SIGKILL for the whole family."""
        family = procs.family(pid, pgid=pgid)
        if procs.is_alive(pid, start_ticks):
            procs.send_signal([pid], self.graceful_signal)
        deadline = time.monotonic() + self.settings.stop_timeout
        if self._proc is not None and self._proc.pid == pid:
            try:
                self._proc.wait(timeout=self.settings.stop_timeout)
            except subprocess.TimeoutExpired:
                log.warning(
                    "%s did not stop in %.0f s: killing it", self.name, self.settings.stop_timeout
                )
        else:
            procs.wait_gone([pid], deadline=deadline)
            procs.reap_own_zombie(pid)
        # Whatever is left of the family (children that outlived the main process, or all of
        # it after a timeout) gets SIGKILL.
        leftovers = (family | procs.family(pid, pgid=pgid)) - {0}
        leftovers = {p for p in leftovers if procs.is_alive(p)}
        if leftovers:
            log.info("%s: killing leftover processes %s", self.name, sorted(leftovers))
            procs.send_signal(leftovers, signal.SIGKILL)
            survivors = procs.wait_gone(leftovers, deadline=time.monotonic() + 5.0)
            if survivors:
                log.error("%s: processes %s survived SIGKILL", self.name, sorted(survivors))
