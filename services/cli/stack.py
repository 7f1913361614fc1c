"""``modelfleet up``, ``down``, ``status``: the local stack (services/stack).

The supervisor (and psutil, of the ``local`` extra) is imported by the commands that use it, so
the console script also loads in an image, which has no local stack.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from services.cli.interrupts import Interrupted, stop_on_signals
from services.cli.models import build_repository
from services.cli.output import EXIT_FAIL, EXIT_OK, Output
from services.cli.servers import job_server_urls
from services.stack import AlreadyRunningError, StackSettings

if TYPE_CHECKING:
    from services.stack.component import ComponentStatus
    from services.stack.schedule import Scheduler
    from services.stack.supervisor import Stack


def _status_rows(statuses: Sequence[ComponentStatus]) -> list[list[str]]:
    return [
        [
            s.name,
            s.url,
            "-" if s.pid is None else str(s.pid),
            "yes" if s.ready else "no",
            str(s.restarts.count),
            "-" if s.restarts.last_exit_code is None else str(s.restarts.last_exit_code),
            s.restarts.last_restart_at or "-",
            _state(s),
        ]
        for s in statuses
    ]


def _state(status: ComponentStatus) -> str:
    """running, restarting, crash-looping or stopped (no process, and nothing restarts it)."""
    state = status.restarts.state
    if status.pid is None and state == "running":
        return "stopped"
    return state


def _print_urls(out: Output, statuses: Sequence[ComponentStatus]) -> None:
    rows: list[list[str]] = []
    for s in statuses:
        rows.append([s.name, s.url, "-" if s.pid is None else str(s.pid)])
        rows.extend([f"  {label}", url, ""] for label, url in s.extra_urls.items())
    out.table(["COMPONENT", "URL", "PID"], rows)
    out.line(f"logs: {statuses[0].log_file.parent}" if statuses else "")


#: what `modelfleet up` is doing, as its run file's phase and in words
PHASES = {
    "build": "building the models",
    "start": "starting the stack",
    "ingest": "ingesting the catalogue",
    "serve": "serving",
}


def cmd_up(out: Output, settings: StackSettings, args: argparse.Namespace) -> int:
    """`modelfleet up [--detach]`: build, start, ingest, then supervise until a stop signal.

    `--detach` runs the same in a new session (the supervisor process, its output in
    logs/supervisor.log) and returns once it serves.
    """
    if args.llm:  # the same as MODELFLEET_LLM=true
        settings = settings.model_copy(update={"llm": True})
    if args.detach:
        return _up_detached(out, settings, args)
    return _up(out, settings, args, mode="detached" if args.supervise else "foreground")


def _up(
    out: Output,
    settings: StackSettings,
    args: argparse.Namespace,
    *,
    mode: Literal["foreground", "detached"],
) -> int:
    from services.stack.supervision import SupervisorRecord
    from services.stack.supervisor import Stack

    stack = Stack(settings)
    running = stack.running()
    if running:
        raise AlreadyRunningError(running, home=settings.paths.home)
    cleaned = stack.clean_stale()
    if cleaned:
        out.line(f"removed the run files of {', '.join(cleaned)}: their processes were gone")
    stack.check_ports()
    scheduler = stack.scheduler(say=out.line)  # a bad MODELFLEET_SCHEDULES fails before a start
    record = SupervisorRecord(settings.paths, mode=mode)
    phase = "build"
    started = False
    with stop_on_signals():
        try:
            record.write(phase)
            if not args.no_build:
                _build(out, settings, args)
            phase = "start"
            record.write(phase)
            statuses = stack.start()  # stops what it started when it fails or is interrupted
            started = True
            _print_urls(out, statuses)
            if settings.monitoring and "prometheus" not in stack.names:
                from services.stack.monitoring import MISSING_HINT

                out.line(MISSING_HINT)
            timings = ", ".join(f"{n} {sec:.1f} s" for n, sec in stack.startup_seconds.items())
            out.line(f"ready ({timings})")
            if "chatbot" in stack.names and not args.no_ingest:
                phase = "ingest"
                record.write(phase)
                _ingest_catalogue(out, settings, seed=args.seed, rows=args.rows)
            phase = "serve"
            record.write(phase)
            _supervise(out, stack, scheduler, mode=mode)
        except Interrupted as exc:
            if exc.signum == signal.SIGHUP:
                out.terminal_may_be_gone()
            out.error(f"{exc.signal_name} while {PHASES[phase]}: stopping everything")
            scheduler.stop()  # a batch job's run first: it ends `stopped` in its run file
            stopped = stack.stop()
            out.line(f"stopped {', '.join(stopped)}" if stopped else "nothing was left running")
            return exc.exit_code
        except BaseException:
            if started:  # never leave a stack running without its supervisor
                scheduler.stop()
                stack.stop()
            raise
        finally:
            record.remove()
    return EXIT_FAIL  # not reached: _supervise returns only by an exception


def _build(out: Output, settings: StackSettings, args: argparse.Namespace) -> None:
    try:
        build_repository(out, settings, seed=args.seed, rows=args.rows)
    except ModuleNotFoundError as exc:
        if exc.name not in ("models.repository", "models"):
            raise
        out.error("models.repository is not available yet: using the repository as it is")


def _supervise(out: Output, stack: Stack, scheduler: Scheduler, *, mode: str) -> None:
    """Restart what exits (services/stack/supervision.py) and run the chart's CronJobs on their
    timetable (services/stack/schedule.py) until a signal ends `up`."""
    from services.stack.supervision import TICK_SECONDS

    if mode == "foreground":
        out.line("press Ctrl-C to stop (a component that exits is started again)")
    else:
        out.line("supervising: a component that exits is started again")
    _print_timetable(out, scheduler)
    supervisor = stack.supervisor(say=out.line)
    while True:
        supervisor.tick()
        scheduler.tick()
        time.sleep(TICK_SECONDS)


def _print_timetable(out: Output, scheduler: Scheduler) -> None:
    if not scheduler.jobs:
        out.line("batch jobs: not scheduled (MODELFLEET_SCHEDULES=off); `modelfleet jobs run NAME`")
        return
    due = scheduler.next_runs()
    out.line(
        "batch jobs (UTC, `modelfleet jobs`): "
        + "; ".join(f"{j.name} {j.schedule!r} next {due[j.name]:%H:%M}" for j in scheduler.jobs)
    )


def _up_detached(out: Output, settings: StackSettings, args: argparse.Namespace) -> int:
    """`up --detach`: the supervisor in a new session; echo its log until it serves."""
    from services.stack import runfiles
    from services.stack.supervision import SUPERVISOR
    from services.stack.supervisor import Stack

    running = Stack(settings).running()
    if running:
        raise AlreadyRunningError(running, home=settings.paths.home)
    paths = settings.paths
    paths.logs.mkdir(parents=True, exist_ok=True)
    log_path = paths.logs / f"{SUPERVISOR}.log"
    argv = [sys.executable, "-m", "services.cli", "--home", str(paths.home)]
    argv += ["up", "--supervise", "--seed", str(args.seed)]
    argv += [] if args.rows is None else ["--rows", str(args.rows)]
    argv += ["--no-build"] if args.no_build else []
    argv += ["--no-ingest"] if args.no_ingest else []
    argv += ["--llm"] if settings.llm else []
    with log_path.open("ab") as log_fh:
        offset = log_fh.tell()
        daemon = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    with stop_on_signals():
        try:
            while True:
                offset = _echo(out, log_path, offset)
                code = daemon.poll()
                if code is not None:
                    _echo(out, log_path, offset)
                    out.error(f"the stack's supervisor exited with code {code} (log: {log_path})")
                    return code or EXIT_FAIL
                record = runfiles.read(paths.run, SUPERVISOR)
                if record is not None and record.pid == daemon.pid:
                    if record.meta.get("phase") == "serve":
                        _echo(out, log_path, offset)
                        out.line(
                            f"running detached, supervised by pid {daemon.pid} (log: {log_path});"
                            " `modelfleet status`, `modelfleet down`"
                        )
                        return EXIT_OK
                time.sleep(0.2)
        except Interrupted as exc:
            if exc.signum == signal.SIGHUP:
                out.terminal_may_be_gone()
            out.error(f"{exc.signal_name}: stopping the stack that was starting")
            daemon.send_signal(signal.SIGTERM)
            while daemon.poll() is None:
                offset = _echo(out, log_path, offset)
                time.sleep(0.2)
            _echo(out, log_path, offset)
            return exc.exit_code


def _echo(out: Output, path: Path, offset: int) -> int:
    """Print what `path` gained since `offset`; return the new offset."""
    with path.open("rb") as fh:
        fh.seek(offset)
        data = fh.read()
    complete, _, _rest = data.rpartition(b"\n")
    if complete or data.endswith(b"\n"):
        for text in complete.decode(errors="replace").split("\n"):
            out.line(text)
        return offset + len(complete) + 1
    return offset


def _ingest_catalogue(out: Output, settings: StackSettings, *, seed: int, rows: int | None) -> None:
    """After `up`: the classifier's synthetic catalogue (same seed and size, so the same
    products) into the chatbot's tables; idempotent, so a second `up` only compares hashes."""
    from models import repository
    from services.jobs import ingest as module

    size = repository.default_catalogue_rows(*(() if rows is None else (rows,)))
    out.line(f"ingesting the catalogue ({size} products) for the chatbot ...")
    job = module.IngestSettings(
        log_json=False,
        catalogue_rows=size,
        catalogue_seed=seed,
        **job_server_urls(settings, nats=True),
    )
    try:
        asyncio.run(module.run_ingest(settings=job, say=out.line))
    except Exception as exc:  # the stack keeps running; `modelfleet ingest` can be rerun
        out.error(
            f"catalogue ingestion failed ({type(exc).__name__}: {exc}); run `modelfleet ingest`"
        )


