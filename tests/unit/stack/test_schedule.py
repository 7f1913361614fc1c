"""The local scheduler (services/stack/schedule.py, timetable.py) on a fake clock with real child
processes: when a job is due, Forbid, startingDeadlineSeconds, retries within the deadline, the
deadline's SIGTERM then SIGKILL, the run file, `run_now`, and the chart's values as the source."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.stack import jobruns, procs
from services.stack.jobruns import JobRecord
from services.stack.schedule import (
    AlreadyRunning,
    Backoff,
    JobRun,
    Scheduler,
    job_environment,
    run_now,
    stop_jobs,
)
from services.stack.settings import StackSettings
from services.stack.timetable import JobSpec, TimetableError, load_jobs, local_path, select

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # a Monday, 00:00 UTC


class FakeClock:
    """A settable UTC clock."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def python_job(code: str, **fields: object) -> JobSpec:
    """A job whose command is `python -c code`, due every 2 hours at :20."""
    spec = JobSpec(
        name="work",
        schedule="20 */2 * * *",
        command=(sys.executable, "-c", code),
        starting_deadline_s=600,
        active_deadline_s=1800,
        backoff_limit=2,
    )
    return replace(spec, **fields)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path) -> StackSettings:
    return StackSettings(home=tmp_path, stop_timeout=1.0, job_backoff_s=10.0)


def settle(scheduler: Scheduler, clock: FakeClock, *, timeout_s: float = 15.0) -> list[JobRecord]:
    """Tick at the fake time (real waits) until a run ends; its record."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ended = scheduler.tick(clock())
        if ended:
            return ended
        time.sleep(0.02)
    raise AssertionError("no run ended")


def wait_exit(run: JobRun, clock: FakeClock, *, timeout_s: float = 15.0) -> None:
    """Poll at the fake time until the run leaves its current attempt (or ends)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if run.poll(clock()) or run.phase == "backoff":
            return
        time.sleep(0.02)
    raise AssertionError(f"attempt did not exit (phase {run.phase})")


# --- the timetable --------------------------------------------------------------------------


def test_chart_values_are_the_timetable() -> None:
    jobs = {job.name: job for job in load_jobs()}
    assert {n: j.schedule for n, j in jobs.items()} == {
        "ride-scoring": "20 */2 * * *",
        "documents-ingest": "40 */4 * * *",
        "classifier-retrain": "40 2-22/4 * * *",
    }
    assert jobs["ride-scoring"].command == ("modelfleet", "score")
    assert jobs["ride-scoring"].active_deadline_s == 1800
    assert jobs["documents-ingest"].mount_paths == ("/data/documents",)
    assert jobs["ride-scoring"].local_command()[:3] == [sys.executable, "-m", "services.cli"]


def test_next_runs_follow_the_timetable() -> None:
    jobs = {job.name: job for job in load_jobs()}

    def day(job: str) -> list[str]:
        times, at = [], T0 - timedelta(seconds=1)
        while (at := jobs[job].next_run(at)) < T0 + timedelta(days=1):
            times.append(f"{at:%H:%M}")
        return times

    assert day("ride-scoring") == [f"{h:02d}:20" for h in range(0, 24, 2)]
    assert day("documents-ingest") == ["00:40", "04:40", "08:40", "12:40", "16:40", "20:40"]
    assert day("classifier-retrain") == ["02:40", "06:40", "10:40", "14:40", "18:40", "22:40"]
    # 4-hourly runs of one hour and their 2 h deadlines never overlap each other.
    ingest, retrain = jobs["documents-ingest"], jobs["classifier-retrain"]
    first = ingest.next_run(T0)
    assert first + timedelta(seconds=ingest.active_deadline_s) <= retrain.next_run(first)


