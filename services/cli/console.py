"""The `modelfleet` parser (each command group's ``add_parser``) and ``main``, the console
script's entry point: logging, settings, the handler, the errors every command may raise."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from services.cli import (
    apikey,
    demo,
    documents,
    jobs,
    models,
    passthrough,
    rollout,
    score,
    stack,
    train,
)
from services.cli.output import EXIT_FAIL, EXIT_INTERRUPTED, Command, Output
from services.stack import (
    AlreadyRunningError,
    PortInUseError,
    StackError,
    StackSettings,
    StartupError,
)

DESCRIPTION = "modelfleet: run the local stack, build the models, run the benchmarks."
#: the command groups in the order `modelfleet --help` lists their commands
GROUPS = (stack, jobs, models, train, demo, score, apikey, documents, passthrough, rollout)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of `modelfleet`."""
    parser = argparse.ArgumentParser(prog="modelfleet", description=DESCRIPTION)
    parser.add_argument("--home", type=Path, help="state folder (default: $MODELFLEET_HOME)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings in the log")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `modelfleet` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    out = Output()
    settings = StackSettings() if args.home is None else StackSettings(home=args.home)
    func: Command = args.func
    try:
        return func(out, settings, args)
    except (AlreadyRunningError, PortInUseError, StartupError) as exc:
        out.error(str(exc))
        return EXIT_FAIL
    except StackError as exc:
        out.error(f"{type(exc).__name__}: {exc}")
        return EXIT_FAIL
    except KeyboardInterrupt:
        out.error("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Output piped into e.g. `head`: not an error; keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAIL
