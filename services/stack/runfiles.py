"""Run files: `$MODELFLEET_HOME/run/<component>.json`, one per running component.

A run file records pid, process group, url, start time and the kernel start time of the
process, so that `modelfleet status` and `modelfleet down` (possibly another process than the
`modelfleet up` that started the stack) find and stop exactly those processes and never a
recycled pid; and what the supervisor says of its restarts (count, last exit code, state).
`supervisor.json` is the record of the `modelfleet up` process itself (stack/supervision.py).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.stack import procs

log = logging.getLogger("modelfleet.stack")


@dataclass(frozen=True)
class Restarts:
    """What the supervisor (services/stack/supervision.py) says of a component's restarts."""

    count: int = 0
    last_exit_code: int | None = None
    last_restart_at: str | None = None
    #: running | restarting (waiting out its backoff or starting) | crash-looping
    state: str = "running"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Restarts:
        """Parse the `restarts` object of a run file."""
        code = data.get("last_exit_code")
        at = data.get("last_restart_at")
        return cls(
            count=int(data.get("count", 0)),
            last_exit_code=None if code is None else int(code),
            last_restart_at=None if at is None else str(at),
            state=str(data.get("state", "running")),
        )


@dataclass(frozen=True)
class RunRecord:
    """What the stack remembers about one running component."""

    name: str
    pid: int
    pgid: int
    url: str
    started_at: str
    log_file: str
    start_ticks: int | None = None
    extra_urls: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    restarts: Restarts = field(default_factory=Restarts)

    @property
    def live(self) -> bool:
        """True when the recorded process still runs (same pid *and* same start time)."""
        return procs.is_alive(self.pid, self.start_ticks)

    def to_json(self) -> str:
        """Serialise (stable key order, for humans reading the file)."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        """Parse; raises ValueError/KeyError/TypeError on a malformed file."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("run file is not a JSON object")
        return cls(
            name=str(data["name"]),
            pid=int(data["pid"]),
            pgid=int(data["pgid"]),
            url=str(data["url"]),
            started_at=str(data["started_at"]),
            log_file=str(data["log_file"]),
            start_ticks=None if data.get("start_ticks") is None else int(data["start_ticks"]),
            extra_urls={str(k): str(v) for k, v in dict(data.get("extra_urls") or {}).items()},
            meta=dict(data.get("meta") or {}),
            restarts=Restarts.from_dict(dict(data.get("restarts") or {})),
        )


def now_iso() -> str:
    """UTC timestamp for `started_at`."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def run_file(run_dir: Path, name: str) -> Path:
    """Path of the run file of component `name`."""
    return run_dir / f"{name}.json"


def write(run_dir: Path, record: RunRecord) -> Path:
    """Write atomically (temp file + rename) so a reader never sees half a file."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_file(run_dir, record.name)
    tmp = path.with_suffix(f".json.{os.getpid()}.tmp")
    tmp.write_text(record.to_json() + "\n")
    tmp.replace(path)
    return path


def read(run_dir: Path, name: str) -> RunRecord | None:
    """The record of `name`, or None when there is none or it cannot be parsed (logged)."""
    path = run_file(run_dir, name)
    try:
        return RunRecord.from_json(path.read_text())
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring malformed run file %s: %s", path, exc)
        return None


def read_all(run_dir: Path) -> list[RunRecord]:
    """Every parseable record in the run folder, sorted by name."""
    if not run_dir.is_dir():
        return []
    records = (read(run_dir, p.stem) for p in sorted(run_dir.glob("*.json")))
    return [r for r in records if r is not None]


def remove(run_dir: Path, name: str) -> None:
    """Delete the run file of `name` if present."""
    run_file(run_dir, name).unlink(missing_ok=True)
