"""The local scheduler: the chart's CronJobs (services/stack/timetable.py) run under `modelfleet up`
as a CronJob controller and a Job controller would run them.

- `Scheduler.tick(now)` (called with the supervisor's tick, about twice a second) starts a job
  when its schedule is due, unless its previous run still goes on (`concurrencyPolicy: Forbid`:
  the time is skipped) or the tick comes more than `startingDeadlineSeconds` late (missed).
- `JobRun` is one run: the job's command as a child process in its own session, with the
  stack's environment (DATABASE_URL, NATS_URL, TRITON_GRPC_URL, MODELFLEET_HOME) and the entry's
  `env`, output appended to `logs/job-<name>.log`. A failed attempt is retried up to
  `backoffLimit` times after a backoff (MODELFLEET_JOB_BACKOFF_S doubled per failure, like the
  Job controller's 10 s, 20 s, ...); the whole run has `activeDeadlineSeconds`: then the attempt
  gets SIGTERM, SIGKILL after the stack's stop timeout, and the run ends `deadline-exceeded`.
- Every change is written to the job's run file (services/stack/jobruns.py): start, end, state,
  exit code (128 + signal when killed), duration, attempts.

Nothing here blocks: `tick` and `JobRun.poll` look at child processes and return, so the
supervisor's loop keeps its pace. Times are UTC datetimes from an injectable clock (`now`), so
tests drive schedules, backoffs and deadlines without waiting. `run_now` (`modelfleet jobs run`)
drives one run to its end in the caller's process.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from services.stack import jobruns, procs
from services.stack.jobruns import JobRecord, JobState, Trigger
from services.stack.settings import StackPaths, StackSettings
from services.stack.timetable import PROJECT_ROOT, JobSpec, local_path

log = logging.getLogger("modelfleet.stack")

Clock = Callable[[], datetime]
Say = Callable[[str], None]
#: seconds between two polls of `run_now`
POLL_SECONDS = 0.2


def utc_now() -> datetime:
    """The real clock."""
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """A run file's timestamp."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Backoff:
    """Wait before retry number `failures` (1-based) of a run: base doubled, capped."""

    base_s: float = 10.0
    max_s: float = 360.0

    @classmethod
    def of(cls, settings: StackSettings) -> Backoff:
        """MODELFLEET_JOB_BACKOFF_S and _MAX_S."""
        return cls(settings.job_backoff_s, settings.job_backoff_max_s)

    def delay(self, failures: int) -> float:
        return float(min(self.base_s * 2.0 ** max(0, failures - 1), self.max_s))


def log_path(paths: StackPaths, name: str) -> Path:
    """`logs/job-<name>.log`."""
    return paths.logs / f"job-{name}.log"


def job_environment(settings: StackSettings, spec: JobSpec) -> dict[str, str]:
    """Ours, the stack's server URLs and home (what the chart's ConfigMap and MODELFLEET_HOME
    give a job pod), then the entry's `env` with /data paths made the home's."""
    home = settings.paths.home
    env = dict(os.environ)
    env.update(settings.service_env())
    env["MODELFLEET_HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p
    )
    env.update({key: local_path(value, home) for key, value in spec.env.items()})
    return env


def _exit_code(returncode: int) -> int:
    """As Kubernetes reports a container's exit: 128 + the signal's number when killed."""
    return 128 - returncode if returncode < 0 else returncode


Phase = Literal["new", "running", "terminating", "backoff", "done"]