def cmd_down(out: Output, settings: StackSettings, args: argparse.Namespace) -> int:
    """`modelfleet down`."""
    from services.stack.supervisor import Stack

    stopped = Stack(settings).stop()
    out.line(f"stopped {', '.join(stopped)}" if stopped else "nothing was running")
    return EXIT_OK


def cmd_status(out: Output, settings: StackSettings, args: argparse.Namespace) -> int:
    """`modelfleet status [--json]`: exit 0 when every component is ready, else 1."""
    from services.stack.supervision import supervisor_record
    from services.stack.supervisor import Stack

    statuses = Stack(settings).status()
    supervisor = supervisor_record(settings.paths)
    if args.json:
        out.line(
            json.dumps(
                [
                    {
                        "name": s.name,
                        "url": s.url,
                        "pid": s.pid,
                        "ready": s.ready,
                        "extra_urls": dict(s.extra_urls),
                        "restarts": s.restarts.count,
                        "last_exit_code": s.restarts.last_exit_code,
                        "last_restart_at": s.restarts.last_restart_at,
                        "state": _state(s),
                        "supervised_by": None if supervisor is None else supervisor.pid,
                    }
                    for s in statuses
                ],
                indent=2,
            )
        )
    else:
        headers = ["NAME", "URL", "PID", "READY", "RESTARTS", "LAST EXIT", "LAST RESTART", "STATE"]
        out.table(headers, _status_rows(statuses))
        if supervisor is None:
            out.line("supervisor: none (nothing restarts a component that exits)")
        else:
            mode = supervisor.meta.get("mode", "?")
            phase = PHASES.get(str(supervisor.meta.get("phase")), "?")
            out.line(f"supervisor: pid {supervisor.pid} ({mode} `modelfleet up`, {phase})")
    return EXIT_OK if statuses and all(s.ready for s in statuses) else EXIT_FAIL


