"""``modelfleet jobs`` and ``modelfleet jobs run NAME``: the chart's CronJobs on the local stack.

``jobs`` lists each `cronJobs` entry of charts/modelfleet/values.yaml with its schedule (UTC),
its next run and its last run (start, state, exit code, duration, attempts) from the job's run
file; ``jobs run NAME`` runs one now, in the foreground, exactly as `modelfleet up`'s scheduler
would (services/stack/schedule.py): same command, retries, deadline and run file; the exit code
is the job's. The stack's modules (psutil, croniter: the ``local`` extra) are imported here, in
the commands, so the console script still loads in an image.
"""

from __future__ import annotations

import argparse
import json
import signal
from typing import TYPE_CHECKING, Any

from services.cli.interrupts import Interrupted, stop_on_signals
from services.cli.output import EXIT_BAD_INPUT, EXIT_FAIL, Output
from services.stack import StackSettings

if TYPE_CHECKING:
    from services.stack.jobruns import JobRecord
    from services.stack.timetable import JobSpec

#: log lines shown after a failed `jobs run`
LOG_TAIL_LINES = 20


def _last_run(record: JobRecord | None) -> dict[str, Any]:
    if record is None:
        return {"started_at": None, "state": None, "exit_code": None, "duration_s": None}
    state: str = record.state
    if state == "running" and not record.live:
        state = "interrupted"  # its `up` or `jobs run` was killed before the run ended
    return {
        "started_at": record.started_at,
        "state": state,
        "trigger": record.trigger,
        "exit_code": record.exit_code,
        "duration_s": record.duration_s,
        "attempts": record.attempts,
        "log_file": record.log_file,
    }


def cmd_list(out: Output, settings: StackSettings, args: argparse.Namespace) -> int:
    """`modelfleet jobs [--json]`: schedule, next run and last run of every job."""
    from services.stack import jobruns
    from services.stack.schedule import utc_now
    from services.stack.timetable import load_jobs, select

    jobs = load_jobs(settings.chart_values)
    scheduled = {j.name for j in select(jobs, settings.schedules)}
    now = utc_now()
    rows: list[dict[str, Any]] = [
        {
            "name": job.name,
            "schedule": job.schedule,
            "scheduled_locally": job.name in scheduled,
            "next_run": job.next_run(now).isoformat(timespec="minutes"),
            "command": list(job.command),
            "active_deadline_s": job.active_deadline_s,
            "backoff_limit": job.backoff_limit,
            "last_run": _last_run(jobruns.read(settings.paths.run, job.name)),
        }
        for job in jobs
    ]
    if args.json:
        out.line(json.dumps(rows, indent=2))
        return 0
    out.table(
        ["NAME", "SCHEDULE (UTC)", "NEXT RUN", "LAST START", "STATE", "EXIT", "DURATION"],
        [
            [
                row["name"],
                row["schedule"] if row["scheduled_locally"] else f"{row['schedule']} (off)",
                row["next_run"],
                row["last_run"]["started_at"] or "-",
                row["last_run"]["state"] or "-",
                _text(row["last_run"]["exit_code"]),
                "-"
                if row["last_run"]["duration_s"] is None
                else f"{row['last_run']['duration_s']:.1f} s",
            ]
            for row in rows
        ],
    )
    return 0


def _text(value: object) -> str:
    return "-" if value is None else str(value)


def _spec(settings: StackSettings, name: str) -> JobSpec | None:
    from services.stack.timetable import load_jobs

    return next((job for job in load_jobs(settings.chart_values) if job.name == name), None)


def cmd_run(out: Output, settings: StackSettings, args: argparse.Namespace) -> int:
    """`modelfleet jobs run NAME`: one run now; exit code = the job's (1 if it has none)."""
    from services.stack import procs
    from services.stack.schedule import AlreadyRunning, run_now

    spec = _spec(settings, args.name)
    if spec is None:
        out.error(f"no job {args.name!r} in the chart's cronJobs (`modelfleet jobs` lists them)")
        return EXIT_BAD_INPUT
    out.line(
        f"running {spec.name} ({' '.join(spec.command)}; deadline {spec.active_deadline_s} s, "
        f"{spec.backoff_limit} retries); log: {settings.paths.logs / f'job-{spec.name}.log'}"
    )
    with stop_on_signals():
        try:
            run = run_now(spec, settings, say=out.line)
        except AlreadyRunning as exc:
            out.error(str(exc))
            return EXIT_FAIL
        except Interrupted as exc:
            if exc.signum == signal.SIGHUP:
                out.terminal_may_be_gone()
            out.error(f"{exc.signal_name}: the run was stopped")
            return exc.exit_code
    record = run.record
    if record.state != "succeeded":
        out.line(procs.tail(settings.paths.logs / f"job-{spec.name}.log", LOG_TAIL_LINES))
    return record.exit_code if record.exit_code is not None else EXIT_FAIL


def add_parser(sub: Any) -> None:
    """Add ``jobs`` (and ``jobs run``) to the CLI's sub-parsers."""
    jobs = sub.add_parser(
        "jobs", help="the chart's CronJobs on the local stack: schedules, next and last runs"
    )
    jobs.add_argument("--json", action="store_true", help="machine-readable output")
    jobs.set_defaults(func=cmd_list)
    actions = jobs.add_subparsers(dest="action", metavar="ACTION")
    run = actions.add_parser("run", help="run one job now (same command, deadline and record)")
    run.add_argument("name", help="a cronJobs entry, e.g. ride-scoring")
    run.set_defaults(func=cmd_run)
