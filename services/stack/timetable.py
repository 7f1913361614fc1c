"""The batch jobs' timetable: the chart's `cronJobs` (charts/modelfleet/values.yaml), read at run
time, so that `modelfleet up` runs the same jobs on the same schedules as the cluster.

values.yaml is the one source of the cron strings, commands, environment, deadlines and retry
limits; nothing here repeats them. Schedules are in UTC (the CronJobs' `timeZone: Etc/UTC`) and
parsed with croniter (the `local` extra).

    jobs = load_jobs()                           # every `cronJobs` entry, in file order
    jobs[0].next_run(datetime.now(UTC))           # the next time it is due
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from croniter import croniter

from services.stack.errors import StackError

#: the folder holding `services` and `charts` (the local stack runs from the checkout)
PROJECT_ROOT = Path(__file__).resolve().parents[2]
CHART_VALUES = PROJECT_ROOT / "charts" / "modelfleet" / "values.yaml"
#: MODELFLEET_HOME of the chart's job pods (templates/_jobs.tpl): paths under it are the stack
#: home's locally (e.g. INGEST_PDF_DIR=/data/documents -> $MODELFLEET_HOME/documents)
CHART_HOME = "/data"


class TimetableError(StackError, ValueError):
    """The values file has no usable `cronJobs`, or MODELFLEET_SCHEDULES names an unknown job
    (the message names the entry and key)."""


@dataclass(frozen=True)
class JobSpec:
    """One `cronJobs` entry as the local scheduler runs it."""

    name: str
    schedule: str
    command: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    starting_deadline_s: int = 600
    active_deadline_s: int = 3600
    backoff_limit: int = 0
    #: mount paths of the job's volume claims (the local stack makes them folders of its home)
    mount_paths: tuple[str, ...] = ()
    #: the entry's `enabled`: whether the chart renders its CronJob (locally it always runs)
    enabled_in_chart: bool = False

    def next_run(self, after: datetime) -> datetime:
        """The first time strictly after `after` (timezone-aware) the job is due, in UTC."""
        nxt: datetime = croniter(self.schedule, after.astimezone(UTC)).get_next(datetime)
        return nxt.astimezone(UTC)

    def local_command(self) -> list[str]:
        """argv for the local stack: `modelfleet ...` is this interpreter's `-m services.cli`."""
        head, *rest = self.command
        if head == "modelfleet":
            return [sys.executable, "-m", "services.cli", *rest]
        return [head, *rest]


def local_path(value: str, home: Path) -> str:
    """`value` with the chart's /data prefix (the pods' MODELFLEET_HOME) replaced by `home`."""
    if value == CHART_HOME or value.startswith(CHART_HOME + "/"):
        return str(home / value[len(CHART_HOME) :].lstrip("/"))
    return value


def _int(entry: Mapping[str, Any], name: str, key: str) -> int:
    value = entry.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise TimetableError(f"cronJobs.{name}.{key} must be an integer, not {value!r}")
    return value


def parse_job(name: str, entry: Mapping[str, Any]) -> JobSpec:
    """One `cronJobs` entry; TimetableError when a key the scheduler needs is missing or bad."""
    schedule = entry.get("schedule")
    if not isinstance(schedule, str) or not croniter.is_valid(schedule):
        raise TimetableError(f"cronJobs.{name}.schedule is not a cron expression: {schedule!r}")
    command = entry.get("command")
    if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
        raise TimetableError(f"cronJobs.{name}.command must be a list of strings")
    env = entry.get("env") or {}
    claims = entry.get("volumeClaims") or []
    return JobSpec(
        name=name,
        schedule=schedule,
        command=tuple(command),
        env={str(k): str(v) for k, v in dict(env).items()},
        starting_deadline_s=_int(entry, name, "startingDeadlineSeconds"),
        active_deadline_s=_int(entry, name, "activeDeadlineSeconds"),
        backoff_limit=_int(entry, name, "backoffLimit"),
        mount_paths=tuple(str(c["mountPath"]) for c in claims),
        enabled_in_chart=bool(entry.get("enabled", False)),
    )


def load_jobs(values_path: Path | None = None) -> list[JobSpec]:
    """Every `cronJobs` entry of the values file (default: the checkout's chart), in file order."""
    path = CHART_VALUES if values_path is None else values_path
    values = yaml.safe_load(path.read_text()) or {}
    entries = values.get("cronJobs") or {}
    if not isinstance(entries, dict):
        raise TimetableError(f"{path}: cronJobs is not a map")
    return [parse_job(str(name), entry) for name, entry in entries.items()]


def select(jobs: list[JobSpec], setting: str) -> list[JobSpec]:
    """The jobs MODELFLEET_SCHEDULES names: "on" (all), "off" (none) or a comma list of names."""
    wanted = setting.strip().lower()
    if wanted in ("on", "all", ""):
        return list(jobs)
    if wanted in ("off", "none"):
        return []
    names = [n.strip() for n in wanted.split(",") if n.strip()]
    unknown = sorted(set(names) - {j.name for j in jobs})
    if unknown:
        known = ", ".join(j.name for j in jobs)
        raise TimetableError(f"MODELFLEET_SCHEDULES names unknown jobs {unknown}; known: {known}")
    return [j for j in jobs if j.name in names]