def add_parser(sub: Any) -> None:
    """Add ``up``, ``down`` and ``status`` to the CLI's sub-parsers."""
    up = sub.add_parser(
        "up", help="build the models, start the whole local stack and restart what exits"
    )
    up.add_argument(
        "--detach", action="store_true", help="supervise it from the background and return"
    )
    up.add_argument("--seed", type=int, default=42, help="seed of the model build")
    up.add_argument("--rows", type=int, help="training rows of the model build")
    up.add_argument("--no-build", action="store_true", help="use the model repository as it is")
    up.add_argument(
        "--no-ingest", action="store_true", help="skip ingesting the catalogue for the chatbot"
    )
    up.add_argument(
        "--llm",
        action="store_true",
        help="also serve the local LLM (llama.cpp; MODELFLEET_LLM_MODEL: a GGUF file) and let"
        " the chatbot generate with it (MODELFLEET_LLM=true does the same)",
    )
    # `--detach` runs `up --supervise` in a new session: the supervisor with no terminal.
    up.add_argument("--supervise", action="store_true", help=argparse.SUPPRESS)
    up.set_defaults(func=cmd_up)

    down = sub.add_parser("down", help="stop the stack recorded in $MODELFLEET_HOME/run")
    down.set_defaults(func=cmd_down)

    status = sub.add_parser("status", help="url, pid and readiness of each component")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=cmd_status)
