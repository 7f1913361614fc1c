"""Run files of the batch jobs: `$MODELFLEET_HOME/run/jobs/<job>.json`, one per job.

Each holds the job's current or last run: when it started and ended, how (state, exit code),
how long it took, how many attempts, and while it runs the pid, process group and kernel start
time of its attempt and of the process that runs it (the scheduler of `up`, or `modelfleet jobs
run`), so that any process sees whether it still runs (Forbid) and `modelfleet down` can stop
exactly it. A sub-folder of `run/`, so the
components' run files (services/stack/runfiles.py) never mix with these.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from services.stack import procs

log = logging.getLogger("modelfleet.stack")

JobState = Literal["running", "succeeded", "failed", "deadline-exceeded", "stopped"]
Trigger = Literal["schedule", "manual"]


@dataclass(frozen=True)
class JobRecord:
    """The current or last run of one job."""

    name: str
    state: JobState
    trigger: Trigger
    started_at: str
    log_file: str
    attempts: int = 1
    finished_at: str | None = None
    exit_code: int | None = None
    duration_s: float | None = None
    scheduled_for: str | None = None
    #: the current attempt's process (its own session: pgid == pid); None between attempts
    pid: int | None = None
    pgid: int | None = None
    start_ticks: int | None = None
    #: the process running the run (the scheduler of `up`, or `modelfleet jobs run`)
    owner_pid: int | None = None
    owner_ticks: int | None = None

    @property
    def attempt_live(self) -> bool:
        """True while the current attempt's process runs."""
        return self.pid is not None and procs.is_alive(self.pid, self.start_ticks)

    @property
    def live(self) -> bool:
        """True while the run goes on: an attempt runs, or its owner waits to retry."""
        if self.state != "running":
            return False
        owner = self.owner_pid is not None and procs.is_alive(self.owner_pid, self.owner_ticks)
        return self.attempt_live or owner

    def to_json(self) -> str:
        """Serialise (stable key order)."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> JobRecord:
        """Parse; ValueError/KeyError/TypeError on a malformed file."""
        data: Any = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("job run file is not a JSON object")

        def opt_int(key: str) -> int | None:
            return None if data.get(key) is None else int(data[key])

        def opt_str(key: str) -> str | None:
            return None if data.get(key) is None else str(data[key])

        duration = data.get("duration_s")
        return cls(
            name=str(data["name"]),
            state=data["state"],
            trigger=data["trigger"],
            started_at=str(data["started_at"]),
            log_file=str(data["log_file"]),
            attempts=int(data.get("attempts", 1)),
            finished_at=opt_str("finished_at"),
            exit_code=opt_int("exit_code"),
            duration_s=None if duration is None else float(duration),
            scheduled_for=opt_str("scheduled_for"),
            pid=opt_int("pid"),
            pgid=opt_int("pgid"),
            start_ticks=opt_int("start_ticks"),
            owner_pid=opt_int("owner_pid"),
            owner_ticks=opt_int("owner_ticks"),
        )


def jobs_dir(run_dir: Path) -> Path:
    """`run/jobs`."""
    return run_dir / "jobs"


def write(run_dir: Path, record: JobRecord) -> Path:
    """Write atomically (temp file + rename)."""
    folder = jobs_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{record.name}.json"
    tmp = path.with_suffix(f".json.{os.getpid()}.tmp")
    tmp.write_text(record.to_json() + "\n")
    tmp.replace(path)
    return path


def read(run_dir: Path, name: str) -> JobRecord | None:
    """The record of job `name`, or None (none yet, or unreadable: logged)."""
    path = jobs_dir(run_dir) / f"{name}.json"
    try:
        return JobRecord.from_json(path.read_text())
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring malformed job run file %s: %s", path, exc)
        return None


def read_all(run_dir: Path) -> list[JobRecord]:
    """Every readable job record, sorted by name."""
    folder = jobs_dir(run_dir)
    if not folder.is_dir():
        return []
    records = (read(run_dir, p.stem) for p in sorted(folder.glob("*.json")))
    return [r for r in records if r is not None]
