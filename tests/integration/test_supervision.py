"""`modelfleet up` supervises like an orchestrator, run as a user runs it (the console script, in
its own home on free ports, with the models the session built):

- `up --detach`, then kill -9 of a server (Triton), a service (ride-duration) and a worker
  (worker-tip): each comes back by itself, `modelfleet status` shows the restart and its exit code
  137, and each serves again (a prediction; a ride's tip from the restarted worker).
- a foreground `up` signalled with SIGTERM or SIGHUP while it ingests the catalogue stops every
  process of the stack (checked by pid and by port) and exits 128 + the signal.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from models.repository import BuildResult
from services.backend.schemas import EXAMPLE_RIDE
from services.stack import procs, runfiles
from services.stack.settings import StackSettings
from services.stack.supervision import SUPERVISOR
from services.stack.testing import PORT_SETTINGS, settings_for_tests
from tests.integration.conftest import wait_until

PREDICT_BODY = {
    "pickup_datetime": "2024-03-14T08:30:00",
    "pickup_location_id": 161,
    "dropoff_location_id": 236,
    "trip_distance": 2.4,
    "passenger_count": 1,
}
UP_TIMEOUT_S = 600.0
BACK_WITHIN_S = 240.0


def _env(settings: StackSettings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELFLEET_")}
    for name in PORT_SETTINGS:
        env[f"MODELFLEET_{name.upper()}"] = str(getattr(settings, name))
    env["MODELFLEET_HOME"] = str(settings.paths.home)
    env["MODELFLEET_RESTART_BACKOFF_S"] = "0.5"
    # No batch job starts because the wall clock passed :20 or :40 during a test
    # (tests/integration/test_jobs_timetable.py runs them on a clock of its own).
    env["MODELFLEET_SCHEDULES"] = "off"
    return env


def _modelfleet(settings: StackSettings, *args: str, timeout: float = 120.0) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env=_env(settings),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode in (0, 1), f"modelfleet {args}: {done.returncode}\n{done.stderr}"
    return done.stdout


def _status(settings: StackSettings) -> dict[str, dict[str, Any]]:
    rows = json.loads(_modelfleet(settings, "status", "--json"))
    return {row["name"]: row for row in rows}


def _stack_home(tmp_path: Path, repository: Path) -> StackSettings:
    settings = settings_for_tests(tmp_path / "home")
    shutil.copytree(repository, settings.paths.model_repository)
    return settings


def _assert_nothing_left(settings: StackSettings, pids: set[int]) -> None:
    alive = {pid for pid in pids if procs.is_alive(pid)}
    assert not alive, f"processes of the stack still running: {sorted(alive)}"
    live = [r.name for r in runfiles.read_all(settings.paths.run) if r.live]
    assert not live, f"live run files: {live}"
    ports = {name: getattr(settings, name) for name in PORT_SETTINGS}
    taken = {n: p for n, p in ports.items() if p and procs.port_in_use(settings.host, p)}
    assert not taken, f"ports still in use: {taken}"


def _stack_pids(settings: StackSettings) -> set[int]:
    """Every live process of the stack: the components (main pids, their process groups and
    children) and the supervising `modelfleet up` (its pid alone: a foreground one shares the
    test's process group)."""
    pids: set[int] = set()
    for record in runfiles.read_all(settings.paths.run):
        if not record.live:
            continue
        if record.name == SUPERVISOR:
            pids.add(record.pid)
        else:
            pids |= procs.family(record.pid, pgid=record.pgid)
    return pids - {0, os.getpid()}


@pytest.fixture
def detached(
    tmp_path: Path, model_build: BuildResult, stack_settings: StackSettings
) -> Iterator[StackSettings]:
    settings = _stack_home(tmp_path, stack_settings.paths.model_repository)
    out = _modelfleet(settings, "up", "--detach", "--no-build", "--no-ingest", timeout=UP_TIMEOUT_S)
    assert "running detached, supervised by pid" in out, out
    try:
        yield settings
    finally:
        pids = _stack_pids(settings)
        _modelfleet(settings, "down", timeout=300.0)
        _assert_nothing_left(settings, pids)


def test_kill_9_of_a_server_a_service_and_a_worker_comes_back(detached: StackSettings) -> None:
    settings = detached
    for name in ("triton", "ride-duration", "worker-tip"):
        before = _status(settings)[name]
        assert before["ready"] and before["restarts"] == 0
        os.kill(before["pid"], signal.SIGKILL)

        def back(name: str = name, old: int = before["pid"]) -> bool:
            row = _status(settings)[name]
            return bool(row["ready"] and row["pid"] not in (None, old))

        assert wait_until(back, timeout_s=BACK_WITHIN_S, interval_s=1.0), _status(settings)[name]
        row = _status(settings)[name]
        assert row["restarts"] == 1 and row["last_exit_code"] == 137, row
        assert row["state"] == "running" and row["last_restart_at"], row

    table = _modelfleet(settings, "status")
    assert "supervisor: pid" in table
    for name in ("triton", "ride-duration", "worker-tip"):
        line = next(r for r in table.splitlines() if r.startswith(f"{name} "))
        assert " 1 " in line and " 137 " in line, line

    # Each serves again: a prediction through the restarted Triton and ride-duration ...
    ride_duration = f"http://{settings.host}:{settings.ride_duration_port}"
    predicted = httpx.post(f"{ride_duration}/v1/predict", json=PREDICT_BODY, timeout=30.0)
    assert predicted.status_code == 200, predicted.text
    assert predicted.json()["duration_minutes"] > 0
    # ... and a ride's tip from the restarted worker.
    backend = f"http://{settings.host}:{settings.backend_port}"
    created = httpx.post(f"{backend}/v1/rides", json=dict(EXAMPLE_RIDE), timeout=30.0)
    assert created.status_code == 201, created.text
    ride = f"{backend}/v1/rides/{created.json()['ride_id']}"

    def tipped() -> bool:
        results = httpx.get(ride, timeout=10.0).json()["results"]
        return any(r["kind"] == "tip" for r in results)

    assert wait_until(tipped, timeout_s=60.0, interval_s=0.5), httpx.get(ride).json()


class _Reader(threading.Thread):
    """Collects a process's output lines; `wait_for(text)` blocks until one contains it."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        super().__init__(daemon=True)
        self.proc = proc
        self.lines: list[str] = []
        self._changed = threading.Condition()

    def run(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for(self, text: str, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not any(text in line for line in self.lines):
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self.is_alive()):
                    return False
                self._changed.wait(min(left, 1.0))
            return True

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signal_during_ingestion_leaves_nothing_running(
    tmp_path: Path,
    model_build: BuildResult,
    stack_settings: StackSettings,
    sig: signal.Signals,
) -> None:
    settings = _stack_home(tmp_path, stack_settings.paths.model_repository)
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "up", "--no-build"],
        env=_env(settings),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    reader = _Reader(proc)
    reader.start()
    pids: set[int] = set()
    try:
        assert reader.wait_for("ingesting the catalogue", UP_TIMEOUT_S), reader.text
        pids = _stack_pids(settings)
        assert len(pids) >= 10, pids  # every component runs
        proc.send_signal(sig)
        assert proc.wait(timeout=300) == 128 + sig, reader.text
        reader.join(timeout=10)
        assert f"{sig.name} while ingesting the catalogue: stopping everything" in reader.text
        assert "press Ctrl-C" not in reader.text  # it was signalled before serving
        _assert_nothing_left(settings, pids)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
        leftovers = {p for p in pids | _stack_pids(settings) if procs.is_alive(p)}
        if leftovers:  # do not leave a broken stack for the next tests
            procs.send_signal(leftovers, signal.SIGKILL)