def test_bad_values_and_selection_are_refused(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(
        "cronJobs:\n  x:\n    schedule: '61 * * * *'\n    command: [true]\n"
        "    startingDeadlineSeconds: 1\n    activeDeadlineSeconds: 1\n    backoffLimit: 0\n"
    )
    with pytest.raises(TimetableError, match="cronJobs.x.schedule"):
        load_jobs(values)
    jobs = load_jobs()
    assert select(jobs, "off") == [] and select(jobs, "on") == jobs
    assert [j.name for j in select(jobs, "ride-scoring")] == ["ride-scoring"]
    with pytest.raises(TimetableError, match="unknown jobs"):
        select(jobs, "ride-scoring,nightly")


def test_environment_is_the_stacks_with_chart_paths_made_local(settings: StackSettings) -> None:
    home = settings.paths.home
    assert local_path("/data/documents", home) == str(home / "documents")
    assert local_path("/database", home) == "/database"
    env = job_environment(settings, python_job("", env={"INGEST_PDF_DIR": "/data/documents"}))
    assert env["INGEST_PDF_DIR"] == str(home / "documents")
    assert env["DATABASE_URL"] == settings.database_url
    assert env["TRITON_GRPC_URL"] == settings.triton_grpc_url
    assert env["MODELFLEET_HOME"] == str(home)


# --- due, Forbid, missed --------------------------------------------------------------------


def test_a_job_starts_when_due_and_its_run_file_says_how_it_ended(
    settings: StackSettings,
) -> None:
    clock = FakeClock(T0)
    scheduler = Scheduler([python_job("print('scored')")], settings, say=print, clock=clock)
    assert scheduler.next_runs() == {"work": T0.replace(minute=20)}
    assert scheduler.tick(clock.advance(19 * 60 + 59)) == []
    assert scheduler.running() == []
    scheduler.tick(clock.advance(1))  # 00:20:00
    assert scheduler.running() == ["work"]
    running = jobruns.read(settings.paths.run, "work")
    assert running is not None and running.state == "running" and running.live
    assert running.scheduled_for == "2026-03-02T00:20:00+00:00"
    clock.advance(42)
    (record,) = settle(scheduler, clock)
    assert record == jobruns.read(settings.paths.run, "work")
    assert (record.state, record.exit_code, record.attempts) == ("succeeded", 0, 1)
    assert record.started_at == "2026-03-02T00:20:00+00:00"
    assert record.finished_at == "2026-03-02T00:20:42+00:00"
    assert record.duration_s == 42.0
    assert record.pid is None and not record.live
    assert "scored" in Path(record.log_file).read_text()
    assert scheduler.next_runs() == {"work": T0.replace(hour=2, minute=20)}


def test_forbid_skips_a_due_time_while_the_previous_run_goes_on(
    settings: StackSettings,
) -> None:
    said: list[str] = []
    clock = FakeClock(T0.replace(minute=19))
    job = python_job("import time; time.sleep(60)", active_deadline_s=3 * 3600)
    scheduler = Scheduler([job], settings, say=said.append, clock=clock)
    scheduler.tick(clock.advance(60))  # 00:20: starts
    first = jobruns.read(settings.paths.run, "work")
    assert first is not None and first.pid is not None
    scheduler.tick(clock.advance(2 * 3600))  # 02:20: still running
    assert any("skipped" in line and "Forbid" in line for line in said)
    again = jobruns.read(settings.paths.run, "work")
    assert again is not None and again.pid == first.pid and again.attempts == 1
    scheduler.stop()
    stopped = jobruns.read(settings.paths.run, "work")
    assert stopped is not None and stopped.state == "stopped" and not procs.is_alive(first.pid)


def test_a_run_of_another_process_also_forbids(settings: StackSettings) -> None:
    """`modelfleet jobs run` in another process: its run file is live, the scheduler skips."""
    jobruns.write(
        settings.paths.run,
        JobRecord(
            name="work",
            state="running",
            trigger="manual",
            started_at="x",
            log_file="x",
            owner_pid=os.getpid(),
            owner_ticks=None,
        ),
    )
    clock = FakeClock(T0.replace(minute=19))
    scheduler = Scheduler([python_job("pass")], settings, say=print, clock=clock)
    scheduler.tick(clock.advance(60))
    assert scheduler.running() == []
    with pytest.raises(AlreadyRunning, match="concurrencyPolicy Forbid"):
        run_now(python_job("pass"), settings, say=print)


def test_a_tick_later_than_the_starting_deadline_misses_the_run(settings: StackSettings) -> None:
    said: list[str] = []
    clock = FakeClock(T0)
    scheduler = Scheduler([python_job("pass")], settings, say=said.append, clock=clock)
    scheduler.tick(clock.advance(20 * 60 + 601))  # 00:30:01, startingDeadlineSeconds 600
    assert scheduler.running() == []
    assert any("missed" in line for line in said)
    assert jobruns.read(settings.paths.run, "work") is None


# --- retries and the deadline ---------------------------------------------------------------


def test_a_failed_attempt_is_retried_after_its_backoff(
    settings: StackSettings, tmp_path: Path
) -> None:
    marker = tmp_path / "first-attempt-done"
    code = (
        "import pathlib, sys\n"
        f"m = pathlib.Path({str(marker)!r})\n"
        "if not m.exists():\n    m.touch(); sys.exit(3)\n"
    )
    clock = FakeClock(T0)
    run = JobRun(python_job(code), settings, trigger="manual", backoff=Backoff(10, 360), say=print)
    run.start(clock())
    wait_exit(run, clock)
    assert run.phase == "backoff" and run.failures == 1
    waiting = jobruns.read(settings.paths.run, "work")
    assert waiting is not None and waiting.state == "running" and waiting.pid is None
    assert waiting.live  # the owner (this process) retries: still Forbid
    assert not run.poll(clock.advance(9.9))
    assert not run.poll(clock.advance(0.1))  # 10 s: the second attempt starts
    wait_exit(run, clock)
    assert run.done
    assert (run.record.state, run.record.exit_code, run.record.attempts) == ("succeeded", 0, 2)


def test_failures_past_the_backoff_limit_fail_the_run_with_the_exit_code(
    settings: StackSettings,
) -> None:
    clock = FakeClock(T0)
    job = python_job("raise SystemExit(4)", backoff_limit=1)
    run = JobRun(job, settings, trigger="manual", backoff=Backoff(10, 360), say=print)
    run.start(clock())
    wait_exit(run, clock)
    run.poll(clock.advance(10))
    wait_exit(run, clock)
    assert run.done
    assert (run.record.state, run.record.exit_code, run.record.attempts) == ("failed", 4, 2)


def test_no_retry_starts_past_the_deadline(settings: StackSettings) -> None:
    clock = FakeClock(T0)
    job = python_job("raise SystemExit(1)", active_deadline_s=15, backoff_limit=5)
    run = JobRun(job, settings, trigger="manual", backoff=Backoff(10, 360), say=print)
    run.start(clock())
    wait_exit(run, clock)
    assert run.phase == "backoff"  # retry at 10 s, within 15 s
    run.poll(clock.advance(10))
    wait_exit(run, clock)  # the next retry would be at 10 + 20 s: past the deadline
    assert run.done and run.record.state == "failed" and run.record.attempts == 2


def test_the_deadline_stops_the_attempt_sigterm_then_sigkill(settings: StackSettings) -> None:
    said: list[str] = []
    clock = FakeClock(T0)
    stubborn = (
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('sig' + 'term ignored', flush=True)\ntime.sleep(120)\n"
    )
    job = python_job(stubborn, active_deadline_s=1800)
    run = JobRun(job, settings, trigger="schedule", backoff=Backoff(), say=said.append)
    run.start(clock())
    log = Path(run.record.log_file)
    deadline = time.monotonic() + 10
    while "sigterm ignored" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    pid = run.record.pid
    assert pid is not None
    assert not run.poll(clock.advance(1799))
    assert not run.poll(clock.advance(1))  # 30 min: SIGTERM (ignored)
    assert run.phase == "terminating" and procs.is_alive(pid)
    assert not run.poll(clock.advance(1))  # the stop timeout (1 s): SIGKILL
    end = time.monotonic() + 10
    while not run.poll(clock()) and time.monotonic() < end:
        time.sleep(0.02)
    assert run.record.state == "deadline-exceeded"
    assert run.record.exit_code == 137  # 128 + SIGKILL
    assert run.record.duration_s == 1801.0
    assert any("activeDeadlineSeconds" in line for line in said)


def test_run_now_returns_the_jobs_exit_code_and_records_it(settings: StackSettings) -> None:
    run = run_now(python_job("raise SystemExit(5)", backoff_limit=0), settings, say=print)
    record = jobruns.read(settings.paths.run, "work")
    assert record is not None and record == run.record
    assert (record.state, record.exit_code, record.trigger) == ("failed", 5, "manual")


def test_down_stops_a_running_attempt_from_its_run_file(settings: StackSettings) -> None:
    clock = FakeClock(T0)
    job = python_job("import time; time.sleep(60)")
    run = JobRun(job, settings, trigger="schedule", backoff=Backoff(), say=print)
    run.start(clock())
    pid = run.record.pid
    assert pid is not None
    assert stop_jobs(settings.paths, timeout_s=5.0) == ["work"]
    assert not procs.is_alive(pid)
    record = jobruns.read(settings.paths.run, "work")
    assert record is not None and record.state == "stopped"
    run.poll(clock())  # this process's Popen learns that its child is gone