class JobRun:
    """One run of a job (see the module docstring); `start(now)`, then `poll(now)` until True."""

    def __init__(
        self,
        spec: JobSpec,
        settings: StackSettings,
        *,
        trigger: Trigger,
        backoff: Backoff,
        say: Say,
        scheduled_for: datetime | None = None,
    ) -> None:
        self.spec = spec
        self.settings = settings
        self.paths = settings.paths
        self.trigger: Trigger = trigger
        self.backoff = backoff
        self._say = say
        self.scheduled_for = scheduled_for
        self.phase: Phase = "new"
        self.failures = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._started = datetime.min.replace(tzinfo=UTC)
        self._deadline = self._started
        self._retry_at = self._started
        self._term_sent_at = self._started
        self._last_code: int | None = None
        info = procs.proc_info(os.getpid())
        self.record = JobRecord(
            name=spec.name,
            state="running",
            trigger=trigger,
            started_at="",
            log_file=str(log_path(self.paths, spec.name)),
            attempts=0,
            scheduled_for=None if scheduled_for is None else iso(scheduled_for),
            owner_pid=os.getpid(),
            owner_ticks=None if info is None else info.start_ticks,
        )

    @property
    def done(self) -> bool:
        return self.phase == "done"

    def start(self, now: datetime) -> None:
        """Spawn the first attempt; the deadline counts from now."""
        self._started = now
        self._deadline = now + timedelta(seconds=self.spec.active_deadline_s)
        self.record = replace(self.record, started_at=iso(now))
        for path in self.spec.mount_paths:  # the claims a pod mounts: folders of the home
            Path(local_path(path, self.paths.home)).mkdir(parents=True, exist_ok=True)
        self._spawn(now)

    def _spawn(self, now: datetime) -> None:
        argv = self.spec.local_command()
        self.paths.logs.mkdir(parents=True, exist_ok=True)
        attempt = self.record.attempts + 1
        with log_path(self.paths, self.spec.name).open("ab") as log_fh:
            header = (
                f"\n==== {iso(now)} {self.spec.name} ({self.trigger}) attempt {attempt}/"
                f"{self.spec.backoff_limit + 1}: {shlex.join(argv)}\n"
            )
            log_fh.write(header.encode())
            log_fh.flush()
            try:
                self._proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log_fh,
                    stderr=subprocess.STDOUT,
                    env=job_environment(self.settings, self.spec),
                    cwd=self.paths.home,
                    start_new_session=True,
                )
            except OSError as exc:  # counts as a failed attempt
                log_fh.write(f"could not start: {exc}\n".encode())
                self._proc = None
                self.record = replace(self.record, attempts=attempt)
                self._failed(now, 127)
                return
        info = procs.proc_info(self._proc.pid)
        self.phase = "running"
        self.record = replace(
            self.record,
            attempts=attempt,
            pid=self._proc.pid,
            pgid=self._proc.pid,
            start_ticks=None if info is None else info.start_ticks,
        )
        self._write()
        log.info("job %s: attempt %d, pid %d", self.spec.name, attempt, self._proc.pid)

    def poll(self, now: datetime) -> bool:
        """Move the run on (exit, retry, deadline); True once it has ended."""
        if self.phase == "running":
            assert self._proc is not None
            returncode = self._proc.poll()
            if returncode is not None:
                self._exited(now, _exit_code(returncode))
            elif now >= self._deadline:
                self._say(
                    f"job {self.spec.name}: activeDeadlineSeconds "
                    f"({self.spec.active_deadline_s} s) passed: stopping it"
                )
                self._signal(signal.SIGTERM)
                self.phase = "terminating"
                self._term_sent_at = now
        elif self.phase == "terminating":
            assert self._proc is not None
            returncode = self._proc.poll()
            if returncode is not None:
                self._finish(now, "deadline-exceeded", _exit_code(returncode))
            elif (now - self._term_sent_at).total_seconds() >= self.settings.stop_timeout:
                self._signal(signal.SIGKILL)
        elif self.phase == "backoff" and now >= self._retry_at:
            if now >= self._deadline:
                self._finish(now, "deadline-exceeded", self._last_code)
            else:
                self._spawn(now)
        return self.done

    def _exited(self, now: datetime, code: int) -> None:
        self._proc = None
        if code == 0:
            self._finish(now, "succeeded", 0)
        else:
            self._failed(now, code)

    def _failed(self, now: datetime, code: int) -> None:
        self.failures += 1
        self._last_code = code
        delay = self.backoff.delay(self.failures)
        retry_at = now + timedelta(seconds=delay)
        if self.failures > self.spec.backoff_limit or retry_at >= self._deadline:
            self._finish(now, "failed", code)
            return
        self._say(
            f"job {self.spec.name}: attempt {self.record.attempts} exited with code {code}; "
            f"retrying in {delay:g} s ({self.failures} of {self.spec.backoff_limit} retries)"
        )
        self.phase = "backoff"
        self._retry_at = retry_at
        self.record = replace(self.record, pid=None, pgid=None, start_ticks=None)
        self._write()

    def _finish(self, now: datetime, state: JobState, code: int | None) -> None:
        self.phase = "done"
        self._proc = None
        duration = (now - self._started).total_seconds()
        self.record = replace(
            self.record,
            state=state,
            finished_at=iso(now),
            exit_code=code,
            duration_s=round(duration, 3),
            pid=None,
            pgid=None,
            start_ticks=None,
        )
        self._write()
        self._say(
            f"job {self.spec.name}: {state} (exit code {code}) after {duration:.1f} s, "
            f"{self.record.attempts} attempt(s); log {self.record.log_file}"
        )

    def _signal(self, sig: signal.Signals) -> None:
        if self._proc is None:
            return
        try:
            os.killpg(self._proc.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, now: datetime) -> None:
        """End the run now (the stack stops): SIGTERM, SIGKILL after the stop timeout. Blocks."""
        if self.phase in ("running", "terminating") and self._proc is not None:
            self._signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=self.settings.stop_timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self._proc.wait(timeout=5.0)
            code: int | None = _exit_code(self._proc.returncode)
        else:
            code = self._last_code
        if self.phase != "done":
            self._finish(now, "stopped", code)

    def _write(self) -> None:
        jobruns.write(self.paths.run, self.record)


