"""The durable state of each rollout: ``<state_dir>/<name>.json``, changed under a file lock.

A state file, not a Postgres table: the controller runs where the database may be out of
reach (a laptop driving a cluster, a pod whose ServiceAccount may only patch a few objects),
and a rollout must survive the controller's process (``status``, ``abort`` from another shell).
Every write replaces the file atomically (write a temporary file, fsync, rename).

    store = StateStore(Path(".modelfleet/rollouts"))
    with store.locked("ride-duration-v2") as state:   # read, change, written back on exit
        state.status = "aborted"
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

Status = Literal["running", "promoted", "aborted"]
TERMINAL: frozenset[str] = frozenset({"promoted", "aborted"})


def now() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """One line of a rollout's history (``status`` prints them)."""

    at: datetime = Field(default_factory=now)
    kind: str
    message: str


class RolloutState(BaseModel):
    """Where a rollout is: its spec, the step in force, the last gate verdicts, the outcome."""

    name: str
    spec: dict[str, Any]
    status: Status = "running"
    step: int = Field(default=-1, description="Index of the step in force; -1 before the first.")
    weight: float = 0.0
    reason: str | None = None
    baseline: dict[str, Any] | None = Field(
        default=None, description="What the target looked like before the rollout (rollback)."
    )
    gates: list[dict[str, Any]] = Field(default_factory=list, description="Last verdicts.")
    events: list[Event] = Field(default_factory=list)
    started_at: datetime = Field(default_factory=now)
    updated_at: datetime = Field(default_factory=now)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    def log(self, kind: str, message: str) -> None:
        self.events.append(Event(kind=kind, message=message))


class StateError(RuntimeError):
    """No such rollout, or one of that name is still running."""


class StateStore:
    """The state files of one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.json"

    def load(self, name: str) -> RolloutState:
        try:
            return RolloutState.model_validate_json(self.path(name).read_text())
        except FileNotFoundError as exc:
            raise StateError(f"no rollout named {name!r} in {self.folder}") from exc

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.json")) if self.folder.exists() else []

    def _write(self, state: RolloutState) -> None:
        state.updated_at = now()
        target = self.path(state.name)
        temporary = target.with_suffix(".json.tmp")
        with temporary.open("w") as file:
            file.write(state.model_dump_json(indent=2))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)

    @contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / f"{name}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @contextmanager
    def locked(self, name: str) -> Iterator[RolloutState]:
        """The state under the rollout's lock; written back when the block ends without error."""
        with self._lock(name):
            state = self.load(name)
            yield state
            self._write(state)

    def create(self, state: RolloutState) -> None:
        """Record a new rollout; StateError when one of that name is still running."""
        with self._lock(state.name):
            if self.path(state.name).exists() and not self.load(state.name).finished:
                raise StateError(f"rollout {state.name!r} is still running: abort it first")
            self._write(state)
