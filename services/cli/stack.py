"""``modelfleet up``, ``down``, ``status``: the local stack (services/stack).

The supervisor (and psutil, of the ``local`` extra) is imported by the commands that use it, so
the console script also loads in an image, which has no local stack.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import threading
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

from services.cli.models import build_repository
from services.cli.output import EXIT_FAIL, EXIT_INTERRUPTED, EXIT_OK, Output
from services.cli.servers import job_server_urls
from services.stack import AlreadyRunningError, StackSettings

if TYPE_CHECKING:
    from services.stack.component import ComponentStatus
    from services.stack.supervisor import Stack


def _status_rows(statuses: Sequence[ComponentStatus]) -> list[list[str]]:
    return [
        [s.name, s.url, "-" if s.pid is None else str(s.pid), "yes" if s.ready else "no"]
        for s in statuses
    ]


def _print_urls(out: Output, statuses: Sequence[ComponentStatus]) -> None:
    rows: list[list[str]] = []
    for s in statuses:
        rows.append([s.name, s.url, "-" if s.pid is None else str(s.pid)])
        rows.extend([f"  {label}", url, ""] for label, url in s.extra_urls.items())
    out.table(["COMPONENT", "URL", "PID"], rows)
    out.line(f"logs: {statuses[0].log_file.parent}" if statuses else "")


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def cmd_up(out: Output, settings: StackSettings, args: argparse.Namespace) -> int:
    """`modelfleet up [--detach]`."""
    from services.stack.supervisor import Stack

    stack = Stack(settings)
    running = stack.running()
    if running:
        raise AlreadyRunningError(running, home=settings.paths.home)
    stack.check_ports()
    if not args.no_build:
        try:
            build_repository(out, settings, seed=args.seed, rows=args.rows)
        except ModuleNotFoundError as exc:
            if exc.name not in ("models.repository", "models"):
                raise
            out.error("models.repository is not available yet: using the repository as it is")
    # SIGTERM during startup behaves like Ctrl-C: Stack.start stops what it started.
    previous_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        statuses = stack.start()
    except KeyboardInterrupt:
        out.error("interrupted during startup; everything started was stopped")
        return EXIT_FAIL
    finally:
        signal.signal(signal.SIGTERM, previous_term)
    _print_urls(out, statuses)
    timings = ", ".join(f"{name} {sec:.1f} s" for name, sec in stack.startup_seconds.items())
    out.line(f"ready ({timings})")
    if "chatbot" in stack.names and not args.no_ingest:
        try:
            _ingest_catalogue(out, settings, seed=args.seed, rows=args.rows)
        except KeyboardInterrupt:
            out.error("interrupted while ingesting the catalogue; stopping everything")
            stack.stop()
            return EXIT_INTERRUPTED
    if args.detach:
        out.line("running detached: `modelfleet status`, `modelfleet down`")
        return EXIT_OK
    return _serve_foreground(out, stack)


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


def _serve_foreground(out: Output, stack: Stack) -> int:
    """Wait for Ctrl-C/SIGTERM (warning when a component dies), then stop everything."""
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    handlers = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    out.line("press Ctrl-C to stop")
    reported: set[str] = set()
    try:
        while not stop.wait(1.0):
            for name in stack.names:
                component = stack.component(name)
                if name not in reported and component.pid is None:
                    reported.add(name)
                    out.error(f"{name} is not running any more (log: {component.log_path})")
        out.line("stopping ...")
        stopped = stack.stop()
        out.line(f"stopped {', '.join(stopped) or 'nothing'}")
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    return EXIT_OK


def cmd_down(out: Output, settings: StackSettings, args: argparse.Namespace) -> int:
    """`modelfleet down`."""
    from services.stack.supervisor import Stack

    stopped = Stack(settings).stop()
    out.line(f"stopped {', '.join(stopped)}" if stopped else "nothing was running")
    return EXIT_OK


def cmd_status(out: Output, settings: StackSettings, args: argparse.Namespace) -> int:
    """`modelfleet status [--json]`: exit 0 when every component is ready, else 1."""
    from services.stack.supervisor import Stack

    statuses = Stack(settings).status()
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
                    }
                    for s in statuses
                ],
                indent=2,
            )
        )
    else:
        out.table(["NAME", "URL", "PID", "READY"], _status_rows(statuses))
    return EXIT_OK if statuses and all(s.ready for s in statuses) else EXIT_FAIL


def add_parser(sub: Any) -> None:
    """Add ``up``, ``down`` and ``status`` to the CLI's sub-parsers."""
    up = sub.add_parser("up", help="build the models and start the whole local stack")
    up.add_argument("--detach", action="store_true", help="leave it running and return")
    up.add_argument("--seed", type=int, default=42, help="seed of the model build")
    up.add_argument("--rows", type=int, help="training rows of the model build")
    up.add_argument("--no-build", action="store_true", help="use the model repository as it is")
    up.add_argument(
        "--no-ingest", action="store_true", help="skip ingesting the catalogue for the chatbot"
    )
    up.set_defaults(func=cmd_up)

    down = sub.add_parser("down", help="stop the stack recorded in $MODELFLEET_HOME/run")
    down.set_defaults(func=cmd_down)

    status = sub.add_parser("status", help="url, pid and readiness of each component")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=cmd_status)