class Scheduler:
    """Starts each job when its schedule is due (see the module docstring)."""

    def __init__(
        self,
        jobs: Sequence[JobSpec],
        settings: StackSettings,
        *,
        say: Say,
        clock: Clock = utc_now,
    ) -> None:
        self.jobs = list(jobs)
        self.settings = settings
        self._say = say
        self._clock = clock
        now = clock()
        self._next = {job.name: job.next_run(now) for job in self.jobs}
        self._runs: dict[str, JobRun] = {}

    def next_runs(self) -> dict[str, datetime]:
        """When each job is due next."""
        return dict(self._next)

    def running(self) -> list[str]:
        """The jobs this scheduler runs right now."""
        return sorted(self._runs)

    def tick(self, now: datetime | None = None) -> list[JobRecord]:
        """Move running jobs on and start the due ones; the records of runs that ended."""
        now = self._clock() if now is None else now
        ended: list[JobRecord] = []
        for job in self.jobs:
            run = self._runs.get(job.name)
            if run is not None and run.poll(now):
                ended.append(run.record)
                del self._runs[job.name]
            due = self._next[job.name]
            if now < due:
                continue
            self._next[job.name] = job.next_run(now)
            self._start_due(job, due, now)
        return ended

    def _start_due(self, job: JobSpec, due: datetime, now: datetime) -> None:
        late = (now - due).total_seconds()
        other = jobruns.read(self.settings.paths.run, job.name)
        if job.name in self._runs or (other is not None and other.live):
            self._say(f"job {job.name}: {iso(due)} skipped, the previous run still runs (Forbid)")
        elif late > job.starting_deadline_s:
            self._say(
                f"job {job.name}: {iso(due)} missed ({late:.0f} s late, "
                f"startingDeadlineSeconds {job.starting_deadline_s})"
            )
        else:
            run = JobRun(
                job,
                self.settings,
                trigger="schedule",
                backoff=Backoff.of(self.settings),
                say=self._say,
                scheduled_for=due,
            )
            self._say(f"job {job.name}: starting ({job.schedule}, due {iso(due)})")
            run.start(now)
            self._runs[job.name] = run

    def stop(self) -> None:
        """Stop the runs in progress (blocking: up to the stop timeout each)."""
        for name in list(self._runs):
            self._runs.pop(name).stop(self._clock())


class AlreadyRunning(Exception):
    """The job's previous run still goes on (Forbid)."""

    def __init__(self, record: JobRecord) -> None:
        self.record = record
        super().__init__(
            f"job {record.name} is running already (since {record.started_at}, "
            f"pid {record.pid or record.owner_pid}): concurrencyPolicy Forbid"
        )


def run_now(
    spec: JobSpec,
    settings: StackSettings,
    *,
    say: Say,
    clock: Clock = utc_now,
    sleep: Callable[[float], None] = time.sleep,
) -> JobRun:
    """Run `spec` once, now, to its end (same command, retries, deadline and run file as a
    scheduled run) and return it; AlreadyRunning when a run of it goes on. An exception while
    it runs (an interrupt) stops the run first."""
    previous = jobruns.read(settings.paths.run, spec.name)
    if previous is not None and previous.live:
        raise AlreadyRunning(previous)
    run = JobRun(spec, settings, trigger="manual", backoff=Backoff.of(settings), say=say)
    try:
        run.start(clock())
        while not run.poll(clock()):
            sleep(POLL_SECONDS)
    except BaseException:
        run.stop(clock())
        raise
    return run


def stop_jobs(paths: StackPaths, *, timeout_s: float) -> list[str]:
    """Stop the job attempts recorded as running (`modelfleet down`, from any process): SIGTERM
    to each attempt's process group, SIGKILL after `timeout_s`; the names stopped."""
    stopped: list[str] = []
    for record in jobruns.read_all(paths.run):
        if record.state != "running" or not record.attempt_live or record.pgid is None:
            continue
        assert record.pid is not None
        family = procs.family(record.pid, pgid=record.pgid)
        procs.send_signal([record.pid], signal.SIGTERM)
        procs.wait_gone([record.pid], deadline=time.monotonic() + timeout_s)
        leftovers = {p for p in family | procs.family(record.pid, pgid=record.pgid) if p}
        procs.send_signal(leftovers, signal.SIGKILL)
        procs.wait_gone(leftovers, deadline=time.monotonic() + 5.0)
        procs.reap_own_zombie(record.pid)
        jobruns.write(
            paths.run,
            replace(
                record,
                state="stopped",
                finished_at=iso(utc_now()),
                pid=None,
                pgid=None,
                start_ticks=None,
            ),
        )
        stopped.append(record.name)
    return stopped
